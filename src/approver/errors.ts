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
