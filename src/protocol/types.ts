import type { BodyHeader } from './signed.js';

/**
 * Bodies of every signed object. Times are integer Unix seconds, binary
 * values are unpadded base64url, ids are base64url of 16 random bytes unless
 * stated otherwise. docs/protocol.md is the normative description.
 */

/** An org's registration, self-signed by its Org Identity key. `org` is that key's fingerprint. */
export interface OrgBody extends BodyHeader<'org'> {
  name: string;
  identityKey: string;
  created: number;
}

/** Certifies an approver device's keys; signed by the Org Identity key. */
export interface DeviceCertBody extends BodyHeader<'device-cert'> {
  device: string;
  name: string;
  platform: 'terminal' | 'web';
  signingKey: string;
  sealingKey: string;
  issued: number;
  expires: number;
}

/** Certifies a consumer host's key; signed by the Org Identity key. */
export interface ConsumerCertBody extends BodyHeader<'consumer-cert'> {
  consumer: string;
  name: string;
  hostKey: string;
  issued: number;
  expires: number;
}

/** A rule for the processes that may request under a policy: every listed field must match, and absent fields match anything. */
export interface RequesterRule {
  users?: string[];
  uids?: number[];
  exes?: string[];
}

/** The approvers that decide on a set of paths, and for which consumers and processes; signed by the Org Identity key. */
export interface PolicyBody extends BodyHeader<'policy'> {
  name: string;
  version: number;
  paths: string[];
  approvers: string[];
  quorum: number;
  maxLeaseSeconds: number;
  consumers: string[];
  requesters: RequesterRule[];
  issued: number;
}

/** The policy a secret version was granted under, pinned by its hash. */
export interface PolicyRef {
  name: string;
  version: number;
  hash: string;
}

/**
 * A DEK (or a Shamir share of it) sealed with HPKE to one device's sealing
 * key. `scheme` is 'whole' for any-of-N policies and 'shamir' for M-of-N,
 * where `threshold` and `share` (1-based index) are set.
 */
export interface Grant {
  device: string;
  scheme: 'whole' | 'shamir';
  threshold?: number;
  share?: number;
  enc: string;
  ct: string;
}

/** One version of a secret: AES-256-GCM ciphertext plus the grants; signed by the Org Identity key. */
export interface SecretBody extends BodyHeader<'secret'> {
  path: string;
  version: number;
  policy: PolicyRef;
  aead: 'A256GCM';
  nonce: string;
  grants: Grant[];
  created: number;
  deleted: boolean;
  ciphertext: string;
}

/** The newest audit chain entry a party had seen when it signed. */
export interface AuditHeadRef {
  seq: number;
  hash: string;
}

/** The process that asked the daemon, as the daemon identified it. */
export interface Requester {
  uid: number;
  gid: number;
  user: string;
  pid: number;
  exe: string;
  cmdline: string[];
}

/** A consumer daemon's request for one or more secrets; signed by the consumer host key. */
export interface RequestBody extends BodyHeader<'request'> {
  id: string;
  consumer: string;
  host: string;
  paths: string[];
  requester: Requester;
  reason: string;
  leaseSeconds: number;
  ephemeralKey: string;
  created: number;
  expires: number;
  auditHead: AuditHeadRef | null;
}

/** One path's DEK (or share) re-sealed to the request's ephemeral key. */
export interface Release {
  path: string;
  secretVersion: number;
  scheme: 'whole' | 'shamir';
  threshold?: number;
  share?: number;
  enc: string;
  ct: string;
}

/** An approver's decision on a request; signed by the device signing key. */
export interface ApprovalBody extends BodyHeader<'approval'> {
  request: string;
  requestHash: string;
  device: string;
  decision: 'approve' | 'deny';
  leaseSeconds: number;
  releases: Release[];
  created: number;
  auditHead: AuditHeadRef | null;
}

/**
 * Withdraws a device or consumer certificate, or ends a lease early (subject
 * 'lease', id = the request id); signed by the Org Identity key.
 */
export interface RevocationBody extends BodyHeader<'revocation'> {
  subject: 'device' | 'consumer' | 'lease';
  id: string;
  reason: string;
  revoked: number;
}

/** The broker's statement of its audit chain head for one org; signed by the broker key. */
export interface AuditHeadBody extends BodyHeader<'audit-head'> {
  seq: number;
  hash: string;
  time: number;
}
