import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { examples } from '../schemas/examples';
import { withUserTx } from '../../lib/db/pool';
import { ApiError, notFound } from '../errors';
import { callerOf } from '../plugins/auth';
import {
  errorResponses,
  idempotencyKeyHeaders,
  idParams,
  paginationQuery,
  problemSchema,
  afterCursor,
  toPage,
} from '../schemas/common';

/** Projects a user may hold at once. */
export const MAX_PROJECTS = 1000;

const projectSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Project', examples: [examples.project] });

const projectBody = z
  .strictObject({ name: z.string().trim().min(1).max(100) })
  .meta({ examples: [examples.projectRequest] });

interface ProjectRow {
  id: string;
  name: string;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, name, created_at, updated_at';

const toView = (p: ProjectRow) => ({
  id: p.id,
  name: p.name,
  createdAt: p.created_at.toISOString(),
  updatedAt: p.updated_at.toISOString(),
});

const projects: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/projects',
    {
      config: { idempotent: 'exclusive' },
      schema: {
        tags: ['projects'],
        summary: 'Create a project',
        description:
          `Projects group generations (\`projectId\` in POST /v1/generations). At most ${MAX_PROJECTS} per user. ` +
          'Send `Idempotency-Key` to make retries safe: the same key and body create one project and get the first ' +
          'answer again (`idempotent-replayed: true`); the same key with another body gets 422 ' +
          '`idempotency_mismatch`; a duplicate sent while the first still runs, 409 `idempotency_in_progress`.',
        headers: idempotencyKeyHeaders,
        body: projectBody,
        response: { 201: projectSchema, 409: problemSchema, 422: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const row = await withUserTx(app.db, caller.id, async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`projects:${caller.id}`]);
        const { rows: count } = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM projects');
        if (count[0]!.n >= MAX_PROJECTS) {
          throw new ApiError(
            409,
            'too_many_projects',
            `You already have ${MAX_PROJECTS} projects; delete one first.`,
          );
        }
        const { rows } = await tx.query<ProjectRow>(
          `INSERT INTO projects (user_id, name) VALUES ($1, $2) RETURNING ${COLUMNS}`,
          [caller.id, req.body.name],
        );
        return rows[0]!;
      });
      return reply.status(201).header('location', `/v1/projects/${row.id}`).send(toView(row));
    },
  );

  app.get(
    '/v1/projects',
    {
      schema: {
        tags: ['projects'],
        summary: "The caller's projects, newest first",
        querystring: paginationQuery,
        response: {
          200: z.object({ data: z.array(projectSchema), nextCursor: z.string().nullable() }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const { limit, cursor } = req.query;
      const after = afterCursor(cursor);
      const { rows } = await withUserTx(app.db, callerOf(req).id, (tx) =>
        tx.query<ProjectRow>(
          `SELECT ${COLUMNS} FROM projects
           WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2::uuid))
           ORDER BY created_at DESC, id DESC LIMIT $3`,
          [after?.createdAt ?? null, after?.id ?? null, limit + 1],
        ),
      );
      return toPage(rows, limit, (r) => ({ createdAt: r.created_at, id: r.id }), toView);
    },
  );

  app.get(
    '/v1/projects/:id',
    {
      schema: {
        tags: ['projects'],
        summary: 'Get a project',
        params: idParams,
        response: { 200: projectSchema, ...errorResponses },
      },
    },
    async (req) => {
      const { rows } = await withUserTx(app.db, callerOf(req).id, (tx) =>
        tx.query<ProjectRow>(`SELECT ${COLUMNS} FROM projects WHERE id = $1`, [req.params.id]),
      );
      if (!rows[0]) throw notFound('Project');
      return toView(rows[0]);
    },
  );

  app.patch(
    '/v1/projects/:id',
    {
      schema: {
        tags: ['projects'],
        summary: 'Rename a project',
        params: idParams,
        body: projectBody,
        response: { 200: projectSchema, ...errorResponses },
      },
    },
    async (req) => {
      const { rows } = await withUserTx(app.db, callerOf(req).id, (tx) =>
        tx.query<ProjectRow>(
          `UPDATE projects SET name = $2, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
          [req.params.id, req.body.name],
        ),
      );
      if (!rows[0]) throw notFound('Project');
      return toView(rows[0]);
    },
  );

  app.delete(
    '/v1/projects/:id',
    {
      schema: {
        tags: ['projects'],
        summary: 'Delete a project',
        description:
          'Its generations stay, with their outputs and credit history; they just no longer name a project.',
        params: idParams,
        response: { 204: z.undefined(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const { rowCount } = await withUserTx(app.db, callerOf(req).id, (tx) =>
        tx.query('DELETE FROM projects WHERE id = $1', [req.params.id]),
      );
      if (rowCount === 0) throw notFound('Project');
      return reply.status(204).send();
    },
  );
};

export default projects;
