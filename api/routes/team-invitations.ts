import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { publicUrl } from '../../lib/config';
import { invitationMessage, type InvitationMail } from '../../lib/mail/invitation';
import { generateInvitationToken } from '../../lib/teams/invitation-tokens';
import {
  createInvitation,
  listInvitations,
  MAX_PENDING_INVITATIONS,
  revokeInvitation,
  toView,
} from '../../lib/teams/invitations-store';
import { ApiError, notFound } from '../errors';
import { callerOf } from '../plugins/auth';
import { inTeamTx } from '../team-tx';
import {
  capReached,
  errorResponses,
  idempotentCreation,
  idempotentCreationText,
  idParams,
  listPage,
  paginationQuery,
  pageSchema,
  problemSchema,
} from '../schemas/common';
import {
  createdInvitationSchema,
  createInvitationBody,
  invitationParams,
  invitationSchema,
} from '../schemas/invitations';

const teamErrors = { 403: problemSchema, ...errorResponses };

const teamInvitations: FastifyPluginAsyncZod = async (app) => {
  const creation = idempotentCreation(createInvitationBody, createdInvitationSchema);

  /** E-mails the invitation when SMTP_URL is set: whether it went out (a failure is logged, never thrown). */
  async function mailInvitation(
    req: FastifyRequest,
    invitationId: string,
    mail: InvitationMail,
  ): Promise<boolean> {
    if (!app.mailer.enabled) return false;
    const sent = await app.mailer.send(invitationMessage(mail));
    // The reason is nodemailer's error (code, server reply): never the message, so never the token.
    if (!sent.sent) req.log.warn({ invitationId, reason: sent.reason }, 'invitation e-mail not sent');
    else req.log.info({ invitationId }, 'invitation e-mailed');
    return sent.sent;
  }

  app.post(
    '/v1/teams/:id/invitations',
    {
      config: { idempotent: 'exclusive', idempotentSecretFields: ['token', 'acceptUrl'] },
      schema: {
        tags: ['teams'],
        summary: 'Invite someone to the team by e-mail',
        description:
          'Admin or owner; the role at most your own (403 `forbidden` with `requiredRole`). The answer carries ' +
          'the one-time `token` and the `acceptUrl` built from it, once: only the hash is stored. The ' +
          'invitation expires after 7 days and works once, for a signed-in user with this e-mail address ' +
          '(POST /v1/invitations/accept). With SMTP_URL set it is also e-mailed to the invitee (`emailed`); ' +
          'a failed or slow send never fails the request, so share the link when `emailed` is false. ' +
          `409 \`already_member\` when the address belongs to a member; at most ${MAX_PENDING_INVITATIONS} ` +
          'pending invitations per team (409 `too_many_invitations`). ' +
          idempotentCreationText('create one invitation (e-mailed once)', {
            field: 'token',
            lost: 'and `acceptUrl` too: revoke that invitation (its id is in the replay) and invite again',
          }),
        params: idParams,
        ...creation,
        response: { ...creation.response, 403: problemSchema },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const { email, role } = req.body;
      const { token, hash } = generateInvitationToken();
      const created = await inTeamTx(app.db, req, (tx) =>
        createInvitation(tx, { teamId: req.params.id, inviterId: caller.id, email, role, tokenHash: hash }),
      );
      if (created.kind === 'already_member') {
        throw new ApiError(409, 'already_member', `${email} is already a member of this team.`);
      }
      if (created.kind === 'too_many') {
        throw capReached(
          'too_many_invitations',
          `The team already has ${MAX_PENDING_INVITATIONS} pending invitations; revoke some first.`,
        );
      }
      const { row } = created;
      req.log.info({ invitationId: row.id, teamId: req.params.id }, 'invitation created');
      const acceptUrl = `${publicUrl(app.config)}/invitations/accept?token=${token}`;
      const emailed = await mailInvitation(req, row.id, {
        to: row.email,
        teamName: created.teamName,
        invitedBy: created.inviterEmail,
        role: row.role,
        acceptUrl,
        expiresAt: row.expires_at,
      });
      return reply
        .status(201)
        .header('cache-control', 'no-store')
        .send({ invitation: toView(row), token, acceptUrl, emailed });
    },
  );

  app.get(
    '/v1/teams/:id/invitations',
    {
      schema: {
        tags: ['teams'],
        summary: "The team's invitations, newest first",
        description: 'Admin or owner. Every invitation with its status as of now; never the tokens.',
        params: idParams,
        querystring: paginationQuery,
        response: { 200: pageSchema(invitationSchema), ...teamErrors },
      },
    },
    async (req) =>
      listPage(
        req.query,
        (page) => inTeamTx(app.db, req, (tx) => listInvitations(tx, req.params.id, page)),
        toView,
      ),
  );

  app.delete(
    '/v1/teams/:id/invitations/:invitationId',
    {
      schema: {
        tags: ['teams'],
        summary: 'Revoke an invitation',
        description:
          'Admin or owner. Its token stops working at once (410 `invitation_revoked`); revoking it again ' +
          'changes nothing. 409 `invitation_accepted` once it was used: remove the member instead.',
        params: invitationParams,
        response: { 204: z.undefined(), 409: problemSchema, ...teamErrors },
      },
    },
    async (req, reply) => {
      const outcome = await inTeamTx(app.db, req, (tx) =>
        revokeInvitation(tx, req.params.id, req.params.invitationId),
      );
      if (outcome === 'not_found') throw notFound('Invitation');
      if (outcome === 'accepted') {
        throw new ApiError(
          409,
          'invitation_accepted',
          'This invitation was accepted already; it cannot be revoked.',
        );
      }
      return reply.status(204).send();
    },
  );
};

export default teamInvitations;
