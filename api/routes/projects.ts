import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { withUserTx } from '../../lib/db/pool';
import {
  createProject,
  deleteProject,
  getProject,
  listProjects,
  MAX_PROJECTS,
  renameProject,
  toView,
} from '../../lib/projects/store';
import { notFound } from '../errors';
import { callerOf } from '../plugins/auth';
import {
  capReached,
  errorResponses,
  idempotentCreation,
  idempotentCreationText,
  idParams,
  listing,
  listOwnPage,
} from '../schemas/common';
import { projectBody, projectSchema } from '../schemas/projects';

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
          idempotentCreationText('create one project'),
        ...idempotentCreation(projectBody, projectSchema),
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const row = await withUserTx(app.db, caller.id, (tx) => createProject(tx, caller.id, req.body.name));
      if (!row)
        throw capReached('too_many_projects', `You already have ${MAX_PROJECTS} projects; delete one first.`);
      return reply.status(201).header('location', `/v1/projects/${row.id}`).send(toView(row));
    },
  );

  app.get(
    '/v1/projects',
    {
      schema: {
        tags: ['projects'],
        summary: "The caller's projects, newest first",
        ...listing(projectSchema),
      },
    },
    async (req) => listOwnPage(app.db, callerOf(req).id, req.query, listProjects, toView),
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
      const row = await withUserTx(app.db, callerOf(req).id, (tx) => getProject(tx, req.params.id));
      if (!row) throw notFound('Project');
      return toView(row);
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
      const row = await withUserTx(app.db, callerOf(req).id, (tx) =>
        renameProject(tx, req.params.id, req.body.name),
      );
      if (!row) throw notFound('Project');
      return toView(row);
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
      const deleted = await withUserTx(app.db, callerOf(req).id, (tx) => deleteProject(tx, req.params.id));
      if (!deleted) throw notFound('Project');
      return reply.status(204).send();
    },
  );
};

export default projects;
