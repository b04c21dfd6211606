import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { DEFAULT_LIMITS, type BrokerContext, type BrokerLimits } from './context.js';
import { openPostgres, openSqlite, type BrokerDatabase } from './db.js';
import { createRequestListener } from './http.js';
import { Hub } from './hub.js';
import { loadOrCreateBrokerKey } from './key.js';
import { Metrics } from './metrics.js';
import { DEFAULT_DATA_DIR, DEFAULT_LISTEN } from './help.js';
import { DEFAULT_PUSH_OPTIONS, loadOrCreateVapidKeys, PushSender, type PushOptions } from './push.js';
import { sweep } from './requests.js';
import { migrate } from './schema.js';
import { createWebSocketServer } from './websocket.js';

export interface BrokerOptions {
  /** HOST:PORT to listen on; default 127.0.0.1:8640. Port 0 picks a free port. */
  listen?: string;
  /** Directory for the broker key and the SQLite database; default ./stillvault-broker-data. */
  dataDir?: string;
  /** postgres://… URL (optional `schema` parameter); SQLite in the data directory when absent. */
  database?: string;
  limits?: Partial<BrokerLimits>;
  /** Web origins whose pages may call the HTTP API (CORS), e.g. the approver web app; default none. */
  allowOrigins?: string[];
  /** Web Push settings; the VAPID key pair is kept in the data directory. */
  push?: Partial<PushOptions>;
  logger?: Logger;
}

export interface RunningBroker {
  url: string;
  brokerKeyFingerprint: string;
  close(): Promise<void>;
}

export { DEFAULT_DATA_DIR, DEFAULT_LISTEN };

function parseListen(listen: string): { host: string; port: number } {
  const match = /^(.+):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[2]);
  if (match?.[1] === undefined || port > 65535) throw new Error(`invalid --listen ${JSON.stringify(listen)}: expected HOST:PORT, for example 127.0.0.1:8640`);
  return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
}

/** Starts a broker: opens storage, the broker key, HTTP and WebSocket listeners and the expiry sweeper. */
export async function startBroker(options: BrokerOptions = {}): Promise<RunningBroker> {
  const logger = options.logger ?? pino({ base: { service: 'stillvault-broker' } }, pino.destination(2));
  const dataDir = options.dataDir ?? DEFAULT_DATA_DIR;
  const { host, port } = parseListen(options.listen ?? DEFAULT_LISTEN);
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const brokerKey = await loadOrCreateBrokerKey(dataDir);
  const db: BrokerDatabase = options.database === undefined ? openSqlite(join(dataDir, 'broker.sqlite')) : await openPostgres(options.database);
  await migrate(db);

  const ctx: BrokerContext = {
    db, logger, limits, brokerKey, hub: new Hub(), metrics: new Metrics(), audience: brokerKey.publicKey.fingerprint(),
    push: new PushSender(loadOrCreateVapidKeys(dataDir), { ...DEFAULT_PUSH_OPTIONS, ...options.push }),
  };
  const websocket = createWebSocketServer(ctx);
  const server = createServer(createRequestListener(ctx, options.allowOrigins ?? []));
  server.on('upgrade', websocket.handleUpgrade);
  server.on('clientError', (error, socket) => {
    ctx.metrics.countError('client_error');
    logger.info({ event: 'client-error', message: error.message }, 'malformed HTTP request');
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

  let sweeping = false;
  const sweeper = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    sweep(ctx).catch((error: unknown) => {
      ctx.metrics.countError('sweep_failed');
      logger.error({ event: 'sweep-failed', err: error }, 'expiry sweep failed');
    }).finally(() => { sweeping = false; });
  }, limits.sweepIntervalMs);

  logger.info({ event: 'start', url, storage: db.dialect, brokerKey: ctx.audience }, 'broker started');
  return {
    url,
    brokerKeyFingerprint: ctx.audience,
    async close() {
      clearInterval(sweeper);
      websocket.close();
      await ctx.push?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
      await db.close();
      brokerKey.wipe();
      logger.info({ event: 'stop', url }, 'broker stopped');
    },
  };
}

/** Starts a broker and closes it on SIGINT or SIGTERM. */
export async function runBroker(options: BrokerOptions = {}): Promise<void> {
  const broker = await startBroker(options);
  await new Promise<void>((resolve) => {
    const stop = (): void => { resolve(); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await broker.close();
}
