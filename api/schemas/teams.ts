import { z } from 'zod';
import { AUDIT_ACTIONS, type AuditEventRow } from '../../lib/teams/audit-store';
import { ASSIGNABLE_ROLES, TEAM_ROLES } from '../../lib/teams/roles';
import type { MemberRow, TeamRow } from '../../lib/teams/store';
import { idParams, nameBody, pageSchema, paginationQuery } from './common';

// Teams, their members and their audit trail (routes teams.ts, team-members.ts, team-audit-log.ts).

const AT = '2026-11-25T12:00:00.000Z';
const TEAM_ID = '4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a';
const USER_ID = '9b2e4c6a-1f3d-4a5b-8c7d-0e1f2a3b4c5d';
const uuidParam = z.uuid({ message: 'must be a UUID' }).meta({ minLength: 36, maxLength: 36 });

export const teamSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    role: z.enum(TEAM_ROLES).describe("The caller's role in the team"),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({
    id: 'Team',
    examples: [{ id: TEAM_ID, name: 'Studio Nord', role: 'owner', createdAt: AT, updatedAt: AT }],
  });

export const teamMemberSchema = z
  .object({
    userId: z.uuid(),
    email: z.string(),
    role: z.enum(TEAM_ROLES),
    monthlySpendLimit: z
      .number()
      .int()
      .nullable()
      .describe(
        "Credits this member may reserve and spend of the team's per calendar month (UTC); null: no limit",
      ),
    joinedAt: z.string(),
  })
  .meta({
    id: 'TeamMember',
    examples: [
      { userId: USER_ID, email: 'ann@example.com', role: 'member', monthlySpendLimit: 5000, joinedAt: AT },
    ],
  });

export const auditEventSchema = z
  .object({
    id: z.uuid(),
    action: z.enum(AUDIT_ACTIONS),
    actor: z
      .object({
        userId: z.uuid().nullable().describe('Who acted; null for an operator (admin command)'),
        apiKeyId: z.uuid().nullable().describe('The API key it came with; null for a login token'),
      })
      .describe('Who made the change'),
    target: z.object({
      type: z.string().describe('`team`, `user`, `invitation`, `api_key` or `credit_transfer`'),
      id: z.string().nullable(),
    }),
    before: z
      .record(z.string(), z.unknown())
      .nullable()
      .describe('What changed, as it was; null for a creation'),
    after: z
      .record(z.string(), z.unknown())
      .nullable()
      .describe('What changed, as it became; null for a removal'),
    requestId: z.string().nullable().describe("The request's id (its `x-request-id`); null outside the API"),
    createdAt: z.string(),
  })
  .meta({
    id: 'TeamAuditEvent',
    examples: [
      {
        id: '8e9f0a1b-2c3d-4e5f-8a6b-7c8d9e0f1a2b',
        action: 'member.role_changed',
        actor: { userId: USER_ID, apiKeyId: null },
        target: { type: 'user', id: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f' },
        before: { role: 'member' },
        after: { role: 'admin' },
        requestId: '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0',
        createdAt: AT,
      },
    ],
  });

/** POST /v1/teams and PATCH /v1/teams/:id. */
export const teamBody = nameBody({ name: 'Studio Nord' });

export const memberParams = idParams.extend({ userId: uuidParam });

const OWNER_BY_TRANSFER = 'the owner role moves only by POST /v1/teams/{id}/transfer-ownership';

export const memberChangeBody = z
  .strictObject({
    role: z
      .enum(ASSIGNABLE_ROLES, {
        error: (issue) =>
          issue.input === 'owner' ? OWNER_BY_TRANSFER : `must be one of ${ASSIGNABLE_ROLES.join(', ')}`,
      })
      .optional()
      .describe(`One of ${ASSIGNABLE_ROLES.join(', ')}: never above the caller's own (${OWNER_BY_TRANSFER})`),
    monthlySpendLimit: z
      .number()
      .int()
      .min(0)
      .max(1e12)
      .nullable()
      .optional()
      .describe(
        'Credits per calendar month (UTC); null: no limit. Below what is already spent stops new reservations',
      ),
  })
  .refine((b) => b.role !== undefined || b.monthlySpendLimit !== undefined, {
    message: 'give role, monthlySpendLimit or both',
  })
  .meta({ examples: [{ role: 'admin', monthlySpendLimit: 5000 }] });

export const transferBody = z
  .strictObject({ userId: z.uuid().describe('A member of the team (a person): the new owner') })
  .meta({ examples: [{ userId: USER_ID }] });

export const auditQuery = paginationQuery.extend({
  action: z.enum(AUDIT_ACTIONS).optional().describe('Only events of this action'),
  actor: z.uuid().optional().describe("Only events by this user (the actor's user id)"),
});

export const teamsPage = pageSchema(teamSchema);
export const membersPage = pageSchema(teamMemberSchema);
export const auditPage = pageSchema(auditEventSchema);

export const toTeam = (t: TeamRow): z.infer<typeof teamSchema> => ({
  id: t.id,
  name: t.name,
  role: t.role,
  createdAt: t.created_at.toISOString(),
  updatedAt: t.updated_at.toISOString(),
});

export const toMember = (m: MemberRow): z.infer<typeof teamMemberSchema> => ({
  userId: m.id,
  email: m.email,
  role: m.role,
  monthlySpendLimit: m.monthly_spend_limit,
  joinedAt: m.created_at.toISOString(),
});

export const toAuditEvent = (e: AuditEventRow): z.infer<typeof auditEventSchema> => ({
  id: e.id,
  action: e.action,
  actor: { userId: e.actor_user_id, apiKeyId: e.actor_api_key_id },
  target: { type: e.target_type, id: e.target_id },
  before: e.before,
  after: e.after,
  requestId: e.request_id,
  createdAt: e.created_at.toISOString(),
});
