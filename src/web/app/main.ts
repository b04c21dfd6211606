import { displayFingerprint } from '../../protocol/index.js';
import { showEnrollScreen, showPendingScreen, trustOf, type AppConfig } from './enroll.js';
import { errorCode, errorMessage } from './errors.js';
import { showRequestDetail, showRequestList } from './screens.js';
import { enablePush, pushPermitted, pushSupported } from './push.js';
import { Session } from './session.js';
import { clearState, loadState, type ApproverState } from './state.js';
import { announce, button, fields, h, notice, showScreen } from './ui.js';

/** Entry point of the approver web app: picks the screen from the stored state and the URL fragment. */

let session: Session | null = null;
let view: { screen: 'list' } | { screen: 'detail'; id: string } | { screen: 'other' } = { screen: 'other' };
const settledNotes: string[] = [];

async function loadConfig(): Promise<AppConfig> {
  try {
    const response = await fetch('/config.json', { cache: 'no-cache' });
    const config = (await response.json()) as { broker?: unknown };
    return { broker: typeof config.broker === 'string' ? config.broker : null };
  } catch {
    return { broker: null };
  }
}

function renderList(): void {
  if (session === null) return;
  view = { screen: 'list' };
  const notes = settledNotes.splice(0);
  const current = session;
  showRequestList(session, notes, {
    open: (id) => { renderDetail(id); },
    lock: () => { session?.lock('locked by you'); },
    enableNotifications: pushSupported() && !pushPermitted() ? () => turnOnPush(current) : null,
  });
}

function turnOnPush(current: Session): Promise<void> {
  const token = current.client.token;
  if (token === null) return Promise.reject(new Error('the session is locked'));
  return enablePush(current.state.broker, current.state.org, token);
}

function renderDetail(id: string): void {
  const current = session;
  const pending = current?.requests.get(id);
  if (current === null || pending === undefined) {
    renderList();
    return;
  }
  view = { screen: 'detail', id };
  showRequestDetail(pending, {
    approve: (requestId) => current.approve(requestId),
    deny: (requestId) => current.deny(requestId),
    back: renderList,
  });
}

function showLocked(state: ApproverState, message?: string): void {
  view = { screen: 'other' };
  const status = h('div', { 'aria-live': 'polite' });
  const unlock = button('Unlock with biometric', () => { void start(); }, { class: 'primary' });

  async function start(): Promise<void> {
    unlock.disabled = true;
    status.replaceChildren(h('p', {}, 'Confirm with your biometric…'));
    try {
      session = await Session.unlock(state, trustOf(state), {
        changed: () => {
          if (view.screen === 'list') renderList();
          if (view.screen === 'detail' && session?.requests.has(view.id) !== true) {
            // The request was settled elsewhere while its detail screen was open.
            renderList();
          }
        },
        settled: (_id, note) => {
          settledNotes.push(note);
          announce(note);
        },
        locked: (reason) => {
          session = null;
          showLocked(state, `Locked: ${reason}.`);
        },
      });
      renderList();
      // Renews the stored subscription at each unlock once the user has allowed notifications; failures only mean no pushes.
      if (pushPermitted()) turnOnPush(session).catch(() => undefined);
      const count = session.requests.size;
      announce(count === 0 ? 'Unlocked. No pending requests.' : `Unlocked. ${count} pending request${count === 1 ? '' : 's'}.`);
    } catch (error) {
      unlock.disabled = false;
      status.replaceChildren(notice('error', h('strong', {}, 'Not unlocked. '), errorMessage(error), ` (${errorCode(error)})`));
    }
  }

  showScreen(
    'Approver locked',
    message === undefined ? null : notice('info', message),
    h('p', {}, 'Unlock to receive and decide requests. Each approval asks for your biometric again.'),
    h('div', { class: 'card' }, fields([
      ['Approver', state.name],
      ['Organisation', state.orgName],
      ['Organisation fingerprint', h('span', { class: 'fingerprint' }, displayFingerprint(state.org))],
    ])),
    h('div', { class: 'actions' }, unlock),
    status,
  );
}

function showNotEnrolled(): void {
  showScreen(
    'Not enrolled',
    h('p', {}, 'This device is not an approver yet. Ask your admin for an enrollment link (', h('code', {}, 'stillvault approver invite NAME --web'), ') and open it on this device.'),
  );
}

interface TrustedTypesFactory {
  createPolicy(name: string, rules: { createScriptURL(url: string): string }): { createScriptURL(url: string): unknown };
}

/**
 * Returns the service worker's URL as a TrustedScriptURL where the browser
 * has Trusted Types: the CSP requires them for script URLs, so a plain
 * string is blocked. The policy accepts exactly '/sw.js'.
 */
function serviceWorkerUrl(): string {
  const factory = (window as { trustedTypes?: TrustedTypesFactory }).trustedTypes;
  if (factory === undefined) return '/sw.js';
  const policy = factory.createPolicy('stillvault-service-worker', {
    createScriptURL(url) {
      if (url !== '/sw.js') throw new TypeError(`script URL ${url} is not the service worker`);
      return url;
    },
  });
  // register() accepts the TrustedScriptURL object where TypeScript's DOM types say string.
  return policy.createScriptURL('/sw.js') as string;
}

async function boot(): Promise<void> {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register(serviceWorkerUrl(), { scope: '/' }).catch(() => undefined);
  }
  const config = await loadConfig();
  let state: ApproverState | null;
  try {
    state = loadState();
  } catch (error) {
    showScreen('Stored state unreadable', notice('error', errorMessage(error)), button('Forget this enrollment', () => { clearState(); location.reload(); }));
    return;
  }
  const enrolled = (): void => {
    const current = loadState();
    if (current !== null) showLocked(current, 'Enrollment complete. This device can now approve requests.');
  };

  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get('enroll');
  if (token !== null) {
    showEnrollScreen(token, config, state, enrolled);
  } else if (state === null) {
    showNotEnrolled();
  } else if (state.enrollment !== null) {
    showPendingScreen(state, enrolled);
  } else {
    showLocked(state);
  }
}

window.addEventListener('pagehide', () => { session?.lock('the page was closed'); });
void boot();
