import { KDF_LABEL, sha256, toBase64Url, fromBase64Url, utf8Encode, wipe } from '../../protocol/index.js';
import { ApproverError } from './errors.js';

/**
 * WebAuthn with the PRF extension. The PRF output is the only input from
 * which the device keys are derived (see keys.ts); it exists in memory only
 * between the authenticator's response and the derivation, and it is never
 * stored or sent anywhere.
 */

const PRF_MISSING =
  'This browser or authenticator does not support the WebAuthn PRF extension, so it cannot hold approver keys. ' +
  'Chrome 116+ / Safari 18+ with a platform authenticator (Touch ID, Face ID, Windows Hello, Android screen lock) do.';
const UV_MISSING =
  'The authenticator did not verify you (no biometric or PIN check). An approval must always be confirmed by user verification, so nothing was done.';

// Flag bits of authenticatorData (WebAuthn Level 3, section 6.1).
const FLAG_USER_VERIFIED = 0x04;
const FLAG_BACKUP_ELIGIBLE = 0x08;
const FLAG_BACKED_UP = 0x10;
const FLAGS_OFFSET = 32;

/** Returns the PRF input: SHA-256 of the label 'stillvault/v1/prf-salt'. */
export function prfSalt(): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(sha256(utf8Encode(KDF_LABEL.prfSalt)));
}

export interface AuthenticatorInfo {
  /** 'platform' (built into this device), 'cross-platform' (a security key or phone) or 'unknown'. */
  attachment: string;
  backupEligible: boolean;
  backedUp: boolean;
}

export interface NewCredential {
  credentialId: string;
  authenticator: AuthenticatorInfo;
  /** The 32-byte PRF output; the caller derives the keys and wipes it. */
  prfOutput: Uint8Array;
}

function requireWebAuthn(): CredentialsContainer {
  if (typeof PublicKeyCredential === 'undefined' || !('credentials' in navigator)) {
    throw new ApproverError('webauthn_unavailable', 'This browser has no WebAuthn (passkey) support. Open the link in Chrome 116+ or Safari 18+.');
  }
  return navigator.credentials;
}

function mapDomError(error: unknown): never {
  if (error instanceof ApproverError) throw error;
  const name = error instanceof DOMException ? error.name : '';
  if (name === 'NotAllowedError' || name === 'AbortError') {
    throw new ApproverError('cancelled', 'The passkey prompt was cancelled or timed out. Nothing was done.', { cause: error });
  }
  if (name === 'NotSupportedError') throw new ApproverError('prf_unsupported', PRF_MISSING, { cause: error });
  if (name === 'SecurityError') {
    throw new ApproverError('webauthn_unavailable', 'The browser rejected passkeys on this address. Serve the app over https (or from localhost).', { cause: error });
  }
  throw new ApproverError('webauthn_unavailable', `The passkey operation failed (${name || 'unknown error'}).`, { cause: error });
}

function flagsOf(authenticatorData: ArrayBuffer): number {
  const flags = new Uint8Array(authenticatorData)[FLAGS_OFFSET];
  if (flags === undefined) throw new ApproverError('user_verification_failed', 'The authenticator returned malformed data.');
  return flags;
}

/** Copies the PRF `first` result and rejects a missing or empty one: no key is ever derived from empty input. */
function prfFirst(extensions: AuthenticationExtensionsClientOutputs): Uint8Array {
  const results = (extensions as { prf?: { results?: { first?: BufferSource } } }).prf?.results?.first;
  if (results === undefined) throw new ApproverError('prf_unsupported', PRF_MISSING);
  const bytes = results instanceof ArrayBuffer ? new Uint8Array(results.slice(0)) : new Uint8Array(results.buffer.slice(results.byteOffset, results.byteOffset + results.byteLength));
  if (bytes.length !== 32 || bytes.every((byte) => byte === 0)) {
    wipe(bytes);
    throw new ApproverError('prf_unsupported', PRF_MISSING);
  }
  return bytes;
}

/**
 * Creates the approver's passkey with user verification required and the
 * PRF extension evaluated on the protocol salt. If the authenticator enables
 * PRF but returns no result at creation (some do), one assertion follows to
 * get it.
 */
export async function createCredential(input: { rpName: string; userName: string; userDisplayName: string }): Promise<NewCredential> {
  const credentials = requireWebAuthn();
  const salt = prfSalt();
  let credential: PublicKeyCredential;
  try {
    const created = await credentials.create({
      publicKey: {
        rp: { name: input.rpName },
        user: { id: crypto.getRandomValues(new Uint8Array(16)), name: input.userName, displayName: input.userDisplayName },
        challenge: crypto.getRandomValues(new Uint8Array(32)),
        pubKeyCredParams: [{ type: 'public-key', alg: -7 }, { type: 'public-key', alg: -8 }, { type: 'public-key', alg: -257 }],
        authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
        attestation: 'none',
        timeout: 120_000,
        extensions: { prf: { eval: { first: salt } } },
      },
    });
    if (!(created instanceof PublicKeyCredential)) throw new ApproverError('webauthn_unavailable', 'The browser returned no passkey.');
    credential = created;
  } catch (error) {
    mapDomError(error);
  }

  const response = credential.response as AuthenticatorAttestationResponse;
  const flags = flagsOf(response.getAuthenticatorData());
  if ((flags & FLAG_USER_VERIFIED) === 0) throw new ApproverError('user_verification_failed', UV_MISSING);
  const extensions = credential.getClientExtensionResults() as { prf?: { enabled?: boolean; results?: unknown } };
  if (extensions.prf?.enabled !== true && extensions.prf?.results === undefined) throw new ApproverError('prf_unsupported', PRF_MISSING);

  const credentialId = toBase64Url(new Uint8Array(credential.rawId));
  const authenticator: AuthenticatorInfo = {
    attachment: credential.authenticatorAttachment ?? 'unknown',
    backupEligible: (flags & FLAG_BACKUP_ELIGIBLE) !== 0,
    backedUp: (flags & FLAG_BACKED_UP) !== 0,
  };
  const prfOutput = extensions.prf.results === undefined ? await evaluatePrf(credentialId) : prfFirst(credential.getClientExtensionResults());
  return { credentialId, authenticator, prfOutput };
}

/**
 * Asks for the biometric (user verification required) on this credential
 * and returns the PRF output. Throws 'prf_unsupported' when the result is
 * missing or empty, and 'user_verification_failed' when the authenticator did
 * not verify the user. No path proceeds without both.
 */
export async function evaluatePrf(credentialId: string): Promise<Uint8Array> {
  const credentials = requireWebAuthn();
  let credential: PublicKeyCredential;
  try {
    const got = await credentials.get({
      publicKey: {
        challenge: crypto.getRandomValues(new Uint8Array(32)),
        allowCredentials: [{ type: 'public-key', id: Uint8Array.from(fromBase64Url(credentialId, 'credential id')) }],
        userVerification: 'required',
        timeout: 120_000,
        extensions: { prf: { eval: { first: prfSalt() } } },
      },
    });
    if (!(got instanceof PublicKeyCredential)) throw new ApproverError('webauthn_unavailable', 'The browser returned no passkey.');
    credential = got;
  } catch (error) {
    mapDomError(error);
  }
  if (toBase64Url(new Uint8Array(credential.rawId)) !== credentialId) {
    throw new ApproverError('wrong_passkey', 'The browser used a different passkey from the one this approver enrolled with.');
  }
  const response = credential.response as AuthenticatorAssertionResponse;
  if ((flagsOf(response.authenticatorData) & FLAG_USER_VERIFIED) === 0) throw new ApproverError('user_verification_failed', UV_MISSING);
  return prfFirst(credential.getClientExtensionResults());
}
