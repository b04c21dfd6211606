import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** Repository root, which the native addon loader finds by walking up from a bundle. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * Bundles a TypeScript fixture into one ESM file that plain `node` can run in
 * a child process. The bundle lives under the repository's node_modules, so the
 * addon loader still finds the package root and build/Release/peercred.node.
 */
export async function bundleFixture(entry: string): Promise<{ file: string; remove(): Promise<void> }> {
  const directory = join(REPO_ROOT, 'node_modules', '.cache', 'stillvault-tests', randomBytes(6).toString('hex'));
  await mkdir(directory, { recursive: true });
  const file = join(directory, `${basename(entry, '.ts')}.mjs`);
  await build({
    entryPoints: [entry],
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
  });
  return {
    file,
    remove: () => rm(directory, { recursive: true, force: true }),
  };
}
