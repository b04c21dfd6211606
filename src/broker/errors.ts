import { isProtocolError } from '../protocol/errors.js';

/** An error the broker returns to a client: a stable code, an HTTP status and a message without secrets. */
export class BrokerError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(status: number, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BrokerError';
    this.status = status;
    this.code = code;
  }
}

export const badRequest = (message: string): BrokerError => new BrokerError(400, 'invalid_request', message);
export const notFound = (message: string): BrokerError => new BrokerError(404, 'not_found', message);
export const forbidden = (message: string): BrokerError => new BrokerError(403, 'forbidden', message);
export const conflict = (code: string, message: string): BrokerError => new BrokerError(409, code, message);

/** Maps a thrown value to a BrokerError: protocol failures keep their code as a 400, anything else is a 500. */
export function toBrokerError(error: unknown): BrokerError {
  if (error instanceof BrokerError) return error;
  if (isProtocolError(error)) return new BrokerError(400, error.code, error.message, { cause: error });
  return new BrokerError(500, 'internal_error', 'internal error', { cause: error });
}
