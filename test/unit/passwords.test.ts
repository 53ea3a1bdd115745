import { describe, expect, it } from 'vitest';
import { hashPassword, needsRehash, passwordProblem, verifyPassword } from '../../lib/auth/passwords';

describe('password hashing (scrypt)', () => {
  it('stores a self-describing scrypt string with N >= 2^15, r = 8, p = 1 and a random salt', async () => {
    const a = await hashPassword('correct horse battery');
    const b = await hashPassword('correct horse battery');
    const [alg, N, r, p, salt, hash] = a.split('$');
    expect(alg).toBe('scrypt');
    expect(Number(N)).toBeGreaterThanOrEqual(2 ** 15);
    expect([Number(r), Number(p)]).toEqual([8, 1]);
    expect(Buffer.from(salt!, 'base64url')).toHaveLength(16);
    expect(Buffer.from(hash!, 'base64url')).toHaveLength(32);
    expect(a).not.toBe(b);
    expect(needsRehash(a)).toBe(false);
  });

  it('accepts the password and nothing else', async () => {
    const stored = await hashPassword('correct horse battery');
    expect(await verifyPassword('correct horse battery', stored)).toBe(true);
    expect(await verifyPassword('correct horse batterY', stored)).toBe(false);
    expect(await verifyPassword('', stored)).toBe(false);
  });

  it('normalises Unicode, so composed and decomposed forms are the same password', async () => {
    const stored = await hashPassword('café-au-lait-\u00e9');
    expect(await verifyPassword('cafe\u0301-au-lait-e\u0301', stored)).toBe(true);
  });

  it('answers false, after the same work, with no stored hash or a malformed one', async () => {
    const stored = await hashPassword('correct horse battery');
    const time = async (s: string | null) => {
      const t = performance.now();
      expect(await verifyPassword('correct horse battery', s)).toBe(false);
      return performance.now() - t;
    };
    const real = performance.now();
    await verifyPassword('correct horse battery', stored);
    const realMs = performance.now() - real;
    for (const bad of [
      null,
      'plaintext',
      'scrypt$1$8$1$AAAA$AAAA',
      'scrypt$1048576$64$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA',
    ]) {
      const ms = await time(bad);
      // Same order of magnitude as a real check: a full scrypt ran.
      expect(ms).toBeGreaterThan(realMs / 4);
    }
  });

  it('refuses stored parameters that would cost unbounded memory or time', async () => {
    const huge = `scrypt$${2 ** 24}$8$1$${'A'.repeat(22)}$${'A'.repeat(43)}`;
    expect(await verifyPassword('anything at all', huge)).toBe(false);
    expect(needsRehash(huge)).toBe(true);
    expect(needsRehash(`scrypt$16384$8$1$${'A'.repeat(22)}$${'A'.repeat(43)}`)).toBe(true);
  });

  it('enforces 10 to 200 characters and not the email', () => {
    expect(passwordProblem('short')).toMatch(/10 to 200/);
    expect(passwordProblem('x'.repeat(201))).toMatch(/10 to 200/);
    expect(passwordProblem('x'.repeat(10))).toBeNull();
    expect(passwordProblem('x'.repeat(200))).toBeNull();
    // Characters, not UTF-16 units: ten emoji are ten characters.
    expect(passwordProblem('😀'.repeat(10))).toBeNull();
    expect(passwordProblem('Ann@Example.com', 'ann@example.com')).toMatch(/email/);
  });
});
