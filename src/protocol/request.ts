import { HASH_CONTEXT, PROTOCOL_VERSION } from './contexts.js';
import { ProtocolError } from './errors.js';
import { hashObject } from './hash.js';
import { SigningPublicKey, type SigningPrivateKey } from './keys.js';
import { MAX_NAME_LENGTH } from './org.js';
import { checkSecretPath } from './paths.js';
import { MAX_EXE_LENGTH, MAX_LEASE_SECONDS, MAX_USER_LENGTH } from './policy.js';
import { expectArray, expectAuditHeadRef, expectFingerprint, expectId, expectInteger, expectMembers, expectPublicKey, expectString } from './shape.js';
import { signObject, type Signed } from './signed.js';
import { checkNotExpired, checkStarted, checkTrust, markVerified, verifyEnvelope, type OrgTrust, type Verified } from './trust.js';
import type { ConsumerCertBody, RequestBody, Requester } from './types.js';

/** Maximum time a request may stay open (expires - created): 15 minutes. */
export const MAX_REQUEST_LIFETIME_SECONDS = 15 * 60;
export const MAX_REQUEST_PATHS = 16;
export const MAX_REASON_LENGTH = 1024;
export const MAX_CMDLINE_ARGS = 256;
export const MAX_CMDLINE_ARG_LENGTH = 4096;
const MAX_ID_32 = 2 ** 32 - 1;

function parseRequester(value: unknown): Requester {
  const requester = expectMembers(value, 'request.requester', ['uid', 'gid', 'user', 'pid', 'exe', 'cmdline']);
  return {
    uid: expectInteger(requester.uid, 'request.requester.uid', 0, MAX_ID_32),
    gid: expectInteger(requester.gid, 'request.requester.gid', 0, MAX_ID_32),
    user: expectString(requester.user, 'request.requester.user', MAX_USER_LENGTH, 0),
    pid: expectInteger(requester.pid, 'request.requester.pid', 1, MAX_ID_32),
    exe: expectString(requester.exe, 'request.requester.exe', MAX_EXE_LENGTH),
    cmdline: expectArray(requester.cmdline, 'request.requester.cmdline', 0, MAX_CMDLINE_ARGS, (item, name) => expectString(item, name, MAX_CMDLINE_ARG_LENGTH, 0)),
  };
}

/** Checks the exact shape of a request body, including its lifetime bound. */
export function parseRequestBody(value: unknown): RequestBody {
  const body = expectMembers(value, 'request', [
    'v', 'kind', 'org', 'id', 'consumer', 'host', 'paths', 'requester', 'reason', 'leaseSeconds', 'ephemeralKey', 'created', 'expires', 'auditHead',
  ]);
  const request: RequestBody = {
    v: PROTOCOL_VERSION,
    kind: 'request',
    org: expectFingerprint(body.org, 'request.org'),
    id: expectId(body.id, 'request.id'),
    consumer: expectId(body.consumer, 'request.consumer'),
    host: expectString(body.host, 'request.host', MAX_NAME_LENGTH),
    paths: expectArray(body.paths, 'request.paths', 1, MAX_REQUEST_PATHS, checkSecretPath, true),
    requester: parseRequester(body.requester),
    reason: expectString(body.reason, 'request.reason', MAX_REASON_LENGTH, 0),
    leaseSeconds: expectInteger(body.leaseSeconds, 'request.leaseSeconds', 1, MAX_LEASE_SECONDS),
    ephemeralKey: expectPublicKey(body.ephemeralKey, 'request.ephemeralKey'),
    created: expectInteger(body.created, 'request.created'),
    expires: expectInteger(body.expires, 'request.expires'),
    auditHead: expectAuditHeadRef(body.auditHead, 'request.auditHead'),
  };
  const lifetime = request.expires - request.created;
  if (lifetime <= 0 || lifetime > MAX_REQUEST_LIFETIME_SECONDS) {
    throw new ProtocolError('invalid_object', `request must expire 1 to ${MAX_REQUEST_LIFETIME_SECONDS} seconds after creation, got ${lifetime}`);
  }
  return request;
}

/** Signs a request with the consumer host key. `ephemeralKey` is the base64url X25519 public key minted for this request. */
export async function createRequest(hostKey: SigningPrivateKey, fields: Omit<RequestBody, 'v' | 'kind'>): Promise<Signed<RequestBody>> {
  const body = parseRequestBody({ ...fields, v: PROTOCOL_VERSION, kind: 'request' });
  return signObject(body, hostKey);
}

/**
 * Returns the request hash that approvals and releases bind to:
 * hashObject('stillvault/v1/request-hash', body). It covers the body, which
 * is exactly the content the daemon signed; the signature is left out
 * because it adds no content and is checked separately.
 */
export function requestHash(request: Signed<RequestBody>): string {
  return hashObject(HASH_CONTEXT.requestHash, request.body);
}

/**
 * Verifies a request, in order: header, shape, that the consumer certificate
 * (already verified) contains the signing host key and names this consumer, then time:
 * created no later than now + skew, and now no later than expires + skew.
 */
export async function verifyRequest(
  value: unknown,
  trust: OrgTrust,
  consumerCert: Verified<ConsumerCertBody>,
  now: number,
): Promise<Verified<RequestBody>> {
  checkTrust(trust);
  if (consumerCert.body.org !== trust.org) {
    throw new ProtocolError('wrong_org', `consumer certificate belongs to org ${consumerCert.body.org}, expected ${trust.org}`);
  }
  const hostKey = SigningPublicKey.fromBase64Url(consumerCert.body.hostKey, 'consumer-cert.hostKey');
  const signed = await verifyEnvelope(value, 'request', trust.org, hostKey, parseRequestBody);
  if (signed.body.consumer !== consumerCert.body.consumer) {
    throw new ProtocolError('binding_mismatch', `request names consumer ${signed.body.consumer}, certificate is for ${consumerCert.body.consumer}`);
  }
  checkNotExpired('consumer certificate', consumerCert.body.expires, now);
  checkStarted('request', signed.body.created, now);
  checkNotExpired('request', signed.body.expires, now);
  return markVerified(signed);
}
