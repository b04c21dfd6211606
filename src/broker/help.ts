/**
 * Defaults and help text of `stillvault broker`, in a module without imports
 * so that `stillvault broker --help` and `stillvault help` do not load the
 * broker itself.
 */
export const DEFAULT_LISTEN = '127.0.0.1:8640';
export const DEFAULT_DATA_DIR = './stillvault-broker-data';

export const BROKER_HELP = `usage: stillvault broker [options]
  --listen HOST:PORT        address to listen on (default ${DEFAULT_LISTEN}; port 0 picks a free port)
  --data DIR                broker key and SQLite database (default ${DEFAULT_DATA_DIR})
  --database URL            postgres://user@host:port/db[?schema=NAME] instead of SQLite
  --delivery-window SECONDS fail a request no approver received after this long (default 30)
  --max-pending N           pending requests per consumer (default 16)
  --rate-per-minute N       requests per consumer per minute (default 60)
  --allow-origin ORIGIN     answer CORS for this web origin, e.g. the approver web app's (repeatable; default none)
  --allow-http-push-endpoints  accept http:// Web Push endpoints, not only https:// (for tests with a local push service)
`;
