import { displayFingerprint, fingerprintOf, fromBase64Url, SigningPublicKey, type OrgTrust } from '../../protocol/index.js';
import { BrokerClient } from '../../broker/client.js';
import { ApproverError, errorCode, errorMessage } from './errors.js';
import { parseInvite, type Invite } from './invite.js';
import { deriveDeviceKeys, wipeDeviceKeys } from './keys.js';
import { saveState, type ApproverState } from './state.js';
import { announce, button, fields, h, notice, showScreen } from './ui.js';
import { verifyOwnCertificate } from './verify.js';
import { createCredential, type AuthenticatorInfo } from './webauthn.js';

/**
 * Enrollment: parse the invite, create the passkey with PRF, derive the
 * device's keys and submit only their public halves, then wait for the
 * admin's certificate and verify it against the pinned org key.
 */

const POLL_INTERVAL_MS = 1500;

export interface AppConfig {
  /** The broker origin the server's Content-Security-Policy allows, or null for this origin only. */
  broker: string | null;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export function trustOf(state: Pick<ApproverState, 'org' | 'identityKey'>): OrgTrust {
  return { org: state.org, identityKey: SigningPublicKey.fromBase64Url(state.identityKey, 'pinned identity key') };
}

function checkBrokerAllowed(invite: Invite, config: AppConfig): void {
  const origin = new URL(invite.broker).origin;
  const allowed = config.broker ?? location.origin;
  if (origin !== allowed) {
    throw new ApproverError('broker_not_allowed', `The link names broker ${origin}, but this copy of the app may only connect to ${allowed}. Ask your admin for the approver address that belongs to this broker.`);
  }
}

function errorBox(error: unknown): HTMLDivElement {
  return notice('error', h('strong', {}, 'Enrollment stopped. '), errorMessage(error), ' ', h('span', { class: 'muted' }, `(${errorCode(error)})`));
}

/** Shows the invite and the button that creates the passkey. */
export function showEnrollScreen(token: string, config: AppConfig, existing: ApproverState | null, onEnrolled: () => void): void {
  let invite: Invite;
  try {
    invite = parseInvite(token, nowSeconds());
  } catch (error) {
    showScreen('Enrollment link not valid', errorBox(error));
    return;
  }
  const status = h('div', { 'aria-live': 'polite' });
  const start = button('Create passkey and enroll', () => { void enroll(); }, { class: 'primary' });

  async function enroll(): Promise<void> {
    start.disabled = true;
    status.replaceChildren(h('p', {}, 'Waiting for your passkey…'));
    try {
      checkBrokerAllowed(invite, config);
      const credential = await createCredential({ rpName: 'Stillvault approver', userName: `${invite.name} @ ${invite.orgName}`, userDisplayName: invite.name });
      const keys = await deriveDeviceKeys(credential.prfOutput);
      const signingKey = keys.signing.publicKey.toBase64Url();
      const sealingKey = keys.sealing.publicKey.toBase64Url();
      wipeDeviceKeys(keys);

      const client = new BrokerClient(invite.broker, invite.org);
      const submitted = await client.submitEnrollment({ inviteId: invite.invite, code: invite.code, name: invite.name, platform: 'web', keys: { signingKey, sealingKey } });
      const state: ApproverState = {
        v: 1, broker: new URL(invite.broker).origin, org: invite.org, orgName: invite.orgName, identityKey: invite.identityKey, name: invite.name,
        credentialId: credential.credentialId, authenticator: credential.authenticator, signingKey, sealingKey,
        enrollment: { id: submitted.enrollment, code: invite.code }, certificate: null, decided: [], secretVersions: {}, policyVersions: {},
      };
      saveState(state);
      history.replaceState(null, '', location.pathname);
      showPendingScreen(state, onEnrolled);
    } catch (error) {
      start.disabled = false;
      status.replaceChildren(errorBox(error));
    }
  }

  showScreen(
    'Enroll this device as an approver',
    h('p', {}, 'Your admin invited this device to approve requests for secrets. Check the organisation fingerprint with your admin before you continue.'),
    h('div', { class: 'card' }, fields([
      ['Approver name', invite.name],
      ['Organisation (as named in the link)', invite.orgName],
      ['Organisation fingerprint', h('span', { class: 'fingerprint' }, displayFingerprint(invite.org))],
      ['Broker', h('code', {}, new URL(invite.broker).origin)],
    ])),
    existing?.certificate ? notice('info', `This app is already enrolled as ${existing.name}. Enrolling again replaces that enrollment on this device.`) : null,
    h('h2', {}, 'Before you enroll'),
    h('ul', {},
      h('li', {}, 'A passkey is created on this device. Your biometric or screen lock unlocks it; the approver\'s keys are derived from it each time and never stored.'),
      h('li', {}, 'Deleting this passkey destroys what only it could open. Recovery is organisational: other approvers, and your admin re-granting secrets to a newly enrolled device.'),
      h('li', {}, 'If your passkey is synced (for example by iCloud Keychain or Google Password Manager), the approver keys are available on every device it syncs to.'),
    ),
    h('div', { class: 'actions' }, start),
    status,
  );
}

function describeAuthenticator(info: AuthenticatorInfo): HTMLElement {
  const synced = info.backupEligible || info.backedUp;
  return h('div', {},
    fields([
      ['Authenticator attachment', info.attachment === 'platform' ? 'platform (built into this device)' : info.attachment],
      ['Backup eligible', info.backupEligible ? 'yes' : 'no'],
      ['Backed up', info.backedUp ? 'yes' : 'no'],
    ]),
    synced
      ? notice('info', 'This passkey can be synced. The approver keys derived from it are then available wherever it syncs, so whoever controls that account can approve as you.')
      : h('p', { class: 'muted' }, 'This passkey is bound to this device and is not synced.'),
  );
}

function keyFingerprint(publicKey: string): string {
  return displayFingerprint(fingerprintOf(fromBase64Url(publicKey, 'public key')));
}

/** Shows the fingerprints for the admin to compare and polls until the certificate arrives. */
export function showPendingScreen(state: ApproverState, onEnrolled: () => void): void {
  const enrollment = state.enrollment;
  if (enrollment === null) return;
  const status = h('p', { role: 'status' }, 'Waiting for your admin to approve this enrollment…');
  showScreen(
    'Waiting for your admin',
    h('p', {}, 'Read these two key fingerprints to your admin over a channel you trust. They compare them with what ', h('code', {}, 'stillvault enrollments approve'), ' shows before signing.'),
    h('div', { class: 'card' }, fields([
      ['Signing key', h('span', { class: 'fingerprint', 'data-testid': 'signing-fingerprint' }, keyFingerprint(state.signingKey))],
      ['Sealing key', h('span', { class: 'fingerprint', 'data-testid': 'sealing-fingerprint' }, keyFingerprint(state.sealingKey))],
      ['Enrollment id', h('code', {}, enrollment.id)],
      ['Approver name', state.name],
    ])),
    h('h2', {}, 'Your passkey'),
    describeAuthenticator(state.authenticator),
    status,
  );

  const client = new BrokerClient(state.broker, state.org);
  const poll = async (): Promise<void> => {
    try {
      const result = await client.pollEnrollment(enrollment.id, enrollment.code);
      if (result.state === 'rejected') {
        status.replaceWith(notice('error', 'Your admin rejected this enrollment. Ask for a new link if that was a mistake.'));
        return;
      }
      if (result.state === 'done' && result.certificate !== null) {
        const cert = await verifyOwnCertificate(result.certificate, trustOf(state), state, nowSeconds());
        state.certificate = cert;
        state.enrollment = null;
        saveState(state);
        announce('Enrollment complete');
        onEnrolled();
        return;
      }
    } catch (error) {
      if (errorCode(error) === 'certificate_mismatch' || errorCode(error) === 'bad_signature' || errorCode(error) === 'untrusted_signer') {
        status.replaceWith(notice('error', h('strong', {}, 'The certificate did not verify and was not accepted. '), errorMessage(error), ` (${errorCode(error)})`));
        return;
      }
      status.textContent = `Still waiting (the broker could not be reached: ${errorCode(error)}). Retrying…`;
    }
    window.setTimeout(() => { void poll(); }, POLL_INTERVAL_MS);
  };
  void poll();
}
