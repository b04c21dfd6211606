import { describe, expect, it } from 'vitest';
import { CliError } from '../../src/cli/errors.js';
import { formatDuration, parseDuration } from '../../src/cli/format.js';
import { decodeInviteToken, encodeInviteToken, inviteCodeHash, newInviteCode, type InviteToken } from '../../src/cli/invite.js';
import { parseRequesterRule } from '../../src/cli/commands/policy.js';
import { terminalSafe } from '../../src/approver/display.js';
import { SigningPrivateKey } from '../../src/protocol/index.js';

async function token(): Promise<InviteToken> {
  const key = await SigningPrivateKey.generate('org-identity');
  return {
    v: 1, broker: 'http://127.0.0.1:8640', org: key.publicKey.fingerprint(), orgName: 'Acme', identityKey: key.publicKey.toBase64Url(),
    invite: 'AAAAAAAAAAAAAAAAAAAAAA', code: newInviteCode(), kind: 'device', name: 'ben', expires: 2_000_000_000,
  };
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return (error as CliError).code;
  }
  return undefined;
}

describe('invite token', () => {
  it('round-trips', async () => {
    const original = await token();
    const encoded = encodeInviteToken(original);
    expect(encoded.startsWith('svinv1.')).toBe(true);
    expect(decodeInviteToken(encoded, 'device')).toEqual(original);
  });

  it('rejects an org id that is not the key fingerprint', async () => {
    const forged = { ...(await token()), org: (await token()).org };
    expect(codeOf(() => decodeInviteToken(encodeInviteToken(forged), 'device'))).toBe('untrusted_signer');
  });

  it('rejects the wrong kind, extra members and garbage', async () => {
    const original = await token();
    expect(codeOf(() => decodeInviteToken(encodeInviteToken(original), 'consumer'))).toBe('invite_wrong_kind');
    expect(codeOf(() => decodeInviteToken(encodeInviteToken({ ...original, extra: 1 } as InviteToken), 'device'))).toBe('invite_invalid');
    expect(codeOf(() => decodeInviteToken('svinv1.%%%', 'device'))).toBe('invite_invalid');
    expect(codeOf(() => decodeInviteToken('hello', 'device'))).toBe('invite_invalid');
  });

  it('hashes the code as the broker expects', () => {
    expect(inviteCodeHash('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
  });
});

describe('durations', () => {
  it('parses and formats each unit', () => {
    expect(parseDuration('30s', '--x')).toBe(30);
    expect(parseDuration('15m', '--x')).toBe(900);
    expect(parseDuration('2h', '--x')).toBe(7200);
    expect(parseDuration('1d', '--x')).toBe(86_400);
    expect(formatDuration(900)).toBe('15m');
    expect(formatDuration(90)).toBe('90s');
  });

  it('reads a bare number as seconds', () => {
    expect(parseDuration('15', '--x')).toBe(15);
  });

  it('rejects zero and unknown units', () => {
    for (const text of ['0s', '0', '1w', '-1m', '']) expect(codeOf(() => parseDuration(text, '--x'))).toBe('usage');
  });
});

describe('requester rules', () => {
  it('parses users, uids and exes', () => {
    expect(parseRequesterRule('any')).toEqual({});
    expect(parseRequesterRule('user=ci,user=deploy,uid=1001,exe=/usr/bin/node')).toEqual({ users: ['ci', 'deploy'], uids: [1001], exes: ['/usr/bin/node'] });
  });

  it('rejects relative exes and unknown keys', () => {
    expect(codeOf(() => parseRequesterRule('exe=node'))).toBe('usage');
    expect(codeOf(() => parseRequesterRule('group=wheel'))).toBe('usage');
  });
});

describe('terminal-safe display', () => {
  it('escapes escape sequences and bidi overrides but keeps ordinary text', () => {
    expect(terminalSafe('deploy \u001b[2Jnow')).toBe('deploy \\u{1b}[2Jnow');
    expect(terminalSafe('abc\u202edcb')).toBe('abc\\u{202e}dcb');
    expect(terminalSafe('héllo wörld')).toBe('héllo wörld');
  });
});
