import { isProtocolError } from '../../protocol/index.js';

/** Stable codes of the approver app's own failures; protocol and broker codes pass through unchanged. */
export type ApproverErrorCode =
  | 'invite_invalid'
  | 'invite_expired'
  | 'untrusted_signer'
  | 'webauthn_unavailable'
  | 'prf_unsupported'
  | 'user_verification_failed'
  | 'cancelled'
  | 'wrong_passkey'
  | 'broker_not_allowed'
  | 'already_decided'
  | 'not_enrolled'
  | 'certificate_mismatch'
  | 'push_unavailable';

/** A failure the person using the app can read; `message` is written for them. */
export class ApproverError extends Error {
  readonly code: ApproverErrorCode;

  constructor(code: ApproverErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ApproverError';
    this.code = code;
  }
}

/** Returns the stable code of any error the app may catch. */
export function errorCode(error: unknown): string {
  if (error instanceof ApproverError || isProtocolError(error)) return error.code;
  const coded = error as { code?: unknown };
  return typeof coded.code === 'string' ? coded.code : 'internal_error';
}

/** Returns a message fit to show; protocol and broker messages carry ids and names, never key material. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
