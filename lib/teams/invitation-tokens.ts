import { createHash, randomBytes } from 'node:crypto';

const PREFIX = 'vinv_';
/** What generateInvitationToken gives, for the API's schema. */
export const INVITATION_TOKEN_PATTERN = /^vinv_[A-Za-z0-9_-]{43}$/;

/** How long an invitation can be accepted. */
export const INVITATION_TTL_MS = 7 * 24 * 3600_000;

/** A new invitation token: `vinv_` + 32 random bytes, base64url. Only its hash is stored. */
export function generateInvitationToken(): { token: string; hash: Buffer } {
  const token = PREFIX + randomBytes(32).toString('base64url');
  return { token, hash: hashInvitationToken(token) };
}

/** 256 random bits need no stretching: sha256 is the stored form (team_invitations.token_hash). */
export function hashInvitationToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
