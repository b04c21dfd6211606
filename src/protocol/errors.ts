/**
 * Stable error codes for every protocol failure. The code crosses process
 * boundaries (CLI, daemon, broker, web app), so callers and tests match on it,
 * never on the message text.
 */
export type ProtocolErrorCode =
  | 'invalid_encoding'
  | 'invalid_key'
  | 'invalid_object'
  | 'unknown_version'
  | 'unknown_kind'
  | 'wrong_org'
  | 'bad_signature'
  | 'untrusted_signer'
  | 'expired'
  | 'not_yet_valid'
  | 'revoked'
  | 'policy_mismatch'
  | 'policy_rollback'
  | 'secret_rollback'
  | 'binding_mismatch'
  | 'decrypt_failed'
  | 'not_canonical'
  | 'invalid_path'
  | 'not_approver'
  | 'not_allowed'
  | 'lease_exceeded'
  | 'approval_denied'
  | 'secret_deleted'
  | 'not_implemented';

/** The one error type that protocol verification and decoding throw. */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

/** Reports whether `error` is a ProtocolError, optionally with the given code. */
export function isProtocolError(error: unknown, code?: ProtocolErrorCode): error is ProtocolError {
  return error instanceof ProtocolError && (code === undefined || error.code === code);
}

/**
 * The form of an error code an approver sends when it rejects a request that
 * failed verification: 1 to 64 lowercase letters, digits and underscores,
 * starting with a letter. The broker rejects any other value.
 */
export const REFUSAL_CODE_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;
