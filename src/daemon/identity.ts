import { checkPinnedOrg, loadHostKey, readState, statePath, type DaemonState } from '../local/state.js';
import {
  isProtocolError, SigningPublicKey, verifyConsumerCert,
  type ConsumerCertBody, type OrgTrust, type SigningPrivateKey, type Verified,
} from '../protocol/index.js';
import { DaemonError, systemErrorCode } from './errors.js';

/** The daemon's identity: its pinned org, its consumer certificate and the host key that certificate names. */
export interface DaemonIdentity {
  state: DaemonState;
  trust: OrgTrust;
  hostKey: SigningPrivateKey;
  certificate: Verified<ConsumerCertBody>;
}

const ENROLL_HINT = 'enroll this machine first: `stillvault daemon enroll --invite TOKEN` (an admin creates the invite with `stillvault daemon invite`)';

/**
 * Loads daemon/consumer.json and daemon/host-key.json from the Stillvault
 * home and checks them: the org id is the pinned identity key's fingerprint,
 * the consumer certificate verifies against that key at `now`, names this
 * consumer and certifies this host key. Throws DaemonError 'not_enrolled' or
 * 'certificate_invalid', whose message names the next step.
 */
export async function loadDaemonIdentity(env: NodeJS.ProcessEnv, now: number): Promise<DaemonIdentity> {
  const stateFile = statePath('daemon', 'consumer.json', env);
  const state = await readDaemonState(stateFile);
  if (state === undefined) {
    throw new DaemonError('not_enrolled', `this machine is not enrolled: ${stateFile} does not exist. Hint: ${ENROLL_HINT}`);
  }
  if (state.certificate === null) {
    throw new DaemonError('not_enrolled', `enrollment of consumer ${state.consumer} is not finished: ${stateFile} has no certificate yet. Hint: rerun \`stillvault daemon enroll\` once the admin has approved it`);
  }
  try {
    checkPinnedOrg(state, stateFile);
  } catch (cause) {
    throw new DaemonError('certificate_invalid', (cause as Error).message, { cause });
  }
  const trust: OrgTrust = { org: state.org, identityKey: SigningPublicKey.fromBase64Url(state.identityKey, 'identityKey') };

  const hostKeyFile = statePath('daemon', 'host-key.json', env);
  let hostKey: SigningPrivateKey;
  try {
    hostKey = await loadHostKey(hostKeyFile);
  } catch (cause) {
    if (systemErrorCode(cause) === 'ENOENT') {
      throw new DaemonError('not_enrolled', `the host key ${hostKeyFile} is missing. Hint: ${ENROLL_HINT}`, { cause });
    }
    throw new DaemonError('certificate_invalid', `loading the host key failed: ${(cause as Error).message}`, { cause });
  }

  let certificate: Verified<ConsumerCertBody>;
  try {
    certificate = await verifyConsumerCert(state.certificate, trust, now);
  } catch (cause) {
    hostKey.wipe();
    const reason = isProtocolError(cause) ? `${cause.code}: ${cause.message}` : String(cause);
    throw new DaemonError('certificate_invalid', `the consumer certificate in ${stateFile} is not valid (${reason}). Hint: ask the admin to renew it, then enroll again`, { cause });
  }
  if (certificate.body.consumer !== state.consumer || certificate.body.hostKey !== hostKey.publicKey.toBase64Url()) {
    hostKey.wipe();
    throw new DaemonError('certificate_invalid', `the consumer certificate in ${stateFile} is for consumer ${certificate.body.consumer} with another host key; enroll this machine again`);
  }
  return { state, trust, hostKey, certificate };
}

async function readDaemonState(file: string): Promise<DaemonState | undefined> {
  try {
    return await readState<DaemonState>(file);
  } catch (cause) {
    throw new DaemonError('not_enrolled', `reading ${file} failed: ${(cause as Error).message}`, { cause });
  }
}
