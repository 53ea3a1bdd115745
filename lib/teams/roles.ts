// Team roles (DESIGN.md, Teams), ranked as the database ranks them (velro_role_rank, db/migrations/009).
// Import-free: the API's schemas and the stores share it.

export const TEAM_ROLES = ['owner', 'admin', 'member', 'viewer'] as const;
export type TeamRole = (typeof TEAM_ROLES)[number];

/** Roles an invitation or a PATCH may give: the owner role moves only by transfer. */
export const ASSIGNABLE_ROLES = ['admin', 'member', 'viewer'] as const;
export type AssignableRole = (typeof ASSIGNABLE_ROLES)[number];

const RANK: Record<TeamRole, number> = { owner: 4, admin: 3, member: 2, viewer: 1 };

/** Whether `role` is `needed` or higher. */
export const atLeast = (role: TeamRole, needed: TeamRole): boolean => RANK[role] >= RANK[needed];
