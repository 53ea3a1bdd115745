import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { withUserTx, type Tx } from '../../lib/db/pool';
import {
  createProject,
  deleteProject,
  getProject,
  listProjects,
  MAX_PROJECTS,
  renameProject,
  toView,
  type ProjectRow,
} from '../../lib/projects/store';
import { requireTeamRole } from '../../lib/teams/store';
import { notFound } from '../errors';
import { callerOf } from '../plugins/auth';
import {
  capReached,
  errorResponses,
  idempotentCreation,
  idempotentCreationText,
  idParams,
  listPage,
  pageSchema,
  problemSchema,
} from '../schemas/common';
import { projectBody, projectCreateBody, projectListQuery, projectSchema } from '../schemas/projects';
import { answeringTeamRefusals, teamOf } from '../services/team-access';

/**
 * The project, if the user may change it: its own personal one, or a team project it made (a
 * member or higher) or any of the team's (an admin or higher). A project it cannot see is a 404;
 * one it sees but may not change, a 403 naming the role needed.
 */
async function changeableProject(tx: Tx, userId: string, id: string): Promise<ProjectRow> {
  const project = await getProject(tx, id);
  if (!project) throw notFound('Project');
  const teamId = project.team_id;
  if (teamId) {
    const needed = project.user_id === userId ? 'member' : 'admin';
    await answeringTeamRefusals(() => requireTeamRole(tx, teamId, needed));
  }
  return project;
}

const teamRules =
  "A team project is seen by every member of the team; its maker (a member or higher) or the team's " +
  "admins change or delete it; a viewer, or a member on another's project, gets 403 naming the role needed.";

const creation = idempotentCreation(projectCreateBody, projectSchema);

const projects: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/projects',
    {
      config: { idempotent: 'exclusive' },
      schema: {
        tags: ['projects'],
        summary: 'Create a project',
        description:
          `Projects group generations (\`projectId\` in POST /v1/generations). At most ${MAX_PROJECTS} per user, ` +
          `and ${MAX_PROJECTS} per team. With \`teamId\` (a team API key: its team) the project is the team's: ` +
          'the caller must be a member or higher (a viewer gets 403; a team it is not in, 404). ' +
          idempotentCreationText('create one project'),
        ...creation,
        response: { ...creation.response, 403: problemSchema },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const teamId = teamOf(caller, req.body.teamId);
      const scope = { userId: caller.id, requestId: req.id, apiKeyId: caller.apiKeyId };
      const row = await withUserTx(app.db, scope, async (tx) => {
        if (teamId) await answeringTeamRefusals(() => requireTeamRole(tx, teamId, 'member'));
        return createProject(tx, caller.id, req.body.name, teamId);
      });
      if (!row) {
        const holder = teamId ? 'This team already has' : 'You already have';
        throw capReached('too_many_projects', `${holder} ${MAX_PROJECTS} projects; delete one first.`);
      }
      return reply.status(201).header('location', `/v1/projects/${row.id}`).send(toView(row));
    },
  );

  app.get(
    '/v1/projects',
    {
      schema: {
        tags: ['projects'],
        summary: "The caller's projects, or a team's, newest first",
        querystring: projectListQuery,
        response: { 200: pageSchema(projectSchema), ...errorResponses },
      },
    },
    async (req) => {
      const caller = callerOf(req);
      const teamId = teamOf(caller, req.query.teamId);
      return listPage(
        req.query,
        (page) =>
          withUserTx(app.db, caller.id, async (tx) => {
            if (!teamId) return listProjects(tx, { userId: caller.id }, page);
            await answeringTeamRefusals(() => requireTeamRole(tx, teamId, 'viewer'));
            return listProjects(tx, { teamId }, page);
          }),
        toView,
      );
    },
  );

  app.get(
    '/v1/projects/:id',
    {
      schema: {
        tags: ['projects'],
        summary: 'Get a project',
        description: 'A personal project of the caller, or a project of a team it belongs to.',
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
        description: teamRules,
        params: idParams,
        body: projectBody,
        response: { 200: projectSchema, 403: problemSchema, ...errorResponses },
      },
    },
    async (req) => {
      const caller = callerOf(req);
      const row = await withUserTx(app.db, caller.id, async (tx) => {
        await changeableProject(tx, caller.id, req.params.id);
        return renameProject(tx, req.params.id, req.body.name);
      });
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
          'Its generations stay, with their outputs and credit history; they just no longer name a project. ' +
          teamRules,
        params: idParams,
        response: { 204: z.undefined(), 403: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const deleted = await withUserTx(app.db, caller.id, async (tx) => {
        await changeableProject(tx, caller.id, req.params.id);
        return deleteProject(tx, req.params.id);
      });
      if (!deleted) throw notFound('Project');
      return reply.status(204).send();
    },
  );
};

export default projects;
