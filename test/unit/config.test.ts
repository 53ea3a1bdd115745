import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { activeProvider, ConfigError, estimateSecretBits, loadConfig } from '../../lib/config';
import { webhookUrlPolicy } from '../../lib/webhooks/url-policy';

/** What `openssl rand -base64 48` prints. */
const STRONG_SECRET = randomBytes(48).toString('base64');
const prod = (JWT_SECRET: string) => loadConfig({ NODE_ENV: 'production', JWT_SECRET });

describe('configuration', () => {
  it('runs on embedded defaults with an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ PORT: 3000, NODE_ENV: 'development', STORAGE_DRIVER: 'fs' });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.TEMPORAL_ADDRESS).toBeUndefined();
    expect(config.dataDir).toMatch(/\.data$/);
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', TEMPORAL_ADDRESS: '  ' }).DATABASE_URL).toBeUndefined();
  });

  it('names the variable of a bad value', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ LOCAL_PROVIDER_FAILURE_RATE: '1.5' })).toThrow(/LOCAL_PROVIDER_FAILURE_RATE/);
    expect(() => loadConfig({ DATABASE_URL: 'not a url' })).toThrow(/DATABASE_URL/);
  });

  it('requires JWT_SECRET in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET/);
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: STRONG_SECRET }).NODE_ENV).toBe('production');
  });

  it('picks the provider: forced, else the first with a key, else local', () => {
    expect(activeProvider(loadConfig({}))).toBe('local');
    expect(activeProvider(loadConfig({ REPLICATE_API_TOKEN: 'r8_x' }))).toBe('replicate');
    expect(activeProvider(loadConfig({ FAL_KEY: 'k', REPLICATE_API_TOKEN: 'r' }))).toBe('fal');
    expect(activeProvider(loadConfig({ FAL_KEY: 'k', VELRO_PROVIDER: 'local' }))).toBe('local');
  });

  it('refuses placeholder JWT_SECRETs in production, saying how to make one', () => {
    for (const weak of [
      'change-me-to-a-long-random-secret',
      `change-me-${randomBytes(32).toString('base64')}`,
      `CHANGEME${randomBytes(32).toString('hex')}`,
      `my-jwt-secret-${randomBytes(32).toString('base64')}`,
      `${randomBytes(32).toString('base64')}example`,
      `Password123!${randomBytes(32).toString('base64')}`,
    ]) {
      expect(() => prod(weak), weak).toThrow(ConfigError);
      expect(() => prod(weak), weak).toThrow(/JWT_SECRET: looks like a placeholder/);
      expect(() => prod(weak), weak).toThrow(/openssl rand -base64 48/);
    }
  });

  it('refuses short, repetitive and low-entropy JWT_SECRETs in production', () => {
    const cases: [string, RegExp][] = [
      [randomBytes(24).toString('base64'), /shorter than 43/],
      ['a'.repeat(64), /too repetitive/],
      ['x'.repeat(40), /shorter than 43/],
      ['x'.repeat(200), /too repetitive/],
      ['aB3$eF7%'.repeat(8), /too repetitive/],
      [`${randomBytes(8).toString('hex')}`.repeat(4), /too repetitive/],
      ['the quick brown fox jumps over the lazy dog and runs far away', /bits of randomness/],
      ['correct-horse-battery-staple-orange-window-river-42-mountain', /bits of randomness/],
      ['abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq', /bits of randomness/],
      [randomBytes(24).toString('hex'), /bits of randomness/],
    ];
    for (const [weak, why] of cases) {
      expect(() => prod(weak), weak).toThrow(/JWT_SECRET/);
      expect(() => prod(weak), weak).toThrow(why);
      expect(() => prod(weak), weak).toThrow(/openssl rand -base64 48/);
    }
    // Outside production any secret goes (development generates one when none is given).
    expect(loadConfig({ NODE_ENV: 'development', JWT_SECRET: 'dev' }).JWT_SECRET).toBe('dev');
  });

  it('accepts 256 random bits or more: base64 of 32 bytes, openssl rand -base64 48, hex of 32 bytes', () => {
    for (let i = 0; i < 500; i++) {
      for (const secret of [
        randomBytes(32).toString('base64'),
        randomBytes(32).toString('base64url'),
        randomBytes(48).toString('base64'),
        randomBytes(32).toString('hex'),
      ]) {
        expect(prod(secret).JWT_SECRET, secret).toBe(secret);
      }
    }
    expect(estimateSecretBits(randomBytes(32).toString('base64'))).toBeGreaterThanOrEqual(256);
  });

  it('reads base64 by its alphabet, not by the classes one sample shows, and CamelCase words as a phrase', () => {
    // 43 base64url characters without a digit (about one random key in 1,500): still 256 bits.
    expect(estimateSecretBits('QmXkVbNhTzWpLrJdFgHsKqYwPlMnBvCxZaQwRtYuIoP')).toBeGreaterThanOrEqual(256);
    expect(prod('QmXkVbNhTzWpLrJdFgHsKqYwPlMnBvCxZaQwRtYuIoP').JWT_SECRET).toBeDefined();
    expect(estimateSecretBits('MySuperSecretPasswordIsVeryLongAndStrongYes')).toBeLessThan(256);
  });

  it('never takes random base64 for a passphrase, even when separators cut it into letter-only tokens', () => {
    // Seen in CI once: three mixed-case letter tokens between '-' and '_' read as three words.
    const secret = 'QmXkVbNhTzWpLrJdFg-HsKqYwPlMnBvCxZaQwRt_YuIoPaSdFgHjKlZx';
    expect(estimateSecretBits(secret)).toBeGreaterThanOrEqual(256);
    expect(prod(secret).JWT_SECRET).toBe(secret);
  });

  it('refuses TRUST_PROXY=true: every client could pick its own address with X-Forwarded-For', () => {
    for (const v of ['true', 'TRUE']) {
      expect(() => loadConfig({ TRUST_PROXY: v })).toThrow(ConfigError);
      expect(() => loadConfig({ TRUST_PROXY: v })).toThrow(/TRUST_PROXY: .*X-Forwarded-For/);
      expect(() => loadConfig({ TRUST_PROXY: v })).toThrow(/per-IP/);
    }
  });

  it('takes TRUST_PROXY as a hop count or proxy addresses and CIDRs, and checks them', () => {
    expect(loadConfig({}).TRUST_PROXY).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'false' }).TRUST_PROXY).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '1' }).TRUST_PROXY).toBe(1);
    expect(loadConfig({ TRUST_PROXY: '2' }).TRUST_PROXY).toBe(2);
    expect(
      loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.0.2.7, fd00::/8, ::1, 2001:db8::/128, loopback' })
        .TRUST_PROXY,
    ).toEqual(['10.0.0.0/8', '192.0.2.7', 'fd00::/8', '::1', '2001:db8::/128', 'loopback']);
    for (const bad of [
      '10.0.0.0/33',
      'fd00::/129',
      '10.0.0.0/',
      '10.0.0.0/-1',
      '10.0.0.0/8/8',
      '300.1.2.3',
      '10.0.0',
      'proxy.example.com',
      '10.0.0.1, nope',
      '-1',
      '1000',
    ]) {
      expect(() => loadConfig({ TRUST_PROXY: bad }), bad).toThrow(/TRUST_PROXY/);
    }
  });

  it.each([undefined, 'development', 'test', 'production'])(
    'is strict about webhooks and provider outputs with NODE_ENV=%s unless told otherwise',
    (nodeEnv) => {
      const env: Record<string, string> = nodeEnv ? { NODE_ENV: nodeEnv } : {};
      if (nodeEnv === 'production') env.JWT_SECRET = STRONG_SECRET;
      const config = loadConfig(env);
      expect(config).toMatchObject({
        WEBHOOK_ALLOW_PRIVATE_URLS: false,
        WEBHOOK_ALLOW_HTTP: false,
        PROVIDER_OUTPUT_ALLOW_LOOPBACK: false,
      });
      expect(webhookUrlPolicy(config)).toEqual({ requireHttps: true, allowPrivate: false });
    },
  );

  it('relaxes each of them only when its variable says so', () => {
    const relaxed = loadConfig({
      WEBHOOK_ALLOW_PRIVATE_URLS: 'true',
      WEBHOOK_ALLOW_HTTP: '1',
      PROVIDER_OUTPUT_ALLOW_LOOPBACK: 'yes',
    });
    expect(relaxed).toMatchObject({
      WEBHOOK_ALLOW_PRIVATE_URLS: true,
      WEBHOOK_ALLOW_HTTP: true,
      PROVIDER_OUTPUT_ALLOW_LOOPBACK: true,
    });
    expect(webhookUrlPolicy(relaxed)).toEqual({ requireHttps: false, allowPrivate: true });
    expect(loadConfig({ WEBHOOK_ALLOW_HTTP: 'false', WEBHOOK_ALLOW_PRIVATE_URLS: '' })).toMatchObject({
      WEBHOOK_ALLOW_HTTP: false,
      WEBHOOK_ALLOW_PRIVATE_URLS: false,
    });
    for (const name of [
      'WEBHOOK_ALLOW_PRIVATE_URLS',
      'WEBHOOK_ALLOW_HTTP',
      'PROVIDER_OUTPUT_ALLOW_LOOPBACK',
    ]) {
      expect(() => loadConfig({ [name]: 'maybe' }), name).toThrow(new RegExp(name));
    }
  });

  it('reads METRICS_TOKEN, unset by default', () => {
    expect(loadConfig({}).METRICS_TOKEN).toBeUndefined();
    expect(loadConfig({ METRICS_TOKEN: ' tok ' }).METRICS_TOKEN).toBe('tok');
  });

  it('reads SMTP_URL (smtp:// or smtps:// only), SMTP_FROM and SMTP_TIMEOUT_MS', () => {
    expect(loadConfig({}).SMTP_URL).toBeUndefined();
    expect(loadConfig({})).toMatchObject({
      SMTP_FROM: 'Velro <no-reply@velro.invalid>',
      SMTP_TIMEOUT_MS: 10_000,
    });
    expect(loadConfig({ SMTP_URL: '' }).SMTP_URL).toBeUndefined();
    for (const url of ['smtp://user:pass@mail.example.com:587', 'smtps://mail.example.com']) {
      expect(loadConfig({ SMTP_URL: url }).SMTP_URL).toBe(url);
    }
    for (const url of ['https://mail.example.com', 'mail.example.com:25', 'smtp:/x', 'smtp://']) {
      expect(() => loadConfig({ SMTP_URL: url }), url).toThrow(
        /SMTP_URL: must be an smtp:\/\/ or smtps:\/\/ URL/,
      );
    }
    // The message names the variable, never the URL (it may carry the password).
    expect(() => loadConfig({ SMTP_URL: 'http://u:hunter2@x' })).toThrow(ConfigError);
    expect(() => loadConfig({ SMTP_URL: 'http://u:hunter2@x' })).not.toThrow(/hunter2/);
    expect(loadConfig({ SMTP_FROM: 'Acme <invites@acme.example>' }).SMTP_FROM).toBe(
      'Acme <invites@acme.example>',
    );
    expect(loadConfig({ SMTP_FROM: 'invites@acme.example' }).SMTP_FROM).toBe('invites@acme.example');
    expect(() => loadConfig({ SMTP_FROM: 'Acme' })).toThrow(/SMTP_FROM/);
    expect(() => loadConfig({ SMTP_TIMEOUT_MS: '10' })).toThrow(/SMTP_TIMEOUT_MS/);
  });
});
