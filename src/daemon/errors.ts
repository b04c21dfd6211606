/**
 * Stable codes for daemon failures. They cross process boundaries (the daemon
 * socket's JSON errors, the CLI's exit messages), so never rename one.
 */
export type DaemonErrorCode =
  /** The native addon was not built or does not load. */
  | 'addon_missing'
  /** The caller exited, or its pid was reused, before identification finished. */
  | 'caller_gone'
  /** The caller's pid, /proc entry or credentials cannot be read (another pid namespace, hidepid, a closed socket). */
  | 'caller_unidentified'
  /** The caller runs an executable that was deleted or replaced on disk. */
  | 'caller_untrusted_exe'
  /** No local rule allows this caller to request this path. */
  | 'caller_not_allowed'
  /** The rules file is missing, unreadable or invalid. */
  | 'rules_invalid'
  /** The socket path is not absolute, too long for a Unix socket, or its parent directory is missing. */
  | 'socket_path_invalid'
  /** The socket directory or path has an unsafe owner, mode or file type. */
  | 'socket_unsafe'
  /** Another daemon holds the lock or listens on the socket. */
  | 'socket_in_use'
  /** Setting the mode or group of the socket or its directory failed. */
  | 'socket_permissions_failed'
  /** listen() on the socket path failed for a reason other than a stale socket. */
  | 'socket_listen_failed'
  /** This machine has no daemon state or no consumer certificate yet. */
  | 'not_enrolled'
  /** The daemon's own consumer certificate is invalid, expired, revoked or does not match its host key. */
  | 'certificate_invalid'
  /** A socket API request is malformed: bad JSON, wrong fields, a forbidden header or an unknown endpoint. */
  | 'invalid_request'
  /** A socket API request body is larger than the limit. */
  | 'payload_too_large'
  /** The endpoint or lease does not exist (for this caller). */
  | 'not_found'
  /** An approver denied the request. */
  | 'request_denied'
  /** Every eligible approver refused the request because it failed verification on their device. */
  | 'request_refused'
  /** The request was cancelled at the broker before it ended (by this daemon, or by a broker acting on its own). */
  | 'request_cancelled'
  /** The request expired before an approver decided. */
  | 'request_expired'
  /** No approver acknowledged the request within the broker's delivery window. */
  | 'request_undelivered'
  /** A result for a request id that was already released or decided arrived again. */
  | 'request_replayed'
  /** The broker could not be reached, or returned a response that is not JSON. */
  | 'broker_unavailable'
  /** The caller closed its connection before the request ended. */
  | 'caller_disconnected'
  /** The daemon is shutting down. */
  | 'daemon_stopping'
  /** The caller's uid already has the maximum number of secrets requests in progress. */
  | 'too_many_requests'
  /** Turning off core dumps and same-user ptrace for the daemon failed. */
  | 'memory_protection_failed';

/** An error with a stable `code`. Messages name paths and ids, never secret values. */
export class DaemonError extends Error {
  override readonly name = 'DaemonError';
  readonly code: DaemonErrorCode;

  constructor(code: DaemonErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Returns the `code` of a Node.js system error (ENOENT, EACCES, ...), or undefined. */
export function systemErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) {
    return undefined;
  }
  const code = error.code;
  return typeof code === 'string' ? code : undefined;
}
