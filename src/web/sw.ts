/**
 * The approver's service worker: it makes the app open offline and
 * installable. It caches only the files of this bundle, listed at build time,
 * and never touches requests to other origins (the broker), so a broker
 * response is never cached or replayed from here.
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

interface WorkerScope {
  location: Location;
  skipWaiting(): Promise<void>;
  clients: { claim(): Promise<void> };
  addEventListener(type: 'install' | 'activate', listener: (event: ExtendableEvent) => void): void;
  addEventListener(type: 'fetch', listener: (event: FetchEvent) => void): void;
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
