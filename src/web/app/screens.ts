import type { RequestBody } from '../../protocol/index.js';
import { errorCode, errorMessage } from './errors.js';
import type { PendingRequest, Session } from './session.js';
import { announce, button, fields, h, notice, showScreen } from './ui.js';
import type { VerifiedBundle } from '../../approver/verify.js';

/**
 * The request list and detail screens. The detail screen shows only fields
 * of the request body the daemon signed (after verifyBundle accepted it),
 * never text the broker added next to them.
 */

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export function formatDuration(seconds: number): string {
  if (seconds <= 0) return '0 s';
  const units: [number, string][] = [[86_400, 'd'], [3600, 'h'], [60, 'min'], [1, 's']];
  const parts: string[] = [];
  let rest = seconds;
  for (const [size, name] of units) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)} ${name}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

function requestSummary(body: RequestBody): string {
  return `${body.paths.join(', ')} for ${body.requester.user} on ${body.host}`;
}

export interface ListCallbacks {
  open: (id: string) => void;
  lock: () => void;
  /** Turns on Web Push notifications; null when they are on already or the browser has none. */
  enableNotifications: (() => Promise<void>) | null;
}

function notificationsControl(enable: () => Promise<void>): HTMLElement {
  const status = h('div', { 'aria-live': 'polite' });
  const turnOn = button('Notify me while locked', () => {
    turnOn.disabled = true;
    enable().then(() => {
      turnOn.remove();
      status.replaceChildren(notice('ok', 'Notifications are on. They name no secret, only that a request is waiting.'));
    }, (error: unknown) => {
      turnOn.disabled = false;
      status.replaceChildren(notice('error', h('strong', {}, 'Notifications not turned on. '), errorMessage(error), ` (${errorCode(error)})`));
    });
  });
  return h('div', {}, turnOn, status);
}

/** Renders the live list of pending requests. `notes` are settled-elsewhere messages to show once. */
export function showRequestList(session: Session, notes: string[], callbacks: ListCallbacks): void {
  const items = [...session.requests.values()];
  const list = h('ul', { class: 'requests', 'aria-label': 'Pending requests' });
  for (const pending of items) {
    const label = pending.verified === null
      ? `Rejected request ${pending.id}: it failed verification (${errorCode(pending.failure)})`
      : requestSummary(pending.verified.request.body);
    list.append(h('li', {}, button(label, () => { callbacks.open(pending.id); }, { class: 'request', 'data-request': pending.id })));
  }
  showScreen(
    'Requests',
    h('p', { class: 'muted' }, `Signed in as ${session.state.name} (${session.state.orgName}).`),
    ...notes.map((text) => notice('info', text)),
    items.length === 0 ? h('p', {}, 'No pending requests. New requests appear here as they arrive.') : list,
    h('div', { class: 'actions' }, button('Lock', callbacks.lock)),
    callbacks.enableNotifications === null ? null : notificationsControl(callbacks.enableNotifications),
  );
}

export interface DetailCallbacks {
  approve: (id: string) => Promise<VerifiedBundle>;
  deny: (id: string) => Promise<VerifiedBundle>;
  back: () => void;
}

function refusedDetail(pending: PendingRequest, back: () => void): void {
  showScreen(
    'Request rejected',
    notice('error',
      h('strong', {}, 'This request failed verification and cannot be approved. '),
      'It may have been changed after the daemon signed it, or it is expired or already decided. ',
      h('span', {}, `Reason: ${errorMessage(pending.failure)} (${errorCode(pending.failure)})`)),
    h('div', { class: 'actions' }, button('Back to requests', back)),
  );
}

/** Renders one verified request with its approve and deny actions. */
export function showRequestDetail(pending: PendingRequest, callbacks: DetailCallbacks): void {
  const verified = pending.verified;
  if (verified === null) {
    refusedDetail(pending, callbacks.back);
    return;
  }
  const body = verified.request.body;
  const versions = new Map(verified.secrets.map((secret) => [secret.body.path, secret.body.version]));
  const timeLeft = h('span', { 'data-testid': 'time-left' }, formatDuration(body.expires - nowSeconds()));
  const status = h('div', { 'aria-live': 'polite' });
  const approve = button('Approve with biometric', () => { void act('approve'); }, { class: 'primary' });
  const deny = button('Deny', () => { void act('deny'); }, { class: 'danger' });

  const timer = window.setInterval(() => {
    if (!document.body.contains(timeLeft)) {
      window.clearInterval(timer);
      return;
    }
    const left = body.expires - nowSeconds();
    timeLeft.textContent = left > 0 ? formatDuration(left) : 'expired';
    if (left <= 0) {
      approve.disabled = true;
      deny.disabled = true;
      status.replaceChildren(notice('error', 'This request has expired and can no longer be approved.'));
      window.clearInterval(timer);
    }
  }, 1000);

  async function act(decision: 'approve' | 'deny'): Promise<void> {
    approve.disabled = true;
    deny.disabled = true;
    status.replaceChildren(h('p', {}, decision === 'approve' ? 'Confirm with your biometric…' : 'Sending the denial…'));
    try {
      const done = decision === 'approve' ? await callbacks.approve(pending.id) : await callbacks.deny(pending.id);
      window.clearInterval(timer);
      showDecided(done, decision, callbacks.back);
    } catch (error) {
      status.replaceChildren(notice('error', h('strong', {}, decision === 'approve' ? 'Not approved. ' : 'Not denied. '), errorMessage(error), ` (${errorCode(error)})`));
      const retry = errorCode(error) === 'cancelled';
      approve.disabled = !retry;
      deny.disabled = !retry;
    }
  }

  showScreen(
    'Approve this request?',
    h('p', { class: 'muted' }, 'Everything below was signed by the requesting machine\'s daemon and verified on this device.'),
    h('div', { class: 'card' }, fields([
      ['Secrets', h('ul', {}, ...body.paths.map((path) => h('li', {}, h('code', { 'data-testid': 'path' }, path), ` (version ${versions.get(path) ?? '?'})`)))],
      ['Host', h('span', { 'data-testid': 'host' }, body.host)],
      ['User', `${body.requester.user} (uid ${body.requester.uid})`],
      ['Program', h('code', {}, body.requester.exe)],
      ['Command line', h('code', {}, body.requester.cmdline.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(' '))],
      ['Lease', formatDuration(Math.min(body.leaseSeconds, verified.policy.body.maxLeaseSeconds))],
      // The daemon serves a lease to any later process with the same uid and executable, not only to the one that asked.
      ['Lease reuse', h('span', { 'data-testid': 'lease-reuse' },
        `any process of uid ${body.requester.uid} running ${body.requester.exe}, for ${formatDuration(Math.min(body.leaseSeconds, verified.policy.body.maxLeaseSeconds))}`)],
      ['Time left to decide', timeLeft],
      ['Policy', `${verified.policy.body.name} (version ${verified.policy.body.version})`],
    ])),
    h('h2', { id: 'reason-heading' }, 'Reason, in the agent\'s own words'),
    h('p', { class: 'muted' }, 'The requesting agent wrote this text. It is a claim, not something Stillvault checked.'),
    h('blockquote', { class: 'reason', 'aria-labelledby': 'reason-heading', 'data-testid': 'reason' }, body.reason === '' ? '(no reason given)' : body.reason),
    h('div', { class: 'actions' }, approve, deny),
    status,
    h('div', { class: 'actions' }, button('Back to requests', () => { window.clearInterval(timer); callbacks.back(); })),
  );
}

function showDecided(done: VerifiedBundle, decision: 'approve' | 'deny', back: () => void): void {
  const body = done.request.body;
  const text = decision === 'approve'
    ? `Approved. ${body.paths.join(', ')} was sealed to the requesting process on ${body.host}; this device never saw the secret.`
    : `Denied. The request for ${body.paths.join(', ')} on ${body.host} was refused.`;
  announce(text);
  showScreen(
    decision === 'approve' ? 'Approved' : 'Denied',
    notice('ok', text),
    h('div', { class: 'actions' }, button('Back to requests', back, { class: 'primary' })),
  );
}
