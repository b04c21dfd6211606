import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromBase64UrlExact, toBase64Url, wipe } from '../protocol/encoding.js';
import { SigningPrivateKey } from '../protocol/keys.js';

const KEY_FILE = 'broker-key';

/**
 * Loads the broker's Ed25519 key from DATA_DIR/broker-key, creating it (mode
 * 0600, directory 0700) on first start. A key file readable by group or
 * others is a fatal error, never silently accepted.
 */
export async function loadOrCreateBrokerKey(dataDir: string): Promise<SigningPrivateKey> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, KEY_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const key = await SigningPrivateKey.generate('broker');
    const seed = key.exportSeed();
    try {
      writeFileSync(file, toBase64Url(seed) + '\n', { mode: 0o600, flag: 'wx' });
    } finally {
      wipe(seed);
    }
    return key;
  }
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new Error(`${file} has mode ${mode.toString(8)}; the broker key must be readable by its owner only (chmod 600)`);
  }
  const seed = fromBase64UrlExact(text.trim(), 32, 'broker key seed');
  try {
    return await SigningPrivateKey.fromSeed('broker', seed);
  } finally {
    wipe(seed);
  }
}
