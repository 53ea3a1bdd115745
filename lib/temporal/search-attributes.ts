// The custom search attributes of a generation workflow, all of type Keyword. Pure (no imports):
// workflows/definitions.ts defines its typed keys from these names, and the dev server registers them.

export const SEARCH_ATTRIBUTE_NAMES = {
  userId: 'VelroUserId',
  model: 'VelroModel',
  projectId: 'VelroProjectId',
  status: 'VelroStatus',
  /** Set on team generations only. */
  teamId: 'VelroTeamId',
} as const;

export type SearchAttributeName = (typeof SEARCH_ATTRIBUTE_NAMES)[keyof typeof SEARCH_ATTRIBUTE_NAMES];
