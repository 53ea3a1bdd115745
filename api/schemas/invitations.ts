import { z } from 'zod';
import { INVITATION_TOKEN_PATTERN } from '../../lib/teams/invitation-tokens';
import { ASSIGNABLE_ROLES, TEAM_ROLES } from '../../lib/teams/roles';
import { email } from './auth';
import { idParams } from './common';

const TEAM_ID = '4d3c2b1a-0f9e-4d8c-8b7a-6f5e4d3c2b1a';
const TOKEN = 'vinv_YSBkb2NzLW9ubHkgZXhhbXBsZSB0b2tlbiwgYWJjZGU';
const invitationExample = {
  id: '8e7d6c5b-4a39-4281-9f0e-1d2c3b4a5968',
  email: 'ann@example.com',
  role: 'member',
  invitedBy: '9b2e4c6a-1f3d-4a5b-8c7d-0e1f2a3b4c5d',
  createdAt: '2026-11-25T12:00:00.000Z',
  expiresAt: '2026-12-02T12:00:00.000Z',
  status: 'pending',
} as const;

export const invitationParams = idParams.extend({ invitationId: idParams.shape.id });

export const invitationSchema = z
  .object({
    id: z.uuid(),
    email: z.string(),
    role: z.enum(ASSIGNABLE_ROLES),
    invitedBy: z.uuid().describe('The admin or owner who invited'),
    createdAt: z.string(),
    expiresAt: z.string().describe('7 days after creation'),
    status: z
      .enum(['pending', 'accepted', 'revoked', 'expired'])
      .describe('As of now: only a pending invitation can be accepted'),
  })
  .meta({ id: 'Invitation', examples: [invitationExample] });

export const createInvitationBody = z
  .strictObject({
    email,
    role: z
      .enum(ASSIGNABLE_ROLES)
      .describe("At most the inviter's own role; the owner role moves only by transfer"),
  })
  .meta({ examples: [{ email: 'ann@example.com', role: 'member' }] });

export const createdInvitationSchema = z
  .object({
    invitation: invitationSchema,
    token: z.string().describe('The one-time token: shown this once, only its hash is stored'),
    acceptUrl: z
      .string()
      .describe(
        '`$VELRO_PUBLIC_URL/invitations/accept?token=…`: a page of the client app, which signs the invitee in ' +
          'and calls POST /v1/invitations/accept with the token',
      ),
    emailed: z
      .boolean()
      .describe(
        'Whether the invitation was e-mailed (SMTP_URL set and the send succeeded); else share the link',
      ),
  })
  .meta({
    id: 'CreatedInvitation',
    examples: [
      {
        invitation: invitationExample,
        token: TOKEN,
        acceptUrl: `https://app.velro.example/invitations/accept?token=${TOKEN}`,
        emailed: true,
      },
    ],
  });

export const acceptInvitationBody = z
  .strictObject({
    token: z
      .string()
      .regex(INVITATION_TOKEN_PATTERN, { message: 'not an invitation token (vinv_…)' })
      .describe('The token of the invitation, from its accept URL'),
  })
  .meta({ examples: [{ token: TOKEN }] });

export const acceptedInvitationSchema = z
  .object({
    teamId: z.uuid(),
    role: z.enum(TEAM_ROLES).describe("The caller's role in the team now"),
    status: z
      .enum(['joined', 'already_joined'])
      .describe('`already_joined`: accepted before by the caller, or the caller was a member already'),
  })
  .meta({ id: 'AcceptedInvitation', examples: [{ teamId: TEAM_ID, role: 'member', status: 'joined' }] });
