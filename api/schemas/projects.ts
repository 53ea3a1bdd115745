import { z } from 'zod';
import { examples } from './examples';
import { nameBody, paginationQuery } from './common';

export const projectSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    teamId: z.uuid().nullable().describe('The team it belongs to; null for a personal project'),
    createdBy: z.uuid(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Project', examples: [examples.project] });

const teamIdField = z
  .uuid()
  .nullish()
  .describe("A team the caller is a member (or higher) of; a team API key's projects are its team's");

/** POST /v1/projects. */
export const projectCreateBody = z
  .strictObject({ name: z.string().trim().min(1).max(100), teamId: teamIdField })
  .meta({ examples: [examples.projectRequest] });

/** PATCH /v1/projects/:id. */
export const projectBody = nameBody(examples.projectRequest);

/** GET /v1/projects. */
export const projectListQuery = paginationQuery.extend({
  teamId: z
    .uuid()
    .optional()
    .describe(
      "That team's projects (any member). Without it: the caller's personal ones (a team key: its team's)",
    ),
});
