import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BrokerClient, BrokerClientError } from '../../broker/client.js';
import { createOrg, displayFingerprint, SigningPrivateKey, SigningPublicKey, verifyOrg } from '../../protocol/index.js';
import { writeKeyFile } from '../../local/keyfile.js';
import { ensurePrivateDirectory } from '../../local/files.js';
import { writeState, type AdminState } from '../../local/state.js';
import { adminStatePath, IDENTITY_KEY_LABEL, identityKeyPath } from '../admin.js';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError, usageError } from '../errors.js';
import { nowSeconds } from '../format.js';
import { readPassphrase } from '../prompt.js';

const USAGE = 'stillvault init --org NAME --broker URL';

async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch {
    return false;
  }
}

/** Checks a broker URL: http or https, no credentials, no query or fragment. Returns it without a trailing slash. */
export function parseBrokerUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usageError(`invalid --broker ${JSON.stringify(text)}`, 'give the broker URL, for example --broker https://vault.example.com');
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw usageError(`invalid --broker ${JSON.stringify(text)}: expected http(s)://HOST[:PORT][/PATH] without credentials or query`);
  }
  return url.toString().replace(/\/+$/, '');
}

async function run(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { org: { type: 'string' }, broker: { type: 'string' } }, USAGE, false);
  if (values.org === undefined || values.org.trim() === '') throw usageError('missing --org NAME', `usage: ${USAGE}`);
  if (values.broker === undefined) throw usageError('missing --broker URL', `usage: ${USAGE}`);
  const broker = parseBrokerUrl(values.broker);
  const orgName = values.org.trim();

  const stateFile = adminStatePath(io);
  const keyFile = identityKeyPath(io);
  if ((await exists(stateFile)) || (await exists(keyFile))) {
    throw new CliError('already_initialized', `an admin identity already exists in ${path.dirname(keyFile)}`, {
      hint: 'this machine already holds an Org Identity key; use another STILLVAULT_HOME for a new org, or move the old one away yourself',
    });
  }

  const passphrase = await readPassphrase(io, 'New passphrase for the Org Identity key: ', { confirm: true });
  const identityKey = await SigningPrivateKey.generate('org-identity');
  try {
    const org = await createOrg(identityKey, { name: orgName, created: nowSeconds() });
    const fingerprint = identityKey.publicKey.fingerprint();
    await verifyOrg(org, fingerprint);

    await ensurePrivateDirectory(path.dirname(keyFile));
    const seed = identityKey.exportSeed();
    try {
      await writeKeyFile(keyFile, IDENTITY_KEY_LABEL, seed, passphrase);
    } finally {
      seed.fill(0);
    }

    io.stderr.write(`Registering org ${JSON.stringify(orgName)} with ${broker} ...\n`);
    const client = new BrokerClient(broker, fingerprint);
    try {
      await client.registerOrg(org);
      await client.authenticate('admin', fingerprint, identityKey);
    } catch (error) {
      await fs.rm(keyFile, { force: true });
      if (error instanceof BrokerClientError) {
        throw new CliError(error.code, `cannot register the org with ${broker}: ${error.message}`, {
          hint: 'check that the broker runs and the URL is right, then run `stillvault init` again',
        });
      }
      throw error;
    }
    const { brokerKey } = await client.getOrg();
    SigningPublicKey.fromBase64Url(brokerKey, 'broker key');

    const state: AdminState = { v: 1, org: fingerprint, orgName, identityKey: identityKey.publicKey.toBase64Url(), broker, brokerKey };
    await writeState(stateFile, state);

    io.stderr.write(`Org Identity key stored encrypted in ${keyFile}.\n`);
    io.stderr.write('Every approver and daemon pins this fingerprint at enrollment; compare it with what they show:\n');
    io.stdout.write(`${displayFingerprint(fingerprint)}\n`);
    return 0;
  } finally {
    identityKey.wipe();
  }
}

export const initCommand: Command = {
  name: ['init'],
  summary: 'create the Org Identity key and register the org with a broker',
  usage: USAGE,
  run,
};
