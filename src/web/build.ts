import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

/**
 * Builds the approver web app into a static bundle: content-hashed script,
 * style, icon and manifest, a service worker at the fixed path /sw.js (a
 * service worker's URL cannot change between versions), index.html, and
 * files.json, the list of every file the server may send. Nothing outside
 * that list is ever served.
 */

/** One file of the bundle, as listed in files.json. */
export interface BundleFile {
  /** URL path, starting with '/'. */
  path: string;
  contentType: string;
  /** True for content-hashed files, which may be cached forever. */
  immutable: boolean;
}

export const BUNDLE_INDEX = 'files.json';

const SOURCE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/web');
const TARGETS = ['chrome116', 'safari17', 'firefox119'];

function hashName(name: string, content: Uint8Array | string): string {
  const hash = createHash('sha256').update(content).digest('hex').slice(0, 12);
  const dot = name.lastIndexOf('.');
  return `${name.slice(0, dot)}-${hash}${name.slice(dot)}`;
}

async function bundleScript(entry: string, minify: boolean, define: Record<string, string> = {}): Promise<string> {
  const result = await esbuild.build({
    entryPoints: [join(SOURCE_DIR, entry)],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: TARGETS,
    write: false,
    minify,
    legalComments: 'none',
    // The broker client's WebSocket part uses the Node 'ws' package; the app
    // uses only its fetch-based calls and the browser's own WebSocket.
    alias: { ws: join(SOURCE_DIR, 'app/ws-unavailable.ts') },
    define,
    logLevel: 'silent',
  });
  const output = result.outputFiles[0];
  if (output === undefined) throw new Error(`esbuild produced no output for ${entry}`);
  return output.text;
}

/** Builds the bundle into `outDir`, replacing what was there, and returns the served file list. */
export async function buildWebApp(options: { outDir: string; minify?: boolean }): Promise<BundleFile[]> {
  const { outDir } = options;
  const minify = options.minify ?? true;
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const files: BundleFile[] = [];
  const emit = async (name: string, content: string, contentType: string, immutable: boolean): Promise<string> => {
    await writeFile(join(outDir, name), content);
    files.push({ path: `/${name}`, contentType, immutable });
    return `/${name}`;
  };
  const readStatic = (name: string): Promise<string> => readFile(join(SOURCE_DIR, 'static', name), 'utf8');

  const script = await bundleScript('app/main.ts', minify);
  const scriptPath = await emit(hashName('app.js', script), script, 'text/javascript; charset=utf-8', true);
  const style = await readStatic('app.css');
  const stylePath = await emit(hashName('app.css', style), style, 'text/css; charset=utf-8', true);
  const icon = await readStatic('icon.svg');
  const iconPath = await emit(hashName('icon.svg', icon), icon, 'image/svg+xml', true);
  const manifest = (await readStatic('manifest.webmanifest')).replaceAll('{{icon}}', iconPath);
  const manifestPath = await emit(hashName('manifest.webmanifest', manifest), manifest, 'application/manifest+json', true);

  const html = (await readStatic('index.html'))
    .replaceAll('{{script}}', scriptPath)
    .replaceAll('{{style}}', stylePath)
    .replaceAll('{{icon}}', iconPath)
    .replaceAll('{{manifest}}', manifestPath);
  await emit('index.html', html, 'text/html; charset=utf-8', false);

  const precache = ['/', ...files.map((file) => file.path)];
  const version = createHash('sha256').update(precache.join('\n')).update(script).digest('hex').slice(0, 16);
  const worker = await bundleScript('sw.ts', minify, { __PRECACHE__: JSON.stringify(precache), __BUNDLE_VERSION__: JSON.stringify(version) });
  await emit('sw.js', worker, 'text/javascript; charset=utf-8', false);

  await writeFile(join(outDir, BUNDLE_INDEX), JSON.stringify({ version, files }, null, 2) + '\n');
  return files;
}

/** dist/web/public of the package, from either src/web or dist/web. */
export const DEFAULT_BUNDLE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/web/public');

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = process.argv[2] ?? DEFAULT_BUNDLE_DIR;
  buildWebApp({ outDir }).then((files) => {
    process.stderr.write(`built approver web app: ${files.length} files in ${outDir}\n`);
  }, (error: unknown) => {
    process.stderr.write(`stillvault: error: web app build failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
