/**
 * The error every CLI command throws for a failure the user can act on. The
 * entry point prints it as `stillvault: error: MESSAGE` and an optional
 * `hint:` line on stderr, then exits with `exitCode`.
 */
export class CliError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(code: string, message: string, options: { hint?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'CliError';
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? 1;
  }
}

/** Exit code for wrong usage (unknown command or option, missing argument). */
export const USAGE_EXIT_CODE = 2;

export function usageError(message: string, hint?: string): CliError {
  return new CliError('usage', message, { hint, exitCode: USAGE_EXIT_CODE });
}
