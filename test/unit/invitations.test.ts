import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { invitationMessage } from '../../lib/mail/invitation';
import {
  generateInvitationToken,
  hashInvitationToken,
  INVITATION_TOKEN_PATTERN,
} from '../../lib/teams/invitation-tokens';

describe('invitation tokens', () => {
  it('are vinv_ + 32 random bytes (base64url), stored as their sha256', () => {
    const tokens = Array.from({ length: 200 }, () => generateInvitationToken());
    for (const { token, hash } of tokens) {
      expect(token).toMatch(INVITATION_TOKEN_PATTERN);
      expect(Buffer.from(token.slice(5), 'base64url')).toHaveLength(32);
      expect(hash.equals(createHash('sha256').update(token).digest())).toBe(true);
      expect(hashInvitationToken(token).equals(hash)).toBe(true);
    }
    expect(new Set(tokens.map((t) => t.token)).size).toBe(tokens.length);
    for (const bad of ['vk_' + 'a'.repeat(43), 'vinv_' + 'a'.repeat(42), 'vinv_' + 'a'.repeat(42) + '='])
      expect(INVITATION_TOKEN_PATTERN.test(bad), bad).toBe(false);
  });
});

describe('the invitation e-mail', () => {
  it('names the team, the inviter, the role, the expiry and carries the accept URL on a line of its own', () => {
    const acceptUrl = 'https://app.example/invitations/accept?token=vinv_x';
    const m = invitationMessage({
      to: 'ann@example.com',
      teamName: 'Night\r\nBcc: evil@example.com',
      invitedBy: 'bo@example.com',
      role: 'admin',
      acceptUrl,
      expiresAt: new Date('2026-12-02T12:34:56Z'),
    });
    expect(m.to).toBe('ann@example.com');
    // The inviter's team name cannot break into lines (headers) of its own.
    expect(m.subject).toBe('bo@example.com invited you to the team Night Bcc: evil@example.com on Velro');
    expect(m.text.split('\n')).toContain(acceptUrl);
    expect(m.text).toContain('as admin');
    expect(m.text).toContain('2026-12-02 12:34 UTC');
  });
});
