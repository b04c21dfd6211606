import {
  SigningPublicKey, verifyDeviceCert, type DeviceCertBody, type OrgTrust, type RevocationBody, type Verified,
} from '../protocol/index.js';
import { checkPinnedOrg, emptySeenState, readState, statePath, writeState, type ApproverState, type SeenState } from '../local/state.js';
import { ApproverError } from './errors.js';

/**
 * The terminal approver's files: approver/device.json (ApproverState),
 * approver/device.key (DeviceKeys) and approver/seen.json (SeenState: the
 * highest policy and secret versions accepted, and the request ids decided,
 * so a broker cannot roll either back or replay a request).
 */

export interface ApproverPaths {
  state: string;
  keys: string;
  seen: string;
}

export function approverPaths(env: NodeJS.ProcessEnv): ApproverPaths {
  return {
    state: statePath('approver', 'device.json', env),
    keys: statePath('approver', 'device.key', env),
    seen: statePath('approver', 'seen.json', env),
  };
}

export function approverTrust(state: ApproverState): OrgTrust {
  return { org: state.org, identityKey: SigningPublicKey.fromBase64Url(state.identityKey, 'pinned identity key') };
}

/** Reads approver/device.json and checks that the pinned org id is the key's fingerprint. */
export async function loadApproverState(paths: ApproverPaths): Promise<ApproverState | undefined> {
  const state = await readState<ApproverState>(paths.state);
  if (state !== undefined) checkPinnedOrg(state, paths.state);
  return state;
}

/** Returns this device's own certificate, verified against the pinned key now, or throws 'not_enrolled'. */
export async function verifiedOwnCertificate(
  state: ApproverState,
  now: number,
  revocations: readonly Verified<RevocationBody>[] = [],
): Promise<Verified<DeviceCertBody>> {
  if (state.certificate === null) {
    throw new ApproverError('not_enrolled', 'this approver has no certificate yet');
  }
  const cert = await verifyDeviceCert(state.certificate, approverTrust(state), now, revocations);
  if (cert.body.device !== state.device) {
    throw new ApproverError('invalid_state', `certificate is for device ${cert.body.device}, state names ${state.device}`);
  }
  return cert;
}

export async function loadSeenState(file: string): Promise<SeenState> {
  const seen = await readState<SeenState>(file);
  if (seen === undefined) return emptySeenState();
  if (typeof seen.policyVersions !== 'object' || typeof seen.secretVersions !== 'object' || typeof seen.requests !== 'object') {
    throw new ApproverError('invalid_state', `${file} is not a seen-state file`);
  }
  return seen;
}

/** Drops request ids whose forget-after time has passed; a replay of one would fail its expiry check anyway. */
export function pruneSeen(seen: SeenState, now: number): void {
  for (const [id, forgetAfter] of Object.entries(seen.requests)) {
    if (forgetAfter < now) Reflect.deleteProperty(seen.requests, id);
  }
}

export async function saveSeenState(file: string, seen: SeenState, now: number): Promise<void> {
  pruneSeen(seen, now);
  await writeState(file, seen);
}
