// The --app check and link format of `stillvault approver invite NAME --web`.
import { describe, expect, it } from 'vitest';
import { webAppUrl, webEnrollLink } from '../../src/cli/members.js';

describe('approver invite --web', () => {
  it('builds the enrollment link with a fragment', () => {
    expect(webEnrollLink(webAppUrl('http://localhost:8650'), 'svinv1.abc')).toBe('http://localhost:8650/#enroll=svinv1.abc');
    expect(webEnrollLink(webAppUrl('https://approver.example.com/app/'), 'svinv1.abc')).toBe('https://approver.example.com/app/#enroll=svinv1.abc');
  });

  it('accepts https and http on localhost', () => {
    for (const url of ['https://approver.example.com', 'http://localhost:1234', 'http://approver.localhost']) {
      expect(() => webAppUrl(url), url).not.toThrow();
    }
  });

  it('rejects origins where WebAuthn cannot run', () => {
    for (const url of ['http://127.0.0.1:8650', 'http://approver.example.com', 'ftp://localhost', 'not a url', 'https://a.example.com/?x=1', 'https://u:p@a.example.com']) {
      expect(() => webAppUrl(url), url).toThrow(expect.objectContaining({ code: 'usage' }));
    }
  });
});
