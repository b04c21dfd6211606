/**
 * Every domain-separation string in the protocol. A signature, hash or HPKE
 * context made for one purpose never verifies or opens under another,
 * because each purpose mixes its own string into the signed or derived bytes.
 */
export const PROTOCOL_VERSION = 1;

export const SIGNATURE_CONTEXT = {
  org: 'stillvault/v1/org',
  deviceCert: 'stillvault/v1/device-cert',
  consumerCert: 'stillvault/v1/consumer-cert',
  policy: 'stillvault/v1/policy',
  secret: 'stillvault/v1/secret',
  request: 'stillvault/v1/request',
  approval: 'stillvault/v1/approval',
  revocation: 'stillvault/v1/revocation',
  auditHead: 'stillvault/v1/audit-head',
  authChallenge: 'stillvault/v1/auth-challenge',
} as const;

export const HASH_CONTEXT = {
  keyFingerprint: 'stillvault/v1/key-fingerprint',
  requestHash: 'stillvault/v1/request-hash',
  policyHash: 'stillvault/v1/policy-hash',
  secretHeader: 'stillvault/v1/secret-header',
  auditEntry: 'stillvault/v1/audit-entry',
} as const;

export const HPKE_INFO = {
  grant: 'stillvault/v1/grant',
  release: 'stillvault/v1/release',
} as const;

export const KDF_LABEL = {
  prfSigningKey: 'stillvault/v1/prf-signing-key',
  prfSealingKey: 'stillvault/v1/prf-sealing-key',
  prfSalt: 'stillvault/v1/prf-salt',
  keyEncryption: 'stillvault/v1/key-encryption',
} as const;

export const SECRET_AAD_CONTEXT = 'stillvault/v1/secret-aad';
