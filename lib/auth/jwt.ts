import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config';
import { localSecret } from './local-secret';

/*
 * Login tokens: compact JWS, HS256 only (RFC 7515/7519). Small enough to own: the algorithm is
 * pinned (the header must say exactly HS256, so `none` and RSA/HMAC confusion cannot happen), the
 * signature is compared in constant time over its canonical encoding, and exp/iat/iss are required.
 */

export const JWT_ISSUER = 'velro';
export type Role = 'user' | 'admin';

export interface TokenClaims {
  sub: string;
  role: Role;
  iat: number;
  exp: number;
  iss: string;
}

export type TokenCheck =
  | { ok: true; claims: TokenClaims }
  | { ok: false; reason: 'malformed' | 'bad_signature' | 'expired' | 'bad_claims' };

const HEADER = b64json({ alg: 'HS256', typ: 'JWT' });
const MAX_TOKEN_LENGTH = 4096;
/** Tolerated clock difference between API replicas for `iat`. */
const CLOCK_SKEW_SECONDS = 60;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SEGMENT = /^[A-Za-z0-9_-]+$/;

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function signature(key: Buffer, signingInput: string): string {
  return createHmac('sha256', key).update(signingInput).digest('base64url');
}

function parseJson(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A signed token for `sub` with `role`, valid for `ttlSeconds`. */
export function signJwt(
  key: Buffer,
  subject: { sub: string; role: Role },
  ttlSeconds: number,
  now = Date.now(),
): { token: string; expiresAt: Date } {
  const iat = Math.floor(now / 1000);
  const claims: TokenClaims = {
    sub: subject.sub,
    role: subject.role,
    iat,
    exp: iat + ttlSeconds,
    iss: JWT_ISSUER,
  };
  const input = `${HEADER}.${b64json(claims)}`;
  return { token: `${input}.${signature(key, input)}`, expiresAt: new Date(claims.exp * 1000) };
}

/** Checks a token's form, algorithm, signature and claims, in that order. */
export function verifyJwt(key: Buffer, token: string, now = Date.now()): TokenCheck {
  if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: 'malformed' };
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => SEGMENT.test(p))) return { ok: false, reason: 'malformed' };
  const [h, p, s] = parts as [string, string, string];

  const header = parseJson(h);
  if (!isObject(header) || header.alg !== 'HS256') return { ok: false, reason: 'malformed' };
  if (Object.keys(header).some((k) => k !== 'alg' && k !== 'typ') || (header.typ ?? 'JWT') !== 'JWT') {
    return { ok: false, reason: 'malformed' };
  }

  const expected = Buffer.from(signature(key, `${h}.${p}`));
  const given = Buffer.from(s);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    return { ok: false, reason: 'bad_signature' };
  }

  const c = parseJson(p);
  if (
    !isObject(c) ||
    typeof c.sub !== 'string' ||
    !UUID.test(c.sub) ||
    (c.role !== 'user' && c.role !== 'admin') ||
    c.iss !== JWT_ISSUER ||
    !Number.isSafeInteger(c.iat) ||
    !Number.isSafeInteger(c.exp)
  ) {
    return { ok: false, reason: 'bad_claims' };
  }
  const claims = c as unknown as TokenClaims;
  const nowSeconds = Math.floor(now / 1000);
  if (claims.iat > nowSeconds + CLOCK_SKEW_SECONDS || claims.exp <= claims.iat) {
    return { ok: false, reason: 'bad_claims' };
  }
  if (claims.exp <= nowSeconds) return { ok: false, reason: 'expired' };
  return { ok: true, claims };
}

/**
 * The HS256 key: JWT_SECRET as given (so other services can verify Velro's tokens with it), else in
 * development a secret generated once under VELRO_DATA_DIR.
 */
export async function jwtKey(config: Config): Promise<Buffer> {
  if (config.JWT_SECRET) {
    if (config.NODE_ENV === 'production' && Buffer.byteLength(config.JWT_SECRET) < 32) {
      throw new Error(
        'JWT_SECRET must be at least 32 characters in production (e.g. `openssl rand -base64 48`)',
      );
    }
    return Buffer.from(config.JWT_SECRET, 'utf8');
  }
  return localSecret(config.dataDir, 'jwt-secret');
}
