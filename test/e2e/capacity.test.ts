import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeFal, type FakeFal, type FalJob } from '../fakes/fal-server';
import {
  capacityRequest,
  falCapacityEnv,
  grantOrder,
  jobsInOrder,
  limitsOf,
  maxOverlap,
  patchLimits,
  readEventsUntil,
  setLimits,
  submitWith,
  untilWaiting,
  WAITING,
} from '../support/capacity';
import { createUser, systemDb, waitFor, type Harness } from '../support/context';
import {
  credits,
  expectRefundedOnce,
  getGeneration,
  ledgerRows,
  settled,
  startListeningHarness,
  type User,
} from '../support/provider-e2e';

// flux-pro-v1.1-ultra, the model every generation here uses.
const COST = 50;
// Waiting tests poll their generations often; the per-user rate limit is not what they test.
const RATE_LIMIT = { RATE_LIMIT_MAX: '1000000' };
// Dozens of generations through a few slots can take over a minute on a loaded machine.
const MANY_GENERATIONS_TIMEOUT_MS = 120_000;

let n = 0;
const promptOf = (who: string) => `${who} ${++n} ${randomUUID()}`;

async function submitMany(h: Harness, user: User, who: string, count: number) {
  const prompts = Array.from({ length: count }, () => promptOf(who));
  const ids = await Promise.all(prompts.map((p) => submitWith(h, user, p)));
  return prompts.map((prompt, i) => ({ prompt, id: ids[i]! }));
}

/** Every one succeeded and was charged exactly once (a reserve, then one commit); the user had just enough. */
async function expectAllChargedOnce(h: Harness, user: User, ids: string[]) {
  for (const id of ids) {
    const done = await settled(h, user, id, 60_000);
    expect(done.status, id).toBe('succeeded');
    expect(done.credits).toEqual({ amount: COST, state: 'charged' });
    expect(await ledgerRows(h, user.userId, id)).toEqual([
      { kind: 'reserve', amount: COST },
      { kind: 'commit', amount: COST },
    ]);
  }
  expect(await credits(h, user)).toEqual({ available: 0, reserved: 0, spent: COST * ids.length });
}

const cancel = (h: Harness, user: User, id: string) =>
  h.app.inject({ method: 'POST', url: `/v1/generations/${id}/cancel`, headers: user.auth });

/**
 * Fills the pool with `count` generations the fake runs for a minute (`#slow`), in flight at the
 * fake; `release` cancels them, which frees their slots.
 */
async function occupyPool(h: Harness, fal: FakeFal, count: number) {
  const owner = await createUser(h.db, COST * count);
  const held = await submitMany(h, owner, '#slow blocker', count);
  await waitFor(
    async () => held.filter((g) => fal.jobFor(g.prompt)).length,
    (inFlight) => inFlight === count,
  );
  return {
    ids: held.map((g) => g.id),
    async release(ids = held.map((g) => g.id)) {
      for (const id of ids) expect((await cancel(h, owner, id)).statusCode).toBe(202);
      for (const id of ids) expect((await settled(h, owner, id)).status).toBe('canceled');
    },
  };
}

describe('capacity: fair turns between accounts and per-account caps (fal cap 8)', () => {
  const queueMs = 100;
  let fal: FakeFal;
  let h: Harness;
  let admin: User;
  beforeAll(async () => {
    fal = await startFakeFal({ runMs: 1500, queueMs });
    ({ h } = await startListeningHarness(
      falCapacityEnv(fal, { FAL_MAX_CONCURRENCY: '8', CAPACITY_ACCOUNT_MAX_IMAGE: '100', ...RATE_LIMIT }),
    ));
    admin = await createUser(h.db, 0, 'admin');
  });
  afterAll(async () => {
    await h?.stop();
    await fal?.close();
  });

  it(
    "gives an account arriving behind another's 40 queued generations a slot within one turnover",
    async () => {
      const a = await createUser(h.db, 40 * COST);
      const b = await createUser(h.db, 5 * COST);
      const fromA = await submitMany(h, a, 'tenant-a', 40);
      // A's last one is the last in A's own order: it waits for capacity, behind most of A's.
      await untilWaiting(h, a, fromA.at(-1)!.id);

      const fromB: { prompt: string; id: string }[] = [];
      let beforeB = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const prompt = promptOf('tenant-b');
        fromB.push({ prompt, id: await submitWith(h, b, prompt) });
        // B has arrived once its first submit is answered: the fake's jobs from then on are counted.
        if (i === 0) beforeB = new Set(fal.jobs.keys());
      }

      await expectAllChargedOnce(
        h,
        a,
        fromA.map((g) => g.id),
      );
      await expectAllChargedOnce(
        h,
        b,
        fromB.map((g) => g.id),
      );

      const owner = new Map<string, 'a' | 'b'>([
        ...fromA.map((g) => [g.prompt, 'a'] as const),
        ...fromB.map((g) => [g.prompt, 'b'] as const),
      ]);
      const ownerOf = (jobs: FalJob[]) => jobs.map((j) => owner.get(String(j.input.prompt)));
      expect(ownerOf(jobsInOrder(fal)).filter((who) => who !== undefined)).toHaveLength(45);
      // The fake's jobs submitted after B's arrival, by owner, in the order the fake received them.
      const after = ownerOf(jobsInOrder(fal).filter((j) => !beforeB.has(j.requestId)));
      const firstB = after.indexOf('b');
      // B's first job reached the fake before A's 9th job after B's arrival...
      expect(firstB).toBeGreaterThanOrEqual(0);
      expect(after.slice(0, firstB).filter((who) => who === 'a').length).toBeLessThan(9);
      // ...and B's five did not wait behind A's queue: A still had work to submit after B's last.
      expect(after.lastIndexOf('b')).toBeLessThan(after.lastIndexOf('a'));
      // A had truly queued: more than one turnover of its work was submitted after B arrived.
      expect(after.filter((who) => who === 'a').length).toBeGreaterThanOrEqual(9);

      // The cap held at the fake, by its own count and by the jobs' own times.
      expect(fal.peakInFlight).toBeLessThanOrEqual(8);
      expect(maxOverlap(jobsInOrder(fal), queueMs)).toBeLessThanOrEqual(8);
    },
    MANY_GENERATIONS_TIMEOUT_MS,
  );

  it("holds an account to the image cap an admin set for it, with the provider's slots free", async () => {
    const c = await createUser(h.db, 6 * COST);
    const limits = await setLimits(h, admin, c.userId, { maxConcurrentImage: 2 });
    expect(limits).toMatchObject({
      accountId: c.userId,
      accountKind: 'user',
      maxConcurrentImage: 2,
      maxConcurrentVideo: 4,
      priority: 5,
      overrides: { maxConcurrentImage: 2, maxConcurrentVideo: null, priority: null },
    });
    expect(await limitsOf(h, admin, c.userId)).toEqual(limits);

    const fromC = await submitMany(h, c, 'tenant-c', 6);
    // Some of C's wait although the pool (8) has room: the account's cap is what holds them.
    await waitFor(
      () => Promise.all(fromC.map((g) => getGeneration(h, c, g.id))),
      (gs) => gs.filter((g) => g.stage === WAITING).length >= 1,
    );
    expect(fal.inFlight()).toBeLessThanOrEqual(2);

    await expectAllChargedOnce(
      h,
      c,
      fromC.map((g) => g.id),
    );
    const prompts = new Set(fromC.map((g) => g.prompt));
    const jobsOfC = jobsInOrder(fal).filter((j) => prompts.has(String(j.input.prompt)));
    expect(jobsOfC).toHaveLength(6);
    expect(maxOverlap(jobsOfC, queueMs)).toBe(2);
  });
});

describe('capacity: priorities (fal cap 2)', () => {
  let fal: FakeFal;
  let h: Harness;
  let admin: User;
  beforeAll(async () => {
    fal = await startFakeFal({ runMs: 300, queueMs: 50 });
    ({ h } = await startListeningHarness(falCapacityEnv(fal, { FAL_MAX_CONCURRENCY: '2', ...RATE_LIMIT })));
    admin = await createUser(h.db, 0, 'admin');
  });
  afterAll(async () => {
    await h?.stop();
    await fal?.close();
  });

  it(
    'gives a priority-10 account most turns without starving a priority-1 account',
    async () => {
      const high = await createUser(h.db, 12 * COST);
      const low = await createUser(h.db, 12 * COST);
      await setLimits(h, admin, high.userId, { priority: 10 });
      await setLimits(h, admin, low.userId, { priority: 1 });

      // Both queue all their work while the pool is full, so every turn is a choice between them.
      const pool = await occupyPool(h, fal, 2);
      const fromHigh = await submitMany(h, high, 'tier-10', 12);
      const fromLow = await submitMany(h, low, 'tier-1', 12);
      for (const g of fromHigh) await untilWaiting(h, high, g.id);
      for (const g of fromLow) await untilWaiting(h, low, g.id);
      await pool.release();

      await expectAllChargedOnce(
        h,
        high,
        fromHigh.map((g) => g.id),
      );
      await expectAllChargedOnce(
        h,
        low,
        fromLow.map((g) => g.id),
      );

      const tier = new Map<string, number>([
        ...fromHigh.map((g) => [g.id, 10] as const),
        ...fromLow.map((g) => [g.id, 1] as const),
      ]);
      const turns = (await grantOrder([...tier.keys()])).map((id) => tier.get(id)!);
      expect(turns).toHaveLength(24);
      // The turns while both waited: until the priority-10 account's queue was drained.
      const bothWaiting = turns.slice(0, turns.lastIndexOf(10) + 1);
      const lowTurns = bothWaiting.filter((t) => t === 1).length;
      expect(lowTurns).toBeGreaterThanOrEqual(1);
      expect(lowTurns / bothWaiting.length).toBeGreaterThanOrEqual(1 / 11);
      // Most early turns are the priority-10 account's.
      expect(turns.slice(0, 11).filter((t) => t === 10).length).toBeGreaterThanOrEqual(9);
    },
    MANY_GENERATIONS_TIMEOUT_MS,
  );

  it("starts an account's later priority-10 generation before its earlier waiting ones", async () => {
    const d = await createUser(h.db, 4 * COST);
    const pool = await occupyPool(h, fal, 2);
    const earlier: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await submitWith(h, d, promptOf('default'));
      await untilWaiting(h, d, id);
      earlier.push(id);
    }
    const urgent = await submitWith(h, d, promptOf('urgent'), { priority: 10 });
    await untilWaiting(h, d, urgent);

    await pool.release();

    await expectAllChargedOnce(h, d, [...earlier, urgent]);
    expect(await grantOrder([...earlier, urgent])).toEqual([urgent, ...earlier]);
  });
});

describe('capacity: waiting generations (fal cap 1)', () => {
  let fal: FakeFal;
  let h: Harness;
  let publicUrl: string;
  let admin: User;
  beforeAll(async () => {
    fal = await startFakeFal({ runMs: 200, queueMs: 50 });
    ({ h, publicUrl } = await startListeningHarness(
      falCapacityEnv(fal, { FAL_MAX_CONCURRENCY: '1', ...RATE_LIMIT }),
    ));
    admin = await createUser(h.db, 0, 'admin');
  });
  afterAll(async () => {
    await h?.stop();
    await fal?.close();
  });

  it('shows a waiting generation as queued, waiting for capacity, with its position, in GET and its events', async () => {
    const w = await createUser(h.db, 3 * COST);
    const pool = await occupyPool(h, fal, 1);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await submitWith(h, w, promptOf('waiting'));
      await untilWaiting(h, w, id);
      ids.push(id);
    }

    const views = await Promise.all(ids.map((id) => getGeneration(h, w, id)));
    for (const g of views) {
      expect(g).toMatchObject({
        status: 'queued',
        stage: WAITING,
        credits: { amount: COST, state: 'reserved' },
      });
    }
    // Only this account waits in this pool: its generations are next, in the order they were submitted.
    expect(views.map((g) => g.queuePosition)).toEqual([1, 2, 3]);
    expect(await credits(h, w)).toEqual({ available: 0, reserved: 3 * COST, spent: 0 });

    const events = await readEventsUntil(
      `${publicUrl}/v1/generations/${ids[1]}/events`,
      w.auth,
      (e) => (e.data as { queuePosition?: unknown } | undefined)?.queuePosition !== undefined,
    );
    expect(events[0]).toMatchObject({ event: 'status', data: { status: 'queued', stage: WAITING } });
    expect(events.at(-1)).toMatchObject({ event: 'progress', data: { stage: WAITING, queuePosition: 2 } });

    await pool.release();
    await expectAllChargedOnce(h, w, ids);
    expect(await grantOrder(ids)).toEqual(ids);
  });

  it('cancels a waiting generation at once: refunded, never sent to fal, its request released', async () => {
    const x = await createUser(h.db, COST);
    const pool = await occupyPool(h, fal, 1);
    try {
      const prompt = promptOf('canceled while waiting');
      const id = await submitWith(h, x, prompt);
      await untilWaiting(h, x, id);

      expect((await cancel(h, x, id)).statusCode).toBe(202);
      const done = await settled(h, x, id);
      expect(done).toMatchObject({ status: 'canceled', credits: { amount: COST, state: 'refunded' } });
      await expectRefundedOnce(h, x, id, COST, COST);
      expect(fal.jobFor(prompt)).toBeUndefined();
      expect(fal.requests.filter((r) => r.body.includes(prompt))).toEqual([]);
      const request = await capacityRequest(id);
      expect(request).toMatchObject({ granted_at: null, released_at: expect.any(Date) });
    } finally {
      await pool.release();
    }
  });

  it('shows slots in use and waiting generations for fal in /metrics', async () => {
    const y = await createUser(h.db, 2 * COST);
    const pool = await occupyPool(h, fal, 1);
    const ids = [await submitWith(h, y, promptOf('metrics')), await submitWith(h, y, promptOf('metrics'))];
    for (const id of ids) await untilWaiting(h, y, id);

    const gauge = async (name: string) => {
      const res = await h.app.inject({ url: '/metrics' });
      expect(res.statusCode).toBe(200);
      return res.body
        .split('\n')
        .filter((line) => line.startsWith(`${name}{`) && line.includes('provider="fal"'))
        .map((line) => ({
          labels: line.slice(name.length, line.lastIndexOf('}') + 1),
          value: Number(line.split(' ').at(-1)),
        }));
    };
    const inUse = await gauge('velro_capacity_slots_in_use');
    const waiting = await gauge('velro_capacity_waiting');
    expect(inUse.filter((g) => g.labels.includes('account_kind="user"')).map((g) => g.value)).toEqual([1]);
    expect(waiting.filter((g) => g.labels.includes('account_kind="user"')).map((g) => g.value)).toEqual([2]);
    expect(waiting.some((g) => g.value > 0)).toBe(true);

    await pool.release();
    await expectAllChargedOnce(h, y, ids);
    // Once all is done nothing waits.
    expect((await gauge('velro_capacity_waiting')).every((g) => g.value === 0)).toBe(true);
  });

  it('refuses bad limits and bad priorities with 400 naming the field, and changes nothing', async () => {
    const user = await createUser(h.db, 100);
    const before = await setLimits(h, admin, user.userId, { maxConcurrentImage: 3, priority: 7 });

    const cases: [unknown, string][] = [
      [{ maxConcurrentImage: -1 }, 'maxConcurrentImage'],
      [{ maxConcurrentImage: 0 }, 'maxConcurrentImage'],
      [{ maxConcurrentVideo: 0 }, 'maxConcurrentVideo'],
      [{ maxConcurrentVideo: 2.5 }, 'maxConcurrentVideo'],
      [{ maxConcurrentImage: 10_001 }, 'maxConcurrentImage'],
      [{ maxConcurrentVideo: 1e9 }, 'maxConcurrentVideo'],
      [{ maxConcurrentImage: '4' }, 'maxConcurrentImage'],
      [{ priority: 0 }, 'priority'],
      [{ priority: 11 }, 'priority'],
      [{ priority: 5.5 }, 'priority'],
      [{ maxConcurrentImage: 4, priority: 11 }, 'priority'],
      [{ maxConcurrentImage: 4, burst: 10 }, 'burst'],
      [{}, 'at least one'],
    ];
    for (const [body, field] of cases) {
      const res = await patchLimits(h, admin, user.userId, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.json().code).toBe('invalid_request');
      expect(res.json().detail, JSON.stringify(body)).toContain(field);
      expect(await limitsOf(h, admin, user.userId)).toEqual(before);
    }

    for (const body of [{ priority: 10 }, { priority: 'x' }]) {
      const res = await patchLimits(h, user, user.userId, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(403);
      expect(res.json()).toMatchObject({ status: 403, code: 'forbidden' });
    }
    expect(
      (await h.app.inject({ url: `/v1/admin/accounts/${user.userId}/limits`, headers: user.auth }))
        .statusCode,
    ).toBe(403);
    expect(await limitsOf(h, admin, user.userId)).toEqual(before);

    const unknown = await patchLimits(h, admin, randomUUID(), { priority: 3 });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'not_found' });

    // null puts one field back to its default, and leaves the others as they were.
    const reset = await setLimits(h, admin, user.userId, { priority: null });
    expect(reset).toMatchObject({
      maxConcurrentImage: 3,
      priority: 5,
      overrides: { maxConcurrentImage: 3, priority: null },
    });

    for (const priority of [0, 11, 2.5, 'high']) {
      const res = await h.app.inject({
        method: 'POST',
        url: '/v1/generations',
        headers: user.auth,
        payload: { model: 'flux-pro-v1.1-ultra', input: { prompt: 'bad priority' }, priority },
      });
      expect(res.statusCode, String(priority)).toBe(400);
      expect(res.json().code).toBe('invalid_request');
      expect(res.json().detail).toContain('priority');
    }
    const { rows } = await systemDb().query<{ n: number }>(
      'SELECT count(*)::int AS n FROM generations WHERE user_id = $1',
      [user.userId],
    );
    expect(rows[0]!.n).toBe(0);
    expect(await credits(h, user)).toEqual({ available: 100, reserved: 0, spent: 0 });
  });
});
