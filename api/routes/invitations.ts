import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { withUserTx } from '../../lib/db/pool';
import { hashInvitationToken } from '../../lib/teams/invitation-tokens';
import { acceptInvitation, type AcceptOutcome } from '../../lib/teams/invitations-store';
import { ApiError } from '../errors';
import { callerOf } from '../plugins/auth';
import { errorResponses, problemSchema } from '../schemas/common';
import { acceptedInvitationSchema, acceptInvitationBody } from '../schemas/invitations';

const REFUSALS: Record<Exclude<AcceptOutcome, 'joined' | 'already_joined'>, [number, string]> = {
  // Unknown and someone else's look the same: a token never tells whose it is.
  not_found: [404, 'No invitation with this token for your e-mail address.'],
  expired: [410, 'This invitation has expired; ask for a new one.'],
  revoked: [410, 'This invitation was revoked.'],
  used: [410, 'This invitation was accepted by someone else already.'],
};

const invitations: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/invitations/accept',
    {
      schema: {
        tags: ['teams'],
        summary: 'Accept a team invitation',
        description:
          "The client app's accept page (the invitation's `acceptUrl`) calls this for the signed-in user, whose " +
          'e-mail address must be the invited one: the caller becomes a member with the invited role. Accepting ' +
          'again answers `already_joined`. 404 `invitation_not_found` for an unknown token or one for another ' +
          'address; 410 `invitation_expired`, `invitation_revoked` or `invitation_used` (by someone else).',
        body: acceptInvitationBody,
        response: { 200: acceptedInvitationSchema, 410: problemSchema, ...errorResponses },
      },
    },
    async (req) => {
      const caller = callerOf(req);
      const r = await withUserTx(
        app.db,
        { userId: caller.id, requestId: req.id, apiKeyId: caller.apiKeyId },
        (tx) => acceptInvitation(tx, hashInvitationToken(req.body.token)),
      );
      if (r.outcome !== 'joined' && r.outcome !== 'already_joined') {
        const [status, detail] = REFUSALS[r.outcome];
        throw new ApiError(status, `invitation_${r.outcome}`, detail);
      }
      return { teamId: r.teamId!, role: r.role!, status: r.outcome };
    },
  );
};

export default invitations;
