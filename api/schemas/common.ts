import { z } from 'zod';
import type { PageAfter } from '../../lib/db/keyset';
import { withUserTx, type Db, type Tx } from '../../lib/db/pool';
import { ApiError } from '../errors';
import { examples } from './examples';

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string(),
    requestId: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    // Extension members (ApiError's extra.members): declared, or the serializer would drop them.
    requiredRole: z.string().optional().describe('`forbidden` in a team: the team role the action needs'),
    limit: z.number().int().optional().describe("`spend_limit_exceeded`: the member's monthly spend limit"),
    remaining: z.number().int().optional().describe('`spend_limit_exceeded`: what is left of it this month'),
  })
  .meta({
    id: 'Problem',
    description: 'RFC 9457 problem details with a stable `code`',
    examples: [examples.problem],
  });

export const idParams = z.object({
  id: z.uuid({ message: 'must be a UUID' }).meta({ minLength: 36, maxLength: 36 }),
});

/**
 * A cursor is `<created_at as ISO 8601, ms>|<uuid>` (24 + 1 + 36 = 61 bytes) in unpadded base64url:
 * always 82 characters of the URL-safe alphabet.
 */
const CURSOR_LENGTH = 82;
const CURSOR_PATTERN = /^[A-Za-z0-9_-]{82}$/;
const CURSOR_TEXT =
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const cursorSchema = z
  .string()
  .length(CURSOR_LENGTH, { message: 'not a cursor from this API' })
  .regex(CURSOR_PATTERN, { message: 'not a cursor from this API' })
  .describe("The previous page's `nextCursor`, as it was given (opaque)");

export const paginationQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: cursorSchema.optional(),
});

/** Opaque cursor over (created_at, id), newest first. */
export function encodeCursor(createdAt: Date, id: string): string {
  return Buffer.from(`${createdAt.toISOString()}|${id}`).toString('base64url');
}

/** The position in `cursor`, if it is exactly one `encodeCursor` issues (no other spelling of it). */
export function decodeCursor(cursor: string): { createdAt: Date; id: string } | undefined {
  if (!CURSOR_PATTERN.test(cursor)) return undefined;
  const text = Buffer.from(cursor, 'base64url').toString('latin1');
  if (!CURSOR_TEXT.test(text)) return undefined;
  const [at, id] = text.split('|') as [string, string];
  const createdAt = new Date(at);
  if (Number.isNaN(createdAt.getTime()) || encodeCursor(createdAt, id) !== cursor) return undefined;
  return { createdAt, id };
}

/** The keyset position after `cursor` (none for the first page); 400 for a cursor this API did not issue. */
export function afterCursor(cursor: string | undefined): { createdAt: Date; id: string } | undefined {
  if (!cursor) return undefined;
  const after = decodeCursor(cursor);
  if (!after) throw new ApiError(400, 'invalid_request', 'cursor: not a cursor from this API');
  return after;
}

/** `{data, nextCursor}` from rows fetched newest first with `LIMIT limit + 1` (the extra row says more exist). */
export function toPage<R, V>(
  rows: R[],
  limit: number,
  position: (row: R) => { createdAt: Date; id: string },
  view: (row: R) => V,
): { data: V[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  const at = last && rows.length > limit ? position(last) : undefined;
  return { data: page.map(view), nextCursor: at ? encodeCursor(at.createdAt, at.id) : null };
}

/** The body that creates or renames something that has only a name (a project, an API key). */
export const nameBody = (example: { name: string }) =>
  z.strictObject({ name: z.string().trim().min(1).max(100) }).meta({ examples: [example] });

/** A list route's answer: one page of `item`, newest first. */
export const pageSchema = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), nextCursor: z.string().nullable() });

/**
 * A list route's answer for `query` (its `paginationQuery`): `fetch` reads the page that starts after
 * the cursor's position, newest first with one row more than `limit` (lib/db/keyset.ts's newestFirst
 * does), and `view` shows each row. 400 for a cursor this API did not issue, before anything is read.
 */
export async function listPage<R extends { created_at: Date; id: string }, V>(
  query: { limit: number; cursor?: string | undefined },
  fetch: (page: { after?: PageAfter; limit: number }) => Promise<R[]>,
  view: (row: R) => V,
): Promise<{ data: V[]; nextCursor: string | null }> {
  const after = afterCursor(query.cursor);
  const rows = await fetch({ after, limit: query.limit });
  return toPage(rows, query.limit, (r) => ({ createdAt: r.created_at, id: r.id }), view);
}

/** listPage over one of the user's own lists: `list` (a store function) runs in the user's transaction. */
export function listOwnPage<R extends { created_at: Date; id: string }, V>(
  db: Db,
  userId: string,
  query: { limit: number; cursor?: string | undefined },
  list: (tx: Tx, page: { after?: PageAfter; limit: number }) => Promise<R[]>,
  view: (row: R) => V,
): Promise<{ data: V[]; nextCursor: string | null }> {
  return listPage(query, (page) => withUserTx(db, userId, (tx) => list(tx, page)), view);
}

/**
 * `Idempotency-Key` as the routes that honour it document it (the idempotency plugin checks it
 * again, and does the work).
 */
export const idempotencyKeyHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1)
    .max(255)
    .optional()
    .describe(
      'Makes retries safe (Stripe semantics), kept at least 24 h: the same key and body get the first answer again, ' +
        'with `idempotent-replayed: true`; a one-time secret in it is withheld (null, `idempotent-secret-redacted: true`)',
    ),
});

export const errorResponses = {
  400: problemSchema,
  401: problemSchema,
  404: problemSchema,
  429: problemSchema,
  500: problemSchema,
};

/**
 * The request headers, body and answers of a POST that creates something, honours `Idempotency-Key`
 * (422 and 409 for a key misused or still running) and has a per-user cap (409 past it): spread into
 * the route's schema.
 */
export const idempotentCreation = <B extends z.ZodType, T extends z.ZodType>(body: B, created: T) => ({
  headers: idempotencyKeyHeaders,
  body,
  response: { 201: created, 409: problemSchema, 422: problemSchema, ...errorResponses },
});

/**
 * What `Idempotency-Key` does on a creation, as its description says it: `creates` is what the
 * request does ("create one project"); `secret`, the answer's one-time secret field and what a client
 * that lost it does (a replay carries it as null).
 */
export function idempotentCreationText(creates: string, secret?: { field: string; lost: string }): string {
  const replay =
    `Send \`Idempotency-Key\` to make retries safe: the same key and body ${creates} and get the first ` +
    'answer again (`idempotent-replayed: true`)';
  const refused =
    'the same key with another body gets 422 `idempotency_mismatch`; a duplicate sent while the first ' +
    'still runs, 409 `idempotency_in_progress`.';
  if (!secret) return `${replay}; ${refused}`;
  const redacted = `but with \`${secret.field}\` null (\`idempotent-secret-redacted: true\`), ${secret.lost}`;
  return `${replay}, ${redacted}. T${refused.slice(1)}`;
}

/** 409 for a creation past the caller's cap (`code`: `too_many_…`). */
export const capReached = (code: string, detail: string) => new ApiError(409, code, detail);

/** The query and answers of a plain list route (no filters): a page of `item`. */
export const listing = <T extends z.ZodType>(item: T) => ({
  querystring: paginationQuery,
  response: { 200: pageSchema(item), ...errorResponses },
});
