import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { publicUrl } from '../../lib/config';
import { withUserTx } from '../../lib/db/pool';
import { isTerminal } from '../../lib/generations/status';
import { watchableGeneration } from '../../lib/generations/store';
import { loadVisibleGeneration, toView, type GenerationView } from '../../lib/generations/view';
import { notFound } from '../errors';
import { callerOf } from '../plugins/auth';
import { errorResponses, idParams } from '../schemas/common';
import { eventsHeaders } from '../schemas/generations';
import {
  GenerationEventHub,
  newerThan,
  newLogLines,
  type GenerationSnapshot,
} from '../services/generation-events';

const HEARTBEAT_MS = 15_000;

const events: FastifyPluginAsyncZod = async (app) => {
  const hub = new GenerationEventHub({ db: app.db, temporal: app.temporal });
  app.addHook('onClose', async () => hub.close());

  // The whole generation for `done`, read once per watcher and generation however many of that
  // watcher's streams end together (as the watcher: row-level security decides what it may see).
  const finalViews = new Map<string, Promise<GenerationView | undefined>>();
  const finalView = (userId: string, generationId: string) => {
    const key = `${userId}:${generationId}`;
    let view = finalViews.get(key);
    if (!view) {
      view = withUserTx(app.db, userId, (tx) => loadVisibleGeneration(tx, generationId)).then(
        (row) =>
          row && toView(row, publicUrl(app.config), app.assetSigningKey, app.config.ASSET_URL_TTL_SECONDS),
      );
      finalViews.set(key, view);
      // Kept while the streams that ended together take it (output URLs are signed at read).
      void view.catch(() => undefined).finally(() => setTimeout(() => finalViews.delete(key), 1000).unref());
    }
    return view;
  };

  app.get(
    '/v1/generations/:id/events',
    {
      schema: {
        tags: ['generations'],
        summary: 'Live progress as Server-Sent Events',
        description:
          'A `status` event for every status or stage change, `progress` for provider queue position and log ' +
          'lines, then `done` with the whole generation, after which the stream closes. Each event carries an ' +
          'id: reconnect with `Last-Event-ID` to receive only what changed since. Comment lines every 15 s ' +
          "keep proxies from cutting the stream. A team generation's stream is open to the team's members; " +
          'when the watcher leaves the team (or is removed), the stream sends an `error` event ' +
          '(`{"code":"not_found"}`) within a few seconds and closes.',
        params: idParams,
        headers: eventsHeaders,
        response: {
          200: {
            description:
              'The event stream: `retry`, then `status`, `progress` and `done` events (or `error`)',
            content: { 'text/event-stream': { schema: z.string() } },
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const watched = await withUserTx(app.db, caller.id, (tx) => watchableGeneration(tx, req.params.id));
      if (!watched) throw notFound('Generation');

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-request-id': req.id,
      });
      res.write('retry: 2000\n\n');
      const send = (event: string, id: string, data: unknown) =>
        res.write(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

      let seen = req.headers['last-event-id'];
      let previous: GenerationSnapshot | undefined;
      let finished = false;
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
      const stop = () => {
        clearInterval(heartbeat);
        unsubscribe();
      };
      const { teamId } = watched;
      const revoked = () => {
        if (finished) return;
        finished = true;
        // No id: a reconnect resumes where the last status or progress event left off (and gets 404).
        res.write(
          `event: error\ndata: ${JSON.stringify({ code: 'not_found', message: 'Generation not found' })}\n\n`,
        );
        stop();
        res.end();
      };
      const onSnapshot = (snapshot: GenerationSnapshot) => {
        if (finished) return;
        // After a reconnect, what the client saw before Last-Event-ID is not sent again. A snapshot of
        // the same version on this stream still counts: a waiting generation's position moves
        // without its row changing.
        const sameVersion = previous !== undefined && snapshot.version === seen;
        if (!seen || newerThan(snapshot.version, seen) || sameVersion) {
          seen = snapshot.version;
          // The status event carries neither: logs and the queue position go in progress events.
          const { version, logs: _logs, queuePosition, ...status } = snapshot;
          if (!previous || previous.status !== snapshot.status || previous.stage !== snapshot.stage) {
            send('status', version, status);
          }
          if (!isTerminal(snapshot.status)) {
            const newLogs = newLogLines(previous, snapshot);
            if (newLogs.length || queuePosition !== (previous?.queuePosition ?? null)) {
              send('progress', version, {
                id: snapshot.id,
                stage: snapshot.stage,
                queuePosition,
                logs: newLogs,
              });
            }
          }
        }
        previous = snapshot;
        if (isTerminal(snapshot.status)) {
          finished = true;
          finalView(caller.id, snapshot.id)
            .then(
              (view) => {
                if (view) send('done', snapshot.version, view);
              },
              () => {
                // No id: a reconnect resumes after the terminal status and is sent `done` then.
                const problem = {
                  code: 'unavailable',
                  message: 'The generation could not be read; reconnect.',
                };
                res.write(`event: error\ndata: ${JSON.stringify(problem)}\n\n`);
              },
            )
            .finally(() => {
              stop();
              res.end();
            });
        }
      };
      const unsubscribe = teamId
        ? hub.subscribe(req.params.id, onSnapshot, { userId: caller.id, teamId, revoked })
        : hub.subscribe(req.params.id, onSnapshot);
      req.raw.on('close', stop);
    },
  );
};

export default events;
