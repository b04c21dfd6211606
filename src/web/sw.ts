/**
 * The approver's service worker: it makes the app open offline and
 * installable. It caches only the files of this bundle, listed at build time,
 * and never touches requests to other origins (the broker), so a broker
 * response is never cached or replayed from here. It also shows the Web Push
 * notification the broker sends for a new request, and opens the app when
 * the notification is clicked.
 */

declare const __PRECACHE__: string[];
declare const __BUNDLE_VERSION__: string;

interface ExtendableEvent extends Event {
  waitUntil(promise: Promise<unknown>): void;
}

interface FetchEvent extends ExtendableEvent {
  readonly request: Request;
  respondWith(response: Promise<Response>): void;
}

interface PushEvent extends ExtendableEvent {
  readonly data: { text(): string } | null;
}

interface NotificationEvent extends ExtendableEvent {
  readonly notification: Notification;
}

interface WindowClient {
  readonly url: string;
  focus(): Promise<WindowClient>;
}

interface WorkerScope {
  location: Location;
  registration: { showNotification(title: string, options: NotificationOptions): Promise<void> };
  skipWaiting(): Promise<void>;
  clients: {
    claim(): Promise<void>;
    matchAll(options: { type: 'window'; includeUncontrolled: boolean }): Promise<readonly WindowClient[]>;
    openWindow(url: string): Promise<WindowClient | null>;
  };
  addEventListener(type: 'install' | 'activate', listener: (event: ExtendableEvent) => void): void;
  addEventListener(type: 'fetch', listener: (event: FetchEvent) => void): void;
  addEventListener(type: 'push', listener: (event: PushEvent) => void): void;
  addEventListener(type: 'notificationclick', listener: (event: NotificationEvent) => void): void;
}

const worker = self as unknown as WorkerScope;
const CACHE_NAME = `stillvault-approver-${__BUNDLE_VERSION__}`;
const PRECACHE = new Set(__PRECACHE__);

worker.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE_NAME).then((cache) => cache.addAll([...PRECACHE])).then(() => worker.skipWaiting()));
});

worker.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('stillvault-approver-') && name !== CACHE_NAME) await caches.delete(name);
    }
    await worker.clients.claim();
  })());
});

worker.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== worker.location.origin) return;
  const key = event.request.mode === 'navigate' ? '/' : url.pathname;
  if (!PRECACHE.has(key)) return;
  event.respondWith((async () => {
    const cached = await caches.match(key, { cacheName: CACHE_NAME });
    return cached ?? fetch(event.request);
  })());
});

const NOTIFICATION_TITLE = 'Stillvault approver';
const NOTIFICATION_BODY = 'Approval requested. Open the app and unlock it to see the request.';

/** Returns the request id of a push payload `{v: 1, request, label}`, or null for anything else. */
function pushedRequestId(text: string | undefined): string | null {
  try {
    const payload = JSON.parse(text ?? '') as { v?: unknown; request?: unknown };
    return payload.v === 1 && typeof payload.request === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(payload.request) ? payload.request : null;
  } catch {
    return null;
  }
}

// The text shown is fixed here, not taken from the payload: the push service relays the payload and must not choose what the approver reads.
worker.addEventListener('push', (event) => {
  const request = pushedRequestId(event.data?.text());
  event.waitUntil(worker.registration.showNotification(NOTIFICATION_TITLE, {
    body: NOTIFICATION_BODY,
    tag: request === null ? 'stillvault-request' : `stillvault-request-${request}`,
    data: { request },
  }));
});

worker.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const open = await worker.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const app = open.find((client) => new URL(client.url).origin === worker.location.origin);
    if (app !== undefined) await app.focus();
    else await worker.clients.openWindow('/');
  })());
});
