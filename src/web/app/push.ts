import { fromBase64Url } from '../../protocol/index.js';
import { ApproverError } from './errors.js';

/**
 * Web Push for the locked app: the browser's push subscription is stored at
 * the broker for this device, and the broker sends a notification when a
 * request arrives while the app is not connected. The notification carries
 * only the request id; the app shows the request after it is unlocked and
 * has verified the bundle.
 */

export function pushSupported(): boolean {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

/** Whether the user already allowed notifications, so the app can renew the subscription without asking. */
export function pushPermitted(): boolean {
  return pushSupported() && Notification.permission === 'granted';
}

async function vapidPublicKey(broker: string): Promise<Uint8Array> {
  const response = await fetch(`${broker}/v1/push/vapid-public-key`);
  if (!response.ok) throw new ApproverError('push_unavailable', `The broker does not send notifications (HTTP ${response.status}).`);
  const { publicKey } = (await response.json()) as { publicKey?: unknown };
  if (typeof publicKey !== 'string') throw new ApproverError('push_unavailable', 'The broker returned no VAPID public key.');
  return fromBase64Url(publicKey, 'VAPID public key');
}

function sameKey(current: ArrayBuffer | null, expected: Uint8Array): boolean {
  if (current === null) return false;
  const bytes = new Uint8Array(current);
  return bytes.length === expected.length && bytes.every((byte, index) => byte === expected[index]);
}

/**
 * Asks for notification permission if needed, subscribes with the broker's
 * VAPID key (replacing a subscription made with another key) and stores the
 * subscription at the broker. `token` is the session's bearer token.
 */
export async function enablePush(broker: string, org: string, token: string): Promise<void> {
  if (!pushSupported()) throw new ApproverError('push_unavailable', 'This browser does not support Web Push notifications.');
  if (await Notification.requestPermission() !== 'granted') {
    throw new ApproverError('push_unavailable', 'Notifications are blocked for this site. Allow them in the browser\'s site settings.');
  }
  const key = await vapidPublicKey(broker);
  const registration = await navigator.serviceWorker.ready;
  let subscription = await registration.pushManager.getSubscription();
  if (subscription !== null && !sameKey(subscription.options.applicationServerKey, key)) {
    await subscription.unsubscribe();
    subscription = null;
  }
  subscription ??= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: new Uint8Array(key) });
  const response = await fetch(`${broker}/v1/orgs/${org}/push-subscription`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(subscription.toJSON()),
  });
  if (!response.ok) throw new ApproverError('push_unavailable', `The broker did not store the push subscription (HTTP ${response.status}).`);
}
