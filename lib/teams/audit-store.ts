import { newestFirst, type PageAfter } from '../db/keyset';
import type { Tx } from '../db/pool';
import { requireTeamRole } from './store';

/**
 * The actions team_audit_events records, as the triggers and functions of db/migrations/009_teams.sql
 * write them (test/e2e/team-audit-log.test.ts checks this list against the schema).
 */
export const AUDIT_ACTIONS = [
  'team.created',
  'team.renamed',
  'team.deleted',
  'member.added',
  'member.removed',
  'member.role_changed',
  'member.spend_limit_changed',
  'ownership.transferred',
  'invitation.created',
  'invitation.revoked',
  'invitation.accepted',
  'api_key.created',
  'api_key.revoked',
  'credits.granted',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEventRow {
  id: string;
  action: AuditAction;
  actor_user_id: string | null;
  actor_api_key_id: string | null;
  target_type: string;
  target_id: string | null;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  request_id: string | null;
  created_at: Date;
}

export interface AuditFilter {
  action?: AuditAction | undefined;
  /** The acting user's id. */
  actor?: string | undefined;
}

/** One page of the team's audit trail, newest first (admin+; runs in the caller's withUserTx). */
export async function listAuditEvents(
  tx: Tx,
  teamId: string,
  filter: AuditFilter,
  page: { after?: PageAfter; limit: number },
): Promise<AuditEventRow[]> {
  await requireTeamRole(tx, teamId, 'admin');
  const params: unknown[] = [teamId];
  const where = ['team_id = $1'];
  if (filter.action) {
    params.push(filter.action);
    where.push(`action = $${params.length}`);
  }
  if (filter.actor) {
    params.push(filter.actor);
    where.push(`actor_user_id = $${params.length}`);
  }
  return newestFirst<AuditEventRow>(tx, {
    select: `SELECT id, action, actor_user_id, actor_api_key_id, target_type, target_id, before, after,
                    request_id, created_at FROM team_audit_events`,
    where,
    params,
    ...page,
  });
}
