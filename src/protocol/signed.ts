import { canonicalBytes } from './canonical.js';
import { PROTOCOL_VERSION, SIGNATURE_CONTEXT } from './contexts.js';
import { ProtocolError } from './errors.js';
import { concatBytes, fromBase64Url, toBase64Url, utf8Encode } from './encoding.js';
import { fingerprintOf, type SigningPrivateKey, type SigningPublicKey } from './keys.js';

/** Every kind of signed object, mapped to its signature context. */
export const OBJECT_KINDS = {
  'org': SIGNATURE_CONTEXT.org,
  'device-cert': SIGNATURE_CONTEXT.deviceCert,
  'consumer-cert': SIGNATURE_CONTEXT.consumerCert,
  'policy': SIGNATURE_CONTEXT.policy,
  'secret': SIGNATURE_CONTEXT.secret,
  'request': SIGNATURE_CONTEXT.request,
  'approval': SIGNATURE_CONTEXT.approval,
  'revocation': SIGNATURE_CONTEXT.revocation,
  'audit-head': SIGNATURE_CONTEXT.auditHead,
} as const;

export type ObjectKind = keyof typeof OBJECT_KINDS;

/** The members every signed body starts with. */
export interface BodyHeader<K extends ObjectKind = ObjectKind> {
  v: typeof PROTOCOL_VERSION;
  kind: K;
  org: string;
}

/**
 * A signed object on the wire: the body, the fingerprint of the key that
 * signed it, and the Ed25519 signature over
 * UTF-8(context) || 0x00 || JCS(body), all bytes as base64url.
 */
export interface Signed<B extends BodyHeader = BodyHeader> {
  body: B;
  signer: string;
  sig: string;
}

const SIGNATURE_LENGTH = 64;

/** Returns the exact bytes an object's signature covers. */
export function signedMessage(context: string, body: unknown): Uint8Array {
  return concatBytes(utf8Encode(context), new Uint8Array([0]), canonicalBytes(body));
}

export function contextForKind(kind: ObjectKind): string {
  return OBJECT_KINDS[kind];
}

export function isObjectKind(kind: unknown): kind is ObjectKind {
  return typeof kind === 'string' && Object.hasOwn(OBJECT_KINDS, kind);
}

/** Signs `body` under the context of its kind. */
export async function signObject<B extends BodyHeader>(body: B, key: SigningPrivateKey): Promise<Signed<B>> {
  checkHeader(body, body.kind, body.org);
  const signature = await key.sign(signedMessage(contextForKind(body.kind), body));
  return { body, signer: key.publicKey.fingerprint(), sig: toBase64Url(signature) };
}

/**
 * Checks the envelope's shape and header, then that `signerKey` signed it
 * under the context of `kind`. Throws ProtocolError; never returns false.
 * The caller chooses `signerKey` from a chain it trusts, never from the object.
 */
export async function verifySigned<K extends ObjectKind>(
  value: unknown,
  kind: K,
  org: string,
  signerKey: SigningPublicKey,
): Promise<Signed<BodyHeader<K> & Record<string, unknown>>> {
  const envelope = parseEnvelope(value);
  checkHeader(envelope.body, kind, org);
  if (envelope.signer !== signerKey.fingerprint()) {
    throw new ProtocolError('untrusted_signer', `${kind} was signed by key ${envelope.signer}, expected ${signerKey.fingerprint()}`);
  }
  const signature = fromBase64Url(envelope.sig, 'sig');
  const message = signedMessage(contextForKind(kind), envelope.body);
  if (signature.length !== SIGNATURE_LENGTH || !(await signerKey.verify(message, signature))) {
    throw new ProtocolError('bad_signature', `${kind} signature does not verify`);
  }
  return envelope as Signed<BodyHeader<K> & Record<string, unknown>>;
}

/** Checks that `value` has exactly the members body, signer and sig, of the right types. */
export function parseEnvelope(value: unknown): Signed<BodyHeader & Record<string, unknown>> {
  if (!isRecord(value)) throw new ProtocolError('invalid_object', 'signed object must be a JSON object');
  const keys = Object.keys(value).sort().join(',');
  if (keys !== 'body,sig,signer') {
    throw new ProtocolError('invalid_object', `signed object must have exactly body, signer and sig, got ${keys}`);
  }
  const { body, signer, sig } = value;
  if (!isRecord(body)) throw new ProtocolError('invalid_object', 'body must be a JSON object');
  if (typeof signer !== 'string' || typeof sig !== 'string') {
    throw new ProtocolError('invalid_object', 'signer and sig must be strings');
  }
  return { body: body as BodyHeader & Record<string, unknown>, signer, sig };
}

/** Checks v, kind and org of a body against what the caller expects. */
export function checkHeader(body: unknown, kind: ObjectKind, org: string): void {
  if (!isRecord(body)) throw new ProtocolError('invalid_object', 'body must be a JSON object');
  if (body.v !== PROTOCOL_VERSION) {
    throw new ProtocolError('unknown_version', `unsupported protocol version ${JSON.stringify(body.v)}, expected ${PROTOCOL_VERSION}`);
  }
  if (!isObjectKind(body.kind)) {
    throw new ProtocolError('unknown_kind', `unknown object kind ${JSON.stringify(body.kind)}`);
  }
  if (body.kind !== kind) {
    throw new ProtocolError('invalid_object', `expected a ${kind} object, got ${body.kind}`);
  }
  if (body.org !== org) {
    throw new ProtocolError('wrong_org', `object belongs to org ${JSON.stringify(body.org)}, expected ${org}`);
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Returns the fingerprint for a raw public key given as base64url. */
export function fingerprintOfBase64Url(publicKey: string): string {
  return fingerprintOf(fromBase64Url(publicKey, 'public key'));
}
