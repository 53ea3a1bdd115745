import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withUserTx, type Db } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { runAdmin as admin } from '../support/scripts';
import { createUser, startHarness, testConfig, testDb, type Harness } from '../support/context';

describe('POST /v1/admin/credit-grants', () => {
  let h: Harness;
  let admin: Awaited<ReturnType<typeof createUser>>;
  beforeAll(async () => {
    h = await startHarness();
    admin = await createUser(h.db, 0, 'admin');
  });
  afterAll(() => h?.stop());

  const credits = async (auth: Record<string, string>) =>
    (await h.app.inject({ url: '/v1/credits', headers: auth })).json();
  const post = (auth: Record<string, string>, payload: unknown) =>
    h.app.inject({
      method: 'POST',
      url: '/v1/admin/credit-grants',
      headers: auth,
      payload: payload as object,
    });

  it('lets an admin grant credits: 201 with the transfer, and the balance moves', async () => {
    const user = await createUser(h.db, 10);
    const expiresAt = new Date(Date.now() + 7 * 24 * 3600 * 1000).toISOString();
    const res = await post(admin.auth, {
      userId: user.userId,
      credits: 250,
      reason: 'support refund',
      expiresAt,
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({
      kind: 'grant',
      userId: user.userId,
      amount: 250,
      reason: 'support refund',
      expiresAt,
    });
    expect(await credits(user.auth)).toEqual({ available: 260, reserved: 0, spent: 0 });
    const history = (await h.app.inject({ url: '/v1/credits/transactions', headers: user.auth })).json();
    expect(history.data[0]).toMatchObject({
      id: res.json().id,
      kind: 'grant',
      amount: 250,
      reason: 'support refund',
    });
  });

  it('treats a retry with the same id as the first grant, and the same id with other fields as a conflict', async () => {
    const user = await createUser(h.db);
    const id = randomUUID();
    const first = await post(admin.auth, { id, userId: user.userId, credits: 100, reason: 'promo' });
    const again = await post(admin.auth, { id, userId: user.userId, credits: 100, reason: 'promo' });
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    const other = await post(admin.auth, { id, userId: user.userId, credits: 101, reason: 'promo' });
    expect(other.statusCode).toBe(409);
    expect(other.json()).toMatchObject({ code: 'transfer_conflict' });
    expect(await credits(user.auth)).toEqual({ available: 100, reserved: 0, spent: 0 });
  });

  it('answers 403 forbidden to a non-admin, whatever the body, and moves nothing', async () => {
    const user = await createUser(h.db, 5);
    for (const body of [{ userId: user.userId, credits: 1000, reason: 'free money' }, { credits: 'lots' }]) {
      const res = await post(user.auth, body);
      expect(res.statusCode).toBe(403);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.json()).toMatchObject({ status: 403, code: 'forbidden' });
    }
    expect((await post({}, { userId: user.userId, credits: 1, reason: 'x' })).statusCode).toBe(401);
    expect(await credits(user.auth)).toEqual({ available: 5, reserved: 0, spent: 0 });
  });

  it('answers 400 naming the field for a bad body', async () => {
    const user = await createUser(h.db);
    const ok = { userId: user.userId, credits: 10, reason: 'r' };
    const cases: [Record<string, unknown>, string][] = [
      [{ ...ok, credits: 0 }, 'body.credits'],
      [{ ...ok, credits: -5 }, 'body.credits'],
      [{ ...ok, credits: 1.5 }, 'body.credits'],
      [{ ...ok, credits: 1e9 + 1 }, 'body.credits'],
      [{ ...ok, credits: '10' }, 'body.credits'],
      [{ ...ok, reason: '' }, 'body.reason'],
      [{ ...ok, reason: 'x'.repeat(501) }, 'body.reason'],
      [{ ...ok, userId: 'nobody' }, 'body.userId'],
      [{ ...ok, expiresAt: 'tomorrow' }, 'body.expiresAt'],
      [{ ...ok, expiresAt: new Date(Date.now() - 60_000).toISOString() }, 'body.expiresAt'],
      [{ ...ok, id: 'not-a-uuid' }, 'body.id'],
      [{ ...ok, expiresAt: '2031-02-30T00:00:00Z' }, 'body.expiresAt'],
      [{ ...ok, extra: true }, 'Unrecognized key: "extra"'],
      [{ credits: 10, reason: 'r' }, 'body.userId'],
    ];
    for (const [body, field] of cases) {
      const res = await post(admin.auth, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().code).toBe('invalid_request');
      expect(res.json().detail, JSON.stringify(body)).toContain(
        field.startsWith('body') ? `${field}:` : field,
      );
    }
    expect(await credits(user.auth)).toEqual({ available: 0, reserved: 0, spent: 0 });
  });

  it('answers 404 for an unknown user', async () => {
    const res = await post(admin.auth, { userId: randomUUID(), credits: 10, reason: 'r' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'not_found' });
  });
});

describe('npm run admin -- grant', () => {
  let db: Db;
  beforeAll(() => {
    db = testDb(testConfig());
  });
  afterAll(() => db?.end());

  const balanceOf = (userId: string) => withUserTx(db, userId, (tx) => ledger.balance(tx, userId));

  it('grants to the user with that email and prints the new balance', async () => {
    const user = await createUser(db, 40);
    const expires = new Date(Date.now() + 30 * 24 * 3600 * 1000).toISOString();
    const out = await admin([
      'grant',
      '--email',
      user.email.toUpperCase(),
      '--credits',
      '160',
      '--reason',
      'cli test',
      '--expires',
      expires,
    ]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`granted 160 credits to ${user.email.toUpperCase()}`);
    expect(out.stdout).toContain(`expiring ${expires}`);
    expect(out.stdout).toContain('balance: available 200, reserved 0, spent 0');
    expect(await balanceOf(user.userId)).toMatchObject({ available: 200, granted: 200 });
  });

  it('exits 1 for an unknown user and 64 for a bad amount, a bad date or a bad command, moving nothing', async () => {
    const user = await createUser(db, 40);
    const unknown = await admin(['grant', '--email', `nobody-${randomUUID()}@test.velro`, '--credits', '10']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no user with email');

    const bad: [string[], string][] = [
      [['grant', '--email', user.email, '--credits', '0'], '--credits must be a whole number'],
      [['grant', '--email', user.email, '--credits', '1.5'], '--credits must be a whole number'],
      [['grant', '--email', user.email, '--credits=-3'], '--credits must be a whole number'],
      [['grant', '--email', user.email, '--credits', '2000000000'], '--credits must be a whole number'],
      [
        ['grant', '--email', user.email, '--credits', '10', '--expires', 'next week'],
        '--expires must be an ISO 8601',
      ],
      [
        ['grant', '--email', user.email, '--credits', '10', '--expires', '2031-02-30T00:00:00Z'],
        '--expires must be an ISO 8601',
      ],
      [
        ['grant', '--email', user.email, '--credits', '10', '--expires', '2001-01-01T00:00:00Z'],
        '--expires must be in the future',
      ],
      [['grant', '--credits', '10'], '--email is required'],
      [['grant', '--email', user.email, '--credits', '10', '--bogus'], "Unknown option '--bogus'"],
      [['launch'], 'unknown command "launch"'],
    ];
    const outs = await Promise.all(bad.map(([args]) => admin(args)));
    for (const [i, [args, message]] of bad.entries()) {
      const out = outs[i]!;
      expect(out.code, args.join(' ')).toBe(64);
      expect(out.stderr, args.join(' ')).toContain(message);
    }
    expect(await balanceOf(user.userId)).toMatchObject({ available: 40, granted: 40 });
  });

  it('exits 2 when the database cannot be reached', async () => {
    const out = await admin(['grant', '--email', 'x@test.velro', '--credits', '10'], {
      DATABASE_SYSTEM_URL: 'postgres://nobody:x@127.0.0.1:1/velro',
    });
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('cannot connect to the database');
  });
});
