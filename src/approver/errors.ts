import { REFUSAL_CODE_PATTERN } from '../protocol/errors.js';

/**
 * A failure of the terminal approver that is not a ProtocolError: local
 * state problems and replays. `code` is stable like ProtocolError's.
 */
export type ApproverErrorCode =
  | 'not_enrolled'
  | 'request_replayed'
  | 'bundle_mismatch'
  | 'not_granted'
  | 'wrong_passphrase'
  | 'invalid_key_file'
  | 'key_file_missing'
  | 'key_file_unsafe'
  | 'invalid_state';

export class ApproverError extends Error {
  readonly code: ApproverErrorCode;

  constructor(code: ApproverErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ApproverError';
    this.code = code;
  }
}

/** Returns the code to send with a refusal: the error's own code, or `verification_failed` when it has none the broker accepts. */
export function refusalCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && REFUSAL_CODE_PATTERN.test(code) ? code : 'verification_failed';
}
