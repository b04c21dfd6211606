/** Runs the named benchmarks (all when none is named): `node dist/bench/main.js [broker|daemon|release ...]`. */

type Bench = () => Promise<void>;

const BENCHES: Record<string, () => Promise<Bench>> = {
  broker: async () => (await import('./broker.js')).runBrokerBench,
  daemon: async () => (await import('./daemon.js')).runDaemonBench,
  release: async () => (await import('./release.js')).runReleaseBench,
};

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  const selected = names.length === 0 ? Object.keys(BENCHES) : names;
  for (const name of selected) {
    const load = BENCHES[name];
    if (load === undefined) throw new Error(`unknown benchmark ${JSON.stringify(name)}; known: ${Object.keys(BENCHES).join(', ')}`);
    await (await load())();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`stillvault: error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
