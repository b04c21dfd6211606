// Public API of the protocol core. Other components import from here only.
export * from './errors.js';
export * from './contexts.js';
export { canonicalize, canonicalBytes, type JsonValue } from './canonical.js';
export { sha256, hashObject } from './hash.js';
export {
  toBase64Url, fromBase64Url, fromBase64UrlExact, utf8Encode, utf8Decode, concatBytes, toHex, constantTimeEqual, wipe,
} from './encoding.js';
export * from './keys.js';
export {
  OBJECT_KINDS, signObject, verifySigned, parseEnvelope, checkHeader, signedMessage, contextForKind, isObjectKind, isRecord,
  fingerprintOfBase64Url, type ObjectKind, type BodyHeader, type Signed,
} from './signed.js';
export type * from './types.js';
export { CLOCK_SKEW_SECONDS, checkTrust, type OrgTrust, type Verified } from './trust.js';
export { newId } from './shape.js';
export { MAX_PATH_LENGTH, checkSecretPath, checkPathGlob, matchPathGlob } from './paths.js';
export * from './aead.js';
export {
  sealGrant, openGrant, sealRelease, openRelease, grantAad, releaseAad,
  type GrantTarget, type ReleaseBinding, type ShareInfo, type Scheme,
} from './hpke.js';
export { MAX_NAME_LENGTH, parseOrgBody, createOrg, verifyOrg } from './org.js';
export { parseDeviceCertBody, issueDeviceCert, verifyDeviceCert } from './device-cert.js';
export { parseConsumerCertBody, issueConsumerCert, verifyConsumerCert } from './consumer-cert.js';
export { parseRevocationBody, createRevocation, verifyRevocation, isRevoked } from './revocation.js';
export {
  MAX_LEASE_SECONDS, parsePolicyBody, signPolicy, policyHash, verifyPolicy, policyCoversPath, isPolicyApprover, policyAllows, checkPolicyAllows,
} from './policy.js';
export {
  MAX_SECRET_BYTES, parseSecretBody, secretAad, buildSecretVersion, buildSecretTombstone, verifySecret, decryptSecret, type SecretVersionInput,
} from './secret.js';
export { MAX_REQUEST_LIFETIME_SECONDS, MAX_REQUEST_PATHS, parseRequestBody, createRequest, requestHash, verifyRequest } from './request.js';
export {
  parseApprovalBody, approveRequest, denyRequest, signApproval, verifyApproval, openApproval, type ApproveInput, type ApprovalContext,
} from './approval.js';
export { parseAuditHeadBody, signAuditHead, verifyAuditHead } from './audit-head.js';
