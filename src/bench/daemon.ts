import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, DIST, makeBenchOrg, measureLoop, percentile, startProcess, stopProcesses, type LoopStats } from './world.js';

/**
 * Cost of the daemon's lease-hit path. One broker process, one daemon
 * process and an approver process are started. This process requests once so a
 * lease exists, then measures:
 * - lease-hit POST /v1/secrets from one long-lived client (keep-alive
 *   connection), next to a bare Unix-socket echo round trip to another
 *   process, measured in the same run;
 * - `stillvault get` as a whole process (served from the same lease, since
 *   it runs the same node executable as this process) next to `node -e ''`.
 */

const SECRET_PATH = 'bench/db/url';
const HIT_DURATION_MS = 3000;
const PROCESS_RUNS = 15;

export async function runDaemonBench(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'sv-bench-daemon-'));
  const children: ChildProcess[] = [];
  try {
    const brokerUrl = await startProcess(children, [join(DIST, 'broker', 'main.js'), '--listen', '127.0.0.1:0', '--data', join(scratch, 'broker')], /"event":"start".*?"url":"([^"]+)"/);
    const home = await makeBenchOrg(brokerUrl, scratch, SECRET_PATH, children);
    const socketPath = join(scratch, 'run', 'daemon.sock');
    await startProcess(children, [CLI, 'daemon', '--socket', socketPath], /"event":"start"/, { ...process.env, STILLVAULT_HOME: home });

    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await postSecrets(agent, socketPath, 3600);

    const hits = await measureLoop(HIT_DURATION_MS, () => postSecrets(agent, socketPath));
    agent.destroy();
    const echo = await measureEcho(scratch, children);
    const get = measureProcess([CLI, 'get', SECRET_PATH, '--socket', socketPath], PROCESS_RUNS);
    const bare = measureProcess(['-e', ''], PROCESS_RUNS);

    const rows = [
      ['lease hit (POST /v1/secrets, keep-alive)', hits],
      ['bare Unix-socket echo round trip', echo],
    ] as const;
    process.stdout.write('\ndaemon: lease-hit path (one client, sequential)\n');
    process.stdout.write(`${'measure'.padEnd(44)} ${'req/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}\n`);
    for (const [name, stats] of rows) {
      process.stdout.write(`${name.padEnd(44)} ${stats.rate.toFixed(0).padStart(8)} ${stats.p50.toFixed(3).padStart(8)} ${stats.p99.toFixed(3).padStart(8)}\n`);
    }
    process.stdout.write(`lease hit / echo latency ratio (p50): ${(hits.p50 / echo.p50).toFixed(1)}x\n`);
    process.stdout.write(`\n${'process'.padEnd(44)} ${'p50 ms'.padStart(8)} ${'max ms'.padStart(8)}\n`);
    process.stdout.write(`${'stillvault get (lease hit)'.padEnd(44)} ${get.p50.toFixed(1).padStart(8)} ${get.max.toFixed(1).padStart(8)}\n`);
    process.stdout.write(`${"node -e ''".padEnd(44)} ${bare.p50.toFixed(1).padStart(8)} ${bare.max.toFixed(1).padStart(8)}\n`);
    process.stdout.write(`stillvault get / node -e '' ratio (p50): ${(get.p50 / bare.p50).toFixed(2)}x\n`);
  } finally {
    await stopProcesses(children);
    rmSync(scratch, { recursive: true, force: true });
  }
}

function postSecrets(agent: http.Agent, socketPath: string, leaseSeconds?: number): Promise<void> {
  const body = JSON.stringify({ paths: [SECRET_PATH], reason: 'benchmark', ...(leaseSeconds === undefined ? {} : { leaseSeconds }) });
  return new Promise((resolve, reject) => {
    const request = http.request({ socketPath, agent, method: 'POST', path: '/v1/secrets', headers: { host: 'stillvault', 'content-length': Buffer.byteLength(body) } }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
      response.on('end', () => {
        if (text.includes('"type":"result"')) resolve();
        else reject(new Error(`daemon did not return a result: ${text.slice(0, 300)}`));
      });
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** Measures round trips of 64 bytes to an echo server in another node process, over one Unix socket connection. */
async function measureEcho(scratch: string, children: ChildProcess[]): Promise<LoopStats> {
  const path = join(scratch, 'echo.sock');
  const script = `require('net').createServer((s) => s.pipe(s)).listen(${JSON.stringify(path)}, () => process.stderr.write('ready\\n'));`;
  await startProcess(children, ['-e', script], /ready/);
  const socket = net.connect(path);
  await new Promise((resolve) => socket.once('connect', resolve));
  const message = Buffer.alloc(64, 0x61);
  const roundTrip = () => new Promise<void>((resolve) => {
    let received = 0;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received >= message.length) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.write(message);
  });
  try {
    return await measureLoop(HIT_DURATION_MS, roundTrip);
  } finally {
    socket.destroy();
  }
}

function measureProcess(args: string[], runs: number): { p50: number; max: number } {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const result = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${String(result.status)}: ${result.stderr.toString('utf8').slice(0, 500)}`);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), max: times.at(-1) ?? 0 };
}
