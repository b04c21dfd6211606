import { execFileSync } from 'node:child_process';

/**
 * Builds dist/ once before any suite runs, so end-to-end tests can spawn real
 * processes (`node dist/broker/main.js`). Type errors elsewhere in the tree
 * do not stop the emit; `npm run typecheck` reports them separately.
 */
export default function buildOnce(): void {
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'pipe' });
  } catch (error) {
    const output = (error as { stdout?: Buffer }).stdout?.toString('utf8') ?? '';
    process.stderr.write(`global-setup: tsc reported errors but emitted dist/ anyway:\n${output.slice(0, 4000)}\n`);
  }
}
