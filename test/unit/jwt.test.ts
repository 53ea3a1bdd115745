import { createHmac, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JWT_ISSUER, signJwt, verifyJwt } from '../../lib/auth/jwt';

const key = Buffer.alloc(32, 1);
const sub = randomUUID();
const now = Date.UTC(2030, 0, 1);

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
/** A token with any header and claims, HMAC-signed with `k` (or the given signature). */
function forge(header: unknown, claims: unknown, k = key, sig?: string) {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${sig ?? createHmac('sha256', k).update(input).digest('base64url')}`;
}
const goodClaims = () => ({ sub, role: 'user', iat: now / 1000, exp: now / 1000 + 3600, iss: JWT_ISSUER });

describe('login tokens (HS256 JWT)', () => {
  it('round-trips sub, role, iat, exp and iss', () => {
    const { token, expiresAt } = signJwt(key, { sub, role: 'admin' }, 3600, now);
    expect(expiresAt.getTime()).toBe(now + 3600_000);
    const [h] = token.split('.');
    expect(JSON.parse(Buffer.from(h!, 'base64url').toString())).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(verifyJwt(key, token, now + 1000)).toEqual({
      ok: true,
      claims: { sub, role: 'admin', iat: now / 1000, exp: now / 1000 + 3600, iss: JWT_ISSUER },
    });
  });

  it('is interoperable: the signature is plain HMAC-SHA256 over header.payload', () => {
    const token = forge({ alg: 'HS256', typ: 'JWT' }, goodClaims());
    expect(verifyJwt(key, token, now).ok).toBe(true);
  });

  it('expires at exp', () => {
    const { token } = signJwt(key, { sub, role: 'user' }, 60, now);
    expect(verifyJwt(key, token, now + 59_000).ok).toBe(true);
    expect(verifyJwt(key, token, now + 60_000)).toEqual({ ok: false, reason: 'expired' });
  });

  it('refuses another key, alg none, other algorithms and extra header fields', () => {
    const { token } = signJwt(key, { sub, role: 'user' }, 60, now);
    expect(verifyJwt(Buffer.alloc(32, 2), token, now)).toEqual({ ok: false, reason: 'bad_signature' });
    const [, p] = token.split('.');
    expect(verifyJwt(key, `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`, now).ok).toBe(false);
    expect(verifyJwt(key, `${b64({ alg: 'none' })}.${p}.x`, now).ok).toBe(false);
    expect(verifyJwt(key, forge({ alg: 'HS512', typ: 'JWT' }, goodClaims()), now).ok).toBe(false);
    expect(verifyJwt(key, forge({ alg: 'hs256' }, goodClaims()), now).ok).toBe(false);
    expect(verifyJwt(key, forge({ alg: 'HS256', kid: '../../etc/passwd' }, goodClaims()), now).ok).toBe(
      false,
    );
    expect(verifyJwt(key, forge({ alg: 'HS256', typ: 'JWE' }, goodClaims()), now).ok).toBe(false);
    expect(verifyJwt(key, forge({ alg: 'HS256' }, goodClaims()), now).ok).toBe(true);
  });

  it('refuses a non-canonical encoding of the right signature', () => {
    const { token } = signJwt(key, { sub, role: 'user' }, 60, now);
    const last = token.at(-1)!;
    // The last base64url character of a 32-byte MAC carries 2 unused bits: flip one of them.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = alphabet[alphabet.indexOf(last) ^ 1]!;
    expect(Buffer.from(token.slice(-43), 'base64url')).toEqual(
      Buffer.from(token.slice(-43, -1) + twin, 'base64url'),
    );
    expect(verifyJwt(key, token.slice(0, -1) + twin, now)).toEqual({ ok: false, reason: 'bad_signature' });
  });

  it('requires every claim, well-typed, from this issuer', () => {
    const bad = [
      { ...goodClaims(), iss: 'someone-else' },
      { ...goodClaims(), role: 'root' },
      { ...goodClaims(), sub: 'not-a-uuid' },
      { ...goodClaims(), exp: String(now / 1000 + 60) },
      { ...goodClaims(), iat: undefined },
      { ...goodClaims(), exp: now / 1000 - 1, iat: now / 1000 },
      { ...goodClaims(), iat: now / 1000 + 3600, exp: now / 1000 + 7200 }, // issued in the future
      [goodClaims()],
      'a string',
    ];
    for (const claims of bad) expect(verifyJwt(key, forge({ alg: 'HS256' }, claims), now).ok).toBe(false);
  });

  it('never throws and never accepts arbitrary or mutated input', () => {
    const { token } = signJwt(key, { sub, role: 'user' }, 3600, now);
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        expect(verifyJwt(key, s, now).ok).toBe(false);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.nat(token.length - 1), fc.string({ minLength: 1, maxLength: 1 }), (i, c) => {
        const mutated = token.slice(0, i) + c + token.slice(i + 1);
        fc.pre(mutated !== token);
        expect(verifyJwt(key, mutated, now).ok).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});
