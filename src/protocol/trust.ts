import { ProtocolError } from './errors.js';
import type { SigningPublicKey } from './keys.js';
import { checkHeader, parseEnvelope, verifySigned, type BodyHeader, type ObjectKind, type Signed } from './signed.js';

/**
 * The trust anchor every verifier starts from: the org id and the Org
 * Identity public key pinned at enrollment. `org` must equal the key's
 * fingerprint; checkTrust enforces that.
 */
export interface OrgTrust {
  org: string;
  identityKey: SigningPublicKey;
}

/**
 * Allowed disagreement between clocks, in seconds. An object counts as
 * expired only when now > expires + CLOCK_SKEW_SECONDS, and as not yet valid
 * only when its start time > now + CLOCK_SKEW_SECONDS.
 */
export const CLOCK_SKEW_SECONDS = 120;

declare const verifiedBrand: unique symbol;

/**
 * A signed object that one of this module's verifiers accepted. The brand
 * exists only in the type system, so functions that need verified input say
 * so and callers cannot pass an object straight from the broker.
 */
export type Verified<B extends BodyHeader> = Signed<B> & { readonly [verifiedBrand]: true };

/** Checks that the trust anchor's org id is its identity key's fingerprint. */
export function checkTrust(trust: OrgTrust): void {
  const fingerprint = trust.identityKey.fingerprint();
  if (trust.org !== fingerprint) {
    throw new ProtocolError('untrusted_signer', `org id ${trust.org} is not the fingerprint of the pinned identity key (${fingerprint})`);
  }
}

/**
 * Runs the steps every verifier shares, in order: envelope shape, header
 * (version, kind, org), body shape, signer fingerprint and signature.
 */
export async function verifyEnvelope<B extends BodyHeader>(
  value: unknown,
  kind: ObjectKind,
  org: string,
  signerKey: SigningPublicKey,
  parseBody: (body: unknown) => B,
): Promise<Signed<B>> {
  const envelope = parseEnvelope(value);
  checkHeader(envelope.body, kind, org);
  const body = parseBody(envelope.body);
  await verifySigned(envelope, kind, org, signerKey);
  return { body, signer: envelope.signer, sig: envelope.sig };
}

/** Throws 'expired' when now is past `expires` plus the clock-skew leeway. */
export function checkNotExpired(what: string, expires: number, now: number): void {
  checkNow(now);
  if (now > expires + CLOCK_SKEW_SECONDS) {
    throw new ProtocolError('expired', `${what} expired at ${expires}, now is ${now}`);
  }
}

/** Throws 'not_yet_valid' when `start` is later than now plus the clock-skew leeway. */
export function checkStarted(what: string, start: number, now: number): void {
  checkNow(now);
  if (start > now + CLOCK_SKEW_SECONDS) {
    throw new ProtocolError('not_yet_valid', `${what} is valid from ${start}, now is ${now}`);
  }
}

/**
 * Checks a caller's rollback floor. NaN or undefined would make every
 * `version < minVersion` comparison false and switch the rollback check off.
 */
export function checkMinVersion(minVersion: number): void {
  if (!Number.isSafeInteger(minVersion) || minVersion < 0) throw new TypeError('minVersion must be a non-negative integer');
}

function checkNow(now: number): void {
  if (!Number.isSafeInteger(now) || now < 0) throw new TypeError('now must be integer Unix seconds');
}

/** Marks an object as verified. Only verifiers call this, after every check passed. */
export function markVerified<B extends BodyHeader>(signed: Signed<B>): Verified<B> {
  return signed as Verified<B>;
}
