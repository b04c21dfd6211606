import { describe, expect, it } from 'vitest';
import { aeadDecrypt, aeadEncrypt, DataKey, SecretBytes, utf8Encode } from '../../src/protocol/index.js';

describe('aead', () => {
  it('round-trips with a fresh nonce', async () => {
    const key = DataKey.generate();
    const aad = utf8Encode('header');
    const { nonce, ciphertext } = await aeadEncrypt(key, SecretBytes.fromString('hunter2'), aad);
    expect(nonce.length).toBe(12);
    expect(ciphertext.length).toBe(7 + 16);
    expect((await aeadDecrypt(key, nonce, ciphertext, aad)).exposeString()).toBe('hunter2');
  });

  it('rejects a second encryption under one key', async () => {
    const key = DataKey.generate();
    await aeadEncrypt(key, SecretBytes.fromString('a'), new Uint8Array());
    await expect(aeadEncrypt(key, SecretBytes.fromString('b'), new Uint8Array())).rejects.toMatchObject({ code: 'invalid_key' });
  });

  it('rejects a wrong aad, nonce or key', async () => {
    const key = DataKey.generate();
    const bytes = key.exportBytes();
    const { nonce, ciphertext } = await aeadEncrypt(key, SecretBytes.fromString('x'), utf8Encode('a'));
    await expect(aeadDecrypt(key, nonce, ciphertext, utf8Encode('b'))).rejects.toMatchObject({ code: 'decrypt_failed' });
    const otherNonce = Uint8Array.from(nonce);
    otherNonce[0] = (otherNonce[0] ?? 0) ^ 1;
    await expect(aeadDecrypt(DataKey.fromBytes(bytes), otherNonce, ciphertext, utf8Encode('a'))).rejects.toMatchObject({ code: 'decrypt_failed' });
    await expect(aeadDecrypt(DataKey.generate(), nonce, ciphertext, utf8Encode('a'))).rejects.toMatchObject({ code: 'decrypt_failed' });
    await expect(aeadDecrypt(key, nonce, ciphertext.subarray(0, 15), utf8Encode('a'))).rejects.toMatchObject({ code: 'decrypt_failed' });
  });

  it('wiped values refuse use', () => {
    const secret = SecretBytes.from(utf8Encode('abc'));
    const view = secret.expose();
    secret.wipe();
    expect([...view]).toEqual([0, 0, 0]);
    expect(() => secret.expose()).toThrow(expect.objectContaining({ code: 'invalid_key' }) as Error);
    const key = DataKey.generate();
    key.wipe();
    expect(() => key.exportBytes()).toThrow();
  });

  it('checks byte lengths at the boundary', () => {
    expect(() => DataKey.fromBytes(new Uint8Array(31))).toThrow(RangeError);
    expect(() => SecretBytes.from('abc' as unknown as Uint8Array)).toThrow(TypeError);
  });
});
