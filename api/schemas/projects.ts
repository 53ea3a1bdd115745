import { z } from 'zod';
import { examples } from './examples';
import { nameBody } from './common';

export const projectSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Project', examples: [examples.project] });

/** POST /v1/projects and PATCH /v1/projects/:id. */
export const projectBody = nameBody(examples.projectRequest);
