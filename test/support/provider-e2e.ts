import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { withUserTx } from '../../lib/db/pool';
import { freePort } from '../../lib/net/free-port';
import { createUser, startHarness, waitFor, type Harness } from './context';

export type User = Awaited<ReturnType<typeof createUser>>;

/**
 * The harness with its API really listening (providers must reach the webhook route): the port is
 * chosen first, because VELRO_PUBLIC_URL is part of the configuration the harness is built from.
 */
export async function startListeningHarness(
  env: Record<string, string>,
): Promise<{ h: Harness; publicUrl: string }> {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const h = await startHarness({ VELRO_PUBLIC_URL: publicUrl, ...env });
  await h.app.listen({ port, host: '127.0.0.1' });
  return { h, publicUrl };
}

export async function submit(
  h: Harness,
  user: User,
  input: Record<string, unknown>,
  model = 'flux-pro-v1.1-ultra',
): Promise<{ id: string; status: string; credits: { amount: number; state: string } }> {
  const res = await h.app.inject({
    method: 'POST',
    url: '/v1/generations',
    headers: user.auth,
    payload: { model, input },
  });
  expect(res.statusCode, res.body).toBe(202);
  return res.json();
}

export async function getGeneration(h: Harness, user: User, id: string) {
  return (await h.app.inject({ url: `/v1/generations/${id}`, headers: user.auth })).json();
}

/** Waits for the generation to end and returns it as the API shows it. */
export async function settled(h: Harness, user: User, id: string, timeoutMs = 30_000) {
  return waitFor(
    () => getGeneration(h, user, id),
    (g) => g.status === 'succeeded' || g.status === 'failed' || g.status === 'canceled',
    timeoutMs,
  );
}

export async function ledgerRows(h: Harness, userId: string, generationId: string) {
  return withUserTx(h.db, userId, async (tx) => {
    const { rows } = await tx.query<{ kind: string; amount: number }>(
      'SELECT kind, amount FROM credit_transfers WHERE generation_id = $1 ORDER BY created_at',
      [generationId],
    );
    return rows;
  });
}

export async function credits(h: Harness, user: User) {
  return (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json();
}

/** Reserved, then committed exactly once: the balance and the ledger rows say so. */
export async function expectChargedOnce(h: Harness, user: User, id: string, granted: number, cost: number) {
  expect(await credits(h, user)).toEqual({ available: granted - cost, reserved: 0, spent: cost });
  expect(await ledgerRows(h, user.userId, id)).toEqual([
    { kind: 'reserve', amount: cost },
    { kind: 'commit', amount: cost },
  ]);
}

/** Reserved, then released exactly once: nothing spent. */
export async function expectRefundedOnce(h: Harness, user: User, id: string, granted: number, cost: number) {
  expect(await credits(h, user)).toEqual({ available: granted, reserved: 0, spent: 0 });
  expect(await ledgerRows(h, user.userId, id)).toEqual([
    { kind: 'reserve', amount: cost },
    { kind: 'release', amount: cost },
  ]);
}

/** Fetches a stored output through its (signed) URL; returns its bytes' sha256 and content type. */
export async function fetchOutput(h: Harness, output: { url: string; sha256: string; bytes: number }) {
  const url = new URL(output.url);
  const res = await h.app.inject({ url: url.pathname + url.search });
  expect(res.statusCode).toBe(200);
  const sha256 = createHash('sha256').update(res.rawPayload).digest('hex');
  expect(res.rawPayload.length).toBe(output.bytes);
  expect(sha256).toBe(output.sha256);
  return { sha256, contentType: res.headers['content-type'] };
}

/** Posts to the webhook route over real HTTP, as a provider does. */
export async function postWebhook(
  publicUrl: string,
  provider: string,
  headers: Record<string, string>,
  body: string | Buffer,
) {
  const res = await fetch(`${publicUrl}/v1/provider-webhooks/${provider}`, { method: 'POST', headers, body });
  const text = await res.text();
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    body: text ? JSON.parse(text) : null,
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
