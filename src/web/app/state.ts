import type { DeviceCertBody, Signed } from '../../protocol/index.js';
import type { AuthenticatorInfo } from './webauthn.js';

/**
 * The app's record in localStorage, which contains only public values: the pinned org,
 * the passkey's credential id, the device's public keys and certificate, and
 * what it has already seen (decided request ids, highest secret and policy
 * versions). Never a private key, a PRF output or a secret. The enrollment
 * code is kept only until the certificate arrives, because polling for the
 * certificate needs it.
 */

const STORAGE_KEY = 'stillvault.approver.v1';
const MAX_DECIDED = 2000;

export interface PendingEnrollment {
  id: string;
  code: string;
}

export interface ApproverState {
  v: 1;
  broker: string;
  org: string;
  orgName: string;
  identityKey: string;
  name: string;
  credentialId: string;
  authenticator: AuthenticatorInfo;
  signingKey: string;
  sealingKey: string;
  enrollment: PendingEnrollment | null;
  certificate: Signed<DeviceCertBody> | null;
  /** Request ids this device approved or denied, newest last. */
  decided: string[];
  /** Highest secret version seen per path. */
  secretVersions: Record<string, number>;
  /** Highest policy version seen per policy name. */
  policyVersions: Record<string, number>;
}

export function loadState(): ApproverState | null {
  const text = localStorage.getItem(STORAGE_KEY);
  if (text === null) return null;
  const state = JSON.parse(text) as ApproverState;
  const version = (state as { v: unknown }).v;
  if (version !== 1) throw new Error(`stored approver state has unknown version ${JSON.stringify(version)}`);
  return state;
}

export function saveState(state: ApproverState): void {
  if (state.decided.length > MAX_DECIDED) state.decided = state.decided.slice(-MAX_DECIDED);
  localStorage.setItem(STORAGE_KEY, JSON.stringify(state));
}

export function clearState(): void {
  localStorage.removeItem(STORAGE_KEY);
}
