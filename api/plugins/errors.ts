import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { isDatabaseUnreachable } from '../../lib/db/unreachable';
import { ApiError, problem, unavailable } from '../errors';
import { lingerOnClose, MAX_URL_LENGTH } from '../limits';

/** Every error leaves as application/problem+json with a stable code; a 5xx never leaks internals. */
export default fp(
  async function errors(app: FastifyInstance) {
    app.setErrorHandler((err: FastifyError, req, reply) => {
      const send = (status: number, body: ReturnType<typeof problem>, headers: Record<string, string> = {}) =>
        reply.status(status).headers(headers).type('application/problem+json').send(body);

      const sendApiError = (e: ApiError) =>
        send(
          e.status,
          problem(e.status, e.code, e.message, req.id, e.extra.errors, e.extra.members),
          e.extra.headers,
        );

      if (err instanceof ApiError) return sendApiError(err);
      if (hasZodFastifySchemaValidationErrors(err)) {
        const errors = err.validation.map((v) => ({
          path: [err.validationContext, ...(v.instancePath ? v.instancePath.slice(1).split('/') : [])].join(
            '.',
          ),
          message: v.message ?? 'invalid',
        }));
        const detail = errors.map((e) => `${e.path}: ${e.message}`).join('; ');
        return send(400, problem(400, 'invalid_request', detail, req.id, errors));
      }
      const status = err.statusCode ?? 500;
      if (status >= 400 && status < 500) {
        const code =
          status === 413
            ? 'payload_too_large'
            : status === 415
              ? 'unsupported_media_type'
              : status === 429
                ? 'rate_limited'
                : 'invalid_request';
        return send(status, problem(status, code, err.message, req.id));
      }
      // Postgres went away under the request (restart, failover): the client can retry, as it can
      // when the rate-limit count or Temporal is unavailable.
      if (isDatabaseUnreachable(err)) {
        req.log.warn({ err }, 'database unreachable');
        return sendApiError(unavailable('The service cannot answer right now; try again shortly.'));
      }
      req.log.error({ err }, 'unhandled error');
      return send(500, problem(500, 'internal_error', 'Something went wrong on our side.', req.id));
    });

    // A URL short enough for Node's header limit may still be longer than any this API issues.
    app.addHook('onRequest', async (req) => {
      if (req.url.length > MAX_URL_LENGTH) {
        throw new ApiError(
          414,
          'uri_too_long',
          `The request URL is longer than ${MAX_URL_LENGTH} characters.`,
        );
      }
    });

    // Answered before the client finished sending its body (413 on content-length, 401 before the
    // body is read...): close the connection, but only once the client had a chance to read the
    // answer. Closing at once, with its bytes still arriving, resets the connection, and a reset
    // can discard the answer on the client's side before it is read.
    app.addHook('onSend', async (req, reply, payload) => {
      if (req.raw.complete === false && req.raw.socket) {
        reply.header('connection', 'close');
        lingerOnClose(req.raw.socket);
      }
      return payload;
    });

    app.setNotFoundHandler((req, reply) => {
      reply
        .status(404)
        .type('application/problem+json')
        .send(problem(404, 'not_found', `No route ${req.method} ${req.url.split('?')[0]}`, req.id));
    });
  },
  { name: 'errors' },
);
