import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../lib/auth/api-keys';
import { withSystemTx } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { createUser, systemDb, testStack } from '../support/context';

/**
 * The second wall, attacked from the inside: SQL that reached a connection of the velro_app login
 * (the API's and worker's only login) tries to step around row-level security. Every attempt fails.
 */

const deadline = () => new Date(Date.now() + 3600_000);

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Runs `sql` in a transaction of `client` scoped to `userId` (or not scoped at all), then rolls back. */
async function asUser<T extends pg.QueryResultRow>(
  client: pg.Client,
  userId: string | null,
  sql: string,
  params: unknown[] = [],
): Promise<pg.QueryResult<T>> {
  await client.query('BEGIN');
  try {
    if (userId) await client.query(`SELECT set_config('app.user_id', $1, true)`, [userId]);
    return await client.query<T>(sql, params);
  } finally {
    await client.query('ROLLBACK');
  }
}

const refused = { code: '42501' };

describe('the database wall: the velro_app login cannot step around row-level security', () => {
  let app: pg.Client;
  let system: pg.Client;
  let ownerName: string;
  let a: Awaited<ReturnType<typeof createUser>>;
  let b: Awaited<ReturnType<typeof createUser>>;
  let bGeneration: string;
  let bReservation: string;

  beforeAll(async () => {
    const stack = testStack();
    ownerName = decodeURIComponent(new URL(stack.databaseUrl).username);
    app = await connect(stack.appDatabaseUrl);
    system = await connect(stack.systemDatabaseUrl);
    a = await createUser(undefined as never, 100);
    b = await createUser(undefined as never, 300);
    bGeneration = randomUUID();
    await withSystemTx(systemDb(), (tx) =>
      tx.query(
        `INSERT INTO generations (id, user_id, model, input, credits, provider)
         VALUES ($1, $2, 'imagen4-ultra', '{"prompt":"b secret"}', 10, 'local')`,
        [bGeneration, b.userId],
      ),
    );
    // B's own reservation, made the way the worker makes it (one statement on the pool, as B).
    const appPool = new pg.Pool({ connectionString: stack.appDatabaseUrl, max: 1 });
    try {
      bReservation = randomUUID();
      await ledger.reserve(appPool, {
        userId: b.userId,
        id: bReservation,
        amount: 10,
        generationId: bGeneration,
        deadline: deadline(),
      });
    } finally {
      await appPool.end();
    }
  });
  afterAll(async () => {
    await app?.end();
    await system?.end();
  });

  const bBalance = async () =>
    (
      await withSystemTx(systemDb(), (tx) =>
        tx.query<{ available: number; debits_pending: number }>(
          'SELECT available, debits_pending FROM credit_balances WHERE user_id = $1',
          [b.userId],
        ),
      )
    ).rows[0];

  it('logs in as velro_app itself (no SET ROLE from another login)', async () => {
    const { rows } = await app.query('SELECT current_user AS current, session_user AS session');
    expect(rows[0]).toEqual({ current: 'velro_app', session: 'velro_app' });
  });

  it('cannot SET ROLE velro_system, nor SET ROLE to the owner, nor SET SESSION AUTHORIZATION', async () => {
    await expect(app.query('SET ROLE velro_system')).rejects.toMatchObject(refused);
    await expect(app.query(`SET ROLE ${pg.escapeIdentifier(ownerName)}`)).rejects.toMatchObject(refused);
    await expect(app.query('SET SESSION AUTHORIZATION velro_system')).rejects.toMatchObject(refused);
    await expect(
      app.query(`SET SESSION AUTHORIZATION ${pg.escapeIdentifier(ownerName)}`),
    ).rejects.toMatchObject(refused);
  });

  it('SET ROLE NONE keeps it velro_app, with no rights gained', async () => {
    await app.query('SET ROLE NONE');
    const { rows } = await app.query('SELECT current_user AS current');
    expect(rows[0]).toEqual({ current: 'velro_app' });
    await expect(app.query('SELECT password_hash FROM users')).rejects.toMatchObject(refused);
    await expect(
      app.query(`SELECT ledger_grant(gen_random_uuid(), $1, 1000, 'free')`, [a.userId]),
    ).rejects.toMatchObject(refused);
    expect((await app.query('SELECT count(*)::int AS n FROM generations')).rows[0]).toEqual({ n: 0 });
    await app.query('RESET ROLE');
  });

  it("cannot read another user's rows: scoped to A, B's generations and credit rows are invisible", async () => {
    for (const table of ['generations', 'credit_accounts', 'credit_transfers', 'credit_balances', 'users']) {
      const column = table === 'users' ? 'id' : 'user_id';
      const { rows } = await asUser<{ n: number }>(
        app,
        a.userId,
        `SELECT count(*)::int AS n FROM ${table} WHERE ${column} = $1`,
        [b.userId],
      );
      expect(rows[0]!.n, table).toBe(0);
    }
    const byId = await asUser(app, a.userId, 'SELECT id FROM generations WHERE id = $1', [bGeneration]);
    expect(byId.rows).toEqual([]);
  });

  it('cannot read any tenant row with app.user_id unset', async () => {
    for (const table of [
      'generations',
      'credit_accounts',
      'credit_transfers',
      'credit_balances',
      'users',
      'api_keys',
    ]) {
      const { rows } = await asUser<{ n: number }>(app, null, `SELECT count(*)::int AS n FROM ${table}`);
      expect(rows[0]!.n, table).toBe(0);
    }
  });

  it('cannot reserve for another user via p_user, with app.user_id unset or set to someone else', async () => {
    const before = await bBalance();
    for (const scope of [null, a.userId]) {
      await expect(
        asUser(app, scope, 'SELECT * FROM ledger_reserve($1, 50, NULL, $2, $3)', [
          randomUUID(),
          deadline(),
          b.userId,
        ]),
      ).rejects.toMatchObject(refused);
      await expect(
        asUser(app, scope, 'SELECT * FROM ledger_reserve_batch($1, $2, $3, $4, $5)', [
          b.userId,
          [randomUUID()],
          [50],
          [null],
          [deadline()],
        ]),
      ).rejects.toMatchObject(refused);
    }
    // Outside a transaction too: one autocommitted statement naming B.
    await expect(
      app.query('SELECT * FROM ledger_reserve($1, 50, NULL, $2, $3)', [randomUUID(), deadline(), b.userId]),
    ).rejects.toMatchObject(refused);
    expect(await bBalance()).toEqual(before);
  });

  it("cannot commit or release another user's reservation via p_user, with app.user_id unset or set to someone else", async () => {
    const before = await bBalance();
    for (const scope of [null, a.userId]) {
      await expect(
        asUser(app, scope, 'SELECT * FROM ledger_commit($1, $2, $3)', [randomUUID(), bReservation, b.userId]),
      ).rejects.toMatchObject(refused);
      await expect(
        asUser(app, scope, 'SELECT * FROM ledger_release($1, $2, NULL, $3)', [
          randomUUID(),
          bReservation,
          b.userId,
        ]),
      ).rejects.toMatchObject(refused);
    }
    // Scoped to A without naming B: B's reservation is not A's to resolve.
    await expect(
      asUser(app, a.userId, 'SELECT * FROM ledger_commit($1, $2)', [randomUUID(), bReservation]),
    ).rejects.toMatchObject({ code: 'VL404' });
    expect(await bBalance()).toEqual(before);
    const resolutions = await withSystemTx(systemDb(), (tx) =>
      tx.query('SELECT id FROM credit_transfers WHERE pending_id = $1', [bReservation]),
    );
    expect(resolutions.rows).toEqual([]);
  });

  it('cannot call ledger_grant, create_user with role admin, create_api_key for others, or any other system function', async () => {
    const denied = [
      `SELECT ledger_grant(gen_random_uuid(), '${b.userId}', 1000, 'free')`,
      `SELECT create_user('intruder-${randomUUID()}@test.velro', NULL, 'admin')`,
      `SELECT create_api_key('${b.userId}', 'x', 'vk_x', '\\x00'::bytea)`,
      `SELECT * FROM find_user_by_email('${b.email}')`,
      `SELECT * FROM find_generations_by_provider_request('local', 'x')`,
      `SELECT ledger_expire_grants()`,
      `SELECT ledger_fold_commits()`,
      `SELECT * FROM ledger_pending_reserve('${bReservation}', '${b.userId}')`,
      `SELECT * FROM ledger_resolution_replay(gen_random_uuid(), '${bReservation}', 'commit')`,
      `SELECT ledger_expire_lapsed_lots(NULL::credit_accounts)`,
      `SELECT ledger_acting_user('${b.userId}')`,
      // A plain user is no admin: the admin grant refuses.
      `SELECT * FROM admin_grant_credits(gen_random_uuid(), '${a.userId}', 1000, 'free')`,
      // Provider capacity: only the worker's system login grants, releases or reads the queue; only
      // an admin sets an account's limits.
      `SELECT * FROM capacity_grant('default/q', 'local', 1000, 1000, 1000, 60)`,
      `SELECT * FROM capacity_requests`,
      `UPDATE capacity_requests SET released_at = now()`,
      `INSERT INTO capacity_requests (generation_id, scope, provider, account_id, account_kind, media_kind, priority) VALUES ('${bGeneration}', 'default/q', 'local', '${b.userId}', 'user', 'image', 10)`,
      `SELECT * FROM capacity_turns`,
      `UPDATE capacity_turns SET pass = 0`,
      `SELECT * FROM account_limits`,
      `INSERT INTO account_limits (account_id, account_kind, max_image) VALUES ('${a.userId}', 'user', 10000)`,
      `SELECT * FROM admin_set_account_limits('${a.userId}', 10000, 10000, 10, '{}')`,
      `SELECT * FROM admin_account_limits('${b.userId}')`,
      `SELECT * FROM velro_settings`,
      `UPDATE velro_settings SET signup_credits = 1000000`,
      `UPDATE users SET role = 'admin'`,
      `INSERT INTO credit_transfers (id, account_id, user_id, kind, amount) SELECT gen_random_uuid(), id, user_id, 'grant', 1 FROM credit_accounts`,
    ];
    for (const scope of [null, a.userId]) {
      for (const sql of denied) {
        await expect(
          asUser(app, scope, sql),
          `${sql} (app.user_id ${scope ?? 'unset'})`,
        ).rejects.toMatchObject(refused);
      }
    }
  });

  it('cannot read any password_hash (column privilege), not even its own user’s', async () => {
    const stored = `scrypt$32768$8$1$${'s'.repeat(22)}$${'h'.repeat(43)}`;
    await withSystemTx(systemDb(), (tx) =>
      tx.query('UPDATE users SET password_hash = $2 WHERE id = $1', [a.userId, stored]),
    );
    for (const sql of [
      'SELECT password_hash FROM users',
      'SELECT * FROM users',
      'SELECT u FROM users u',
      `SELECT id FROM users WHERE password_hash IS NOT NULL`,
    ]) {
      await expect(asUser(app, a.userId, sql), sql).rejects.toMatchObject(refused);
    }
    const own = await asUser(app, a.userId, 'SELECT id, email, role FROM users');
    expect(own.rows).toEqual([{ id: a.userId, email: a.email, role: 'user' }]);
    // The login functions hand out the parameters and salt, never the hash.
    const params = await app.query('SELECT params, key_bytes FROM auth_password_params($1)', [a.email]);
    expect(params.rows).toEqual([{ params: `scrypt$32768$8$1$${'s'.repeat(22)}`, key_bytes: 32 }]);
    expect(JSON.stringify(params.rows)).not.toContain('h'.repeat(43));
  });

  it("cannot make an upload that is never purged, mark one used, or use another user's upload", async () => {
    const row = (id: string, extra = '', values = '') =>
      `INSERT INTO uploads (id, user_id, storage_key, content_type, bytes, width, height, sha256${extra})
       VALUES ('${id}', '${a.userId}', 'uploads/${id}.png', 'image/png', 10, 1, 1, '${'a'.repeat(64)}'${values})`;
    for (const [extra, values] of [
      [', used_at', ', now()'],
      [', purged_at', ', now()'],
      [', created_at', ", now() + interval '10 years'"],
    ]) {
      await expect(asUser(app, a.userId, row(randomUUID(), extra, values)), extra).rejects.toMatchObject(
        refused,
      );
    }
    // A's own upload, made as the API makes it: only A may use it, and only for A's generation.
    const upload = randomUUID();
    await app.query('BEGIN');
    await app.query(`SELECT set_config('app.user_id', $1, true)`, [a.userId]);
    await app.query(
      `INSERT INTO uploads (id, user_id, storage_key, content_type, bytes, width, height, sha256)
       VALUES ($1, $2, $3, 'image/png', 10, 1, 1, $4)`,
      [upload, a.userId, `uploads/${upload}.png`, 'a'.repeat(64)],
    );
    await app.query('COMMIT');
    await expect(
      asUser(app, a.userId, `UPDATE uploads SET used_at = now() WHERE id = $1`, [upload]),
    ).rejects.toMatchObject(refused);
    // B cannot link A's upload to B's generation, nor A to B's generation.
    for (const scope of [b.userId, a.userId]) {
      const linked = await asUser<{ ok: boolean }>(
        app,
        scope,
        'SELECT link_generation_input($1, $2, $3) AS ok',
        [bGeneration, 'image_url', upload],
      );
      expect(linked.rows[0]!.ok, scope).toBe(false);
    }
    const b_sees = await asUser(app, b.userId, 'SELECT id FROM uploads WHERE id = $1', [upload]);
    expect(b_sees.rows).toEqual([]);
    await expect(
      asUser(
        app,
        b.userId,
        'INSERT INTO generation_inputs (generation_id, field, upload_id, user_id) VALUES ($1, $2, $3, $4)',
        [bGeneration, 'image_url', upload, b.userId],
      ),
    ).rejects.toMatchObject(refused);
  });

  it('serves a signed asset only by its id and only while its generation has succeeded', async () => {
    const sha = createHash('sha256').update('x').digest('hex');
    const asset = async (status: string) => {
      const generationId = randomUUID();
      const assetId = randomUUID();
      await withSystemTx(systemDb(), async (tx) => {
        await tx.query(
          `INSERT INTO generations (id, user_id, model, input, credits, provider, status, completed_at)
           VALUES ($1, $2, 'imagen4-ultra', '{}', 10, 'local', $3, CASE WHEN $3 = 'running' THEN NULL ELSE now() END)`,
          [generationId, b.userId, status],
        );
        await tx.query(
          `INSERT INTO assets (id, generation_id, user_id, position, storage_key, content_type, bytes, sha256)
           VALUES ($1, $2, $3, 0, 'k', 'image/png', 1, $4)`,
          [assetId, generationId, b.userId, sha],
        );
      });
      return (await app.query('SELECT * FROM signed_asset($1)', [assetId])).rows;
    };
    expect(await asset('succeeded')).toEqual([{ storage_key: 'k', content_type: 'image/png', sha256: sha }]);
    for (const status of ['failed', 'canceled', 'running']) expect(await asset(status), status).toEqual([]);
  });

  it('has no way around RLS in pg_catalog: not superuser, no BYPASSRLS, owns nothing, member of no role', async () => {
    const role = await app.query(
      `SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolcanlogin
       FROM pg_roles WHERE rolname = 'velro_app'`,
    );
    expect(role.rows).toEqual([
      {
        rolsuper: false,
        rolbypassrls: false,
        rolcreaterole: false,
        rolcreatedb: false,
        rolreplication: false,
        rolcanlogin: true,
      },
    ]);
    const owned = await app.query(
      `SELECT 'table ' || relname AS what FROM pg_class WHERE relowner = 'velro_app'::regrole
       UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proowner = 'velro_app'::regrole
       UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typowner = 'velro_app'::regrole
       UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = 'velro_app'::regrole
       UNION ALL SELECT 'database ' || datname FROM pg_database WHERE datdba = 'velro_app'::regrole`,
    );
    expect(owned.rows).toEqual([]);
    const memberships = await app.query(
      `SELECT roleid::regrole::text AS role FROM pg_auth_members WHERE member = 'velro_app'::regrole`,
    );
    expect(memberships.rows).toEqual([]);
    const can = await app.query(
      `SELECT pg_has_role('velro_app', 'velro_system', 'MEMBER') AS system,
              pg_has_role('velro_app', $1, 'MEMBER') AS owner,
              has_schema_privilege('velro_app', 'public', 'CREATE') AS create`,
      [ownerName],
    );
    expect(can.rows[0]).toEqual({ system: false, owner: false, create: false });
  });

  it('lets velro_app execute only the audited functions (db/migrations/008, 009): each acts for app.user_id or by capability', async () => {
    const { rows } = await app.query<{ fn: string }>(
      `SELECT p.oid::regprocedure::text AS fn FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'public' AND p.prokind = 'f' AND has_function_privilege('velro_app', p.oid, 'EXECUTE')
         AND p.prorettype <> 'trigger'::regtype
       ORDER BY 1`,
    );
    expect(rows.map((r) => r.fn)).toEqual([
      'accept_team_invitation(bytea)',
      'admin_account_limits(uuid)',
      'admin_grant_credits(uuid,uuid,bigint,text,timestamp with time zone)',
      'admin_grant_team_credits(uuid,uuid,bigint,text,timestamp with time zone)',
      'admin_set_account_limits(uuid,integer,integer,integer,text[])',
      'auth_api_key(bytea)',
      'auth_password_check(text,text)',
      'auth_password_params(text)',
      'auth_password_rehash(text,text)',
      'auth_user(uuid)',
      'capacity_default_priority()',
      'capacity_queue_positions(uuid[])',
      'capacity_stats(text)',
      'create_team(text)',
      'create_team_api_key(uuid,text,text,bytea)',
      'current_app_user()',
      'delete_team(uuid)',
      'generation_statuses(uuid[])',
      'ledger_check_amount(bigint)',
      'ledger_commit(uuid,uuid,uuid)',
      'ledger_conflict(uuid)',
      'ledger_derived_id(text)',
      'ledger_release(uuid,uuid,text,uuid)',
      'ledger_reserve(uuid,bigint,uuid,timestamp with time zone,uuid)',
      'ledger_reserve_batch(uuid,uuid[],bigint[],uuid[],timestamp with time zone[])',
      'ledger_reserve_team(uuid,bigint,uuid,timestamp with time zone,uuid,uuid)',
      'link_generation_input(uuid,text,uuid)',
      'list_generations(uuid,uuid,uuid,text,text,timestamp with time zone,uuid,integer)',
      'provider_request_key(text)',
      'provider_webhook_generations(text,text)',
      'rate_limit_hit(text,integer)',
      'rate_limit_peek(text)',
      'read_generation(uuid,uuid)',
      'record_provider_webhook(text,text)',
      'register_user(text,text)',
      'signed_asset(uuid)',
      'signed_upload(uuid)',
      'team_expired_credit(uuid)',
      'touch_api_keys(bytea[],timestamp with time zone[])',
      'transfer_team_ownership(uuid,uuid)',
      'velro_require_team_role(uuid,text)',
      'velro_role_rank(text)',
      'velro_shares_team(uuid)',
      'velro_team_role(uuid)',
    ]);
  });

  it("touch_api_keys needs the key's hash, only moves last_used_at forward, never past now, and creates nothing", async () => {
    const bHash = hashApiKey(b.apiKey);
    const lastUsed = async () =>
      (
        await system.query<{ last_used_at: Date | null }>(
          'SELECT last_used_at FROM api_keys WHERE key_hash = $1',
          [bHash],
        )
      ).rows[0]!.last_used_at;
    const keys = async () =>
      (await system.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys')).rows[0]!.n;
    const before = await keys();
    const touch = async (hashes: Buffer[], times: Date[]) =>
      (await app.query<{ n: number }>('SELECT touch_api_keys($1, $2) AS n', [hashes, times])).rows[0]!.n;

    const at = new Date(Date.now() - 60_000);
    expect(await touch([bHash], [at])).toBe(1);
    expect(await lastUsed()).toEqual(at);
    expect(await touch([bHash], [new Date(at.getTime() - 3600_000)])).toBe(0);
    expect(await lastUsed()).toEqual(at);
    await touch([bHash], [new Date(Date.now() + 365 * 86400_000)]);
    expect((await lastUsed())!.getTime()).toBeLessThanOrEqual(Date.now());
    // By id (what a list shows) or by a made-up hash: nothing is touched, nothing created.
    const unknown = createHash('sha256').update(randomUUID()).digest();
    expect(await touch([unknown, Buffer.from(randomUUID())], [new Date(), new Date()])).toBe(0);
    expect(await keys()).toBe(before);
    // Nor can velro_app move it back by hand (row-level security: another user's key).
    const { rowCount } = await asUser(
      app,
      a.userId,
      'UPDATE api_keys SET last_used_at = NULL WHERE key_hash = $1',
      [bHash],
    );
    expect(rowCount).toBe(0);
  });

  it('read_generation and list_generations read as their p_user under row-level security, and the setting ends with the call', async () => {
    const read = (user: string) => app.query('SELECT id FROM read_generation($1, $2)', [user, bGeneration]);
    expect((await read(a.userId)).rows).toEqual([]);
    expect((await read(b.userId)).rows).toEqual([{ id: bGeneration }]);
    const list = (user: string, team: string | null = null) =>
      app.query('SELECT id FROM list_generations($1, $2, NULL, NULL, NULL, NULL, NULL, 100)', [user, team]);
    expect((await list(a.userId)).rows).toEqual([]);
    expect((await list(b.userId)).rows).toContainEqual({ id: bGeneration });
    await expect(list(a.userId, randomUUID())).rejects.toMatchObject({ code: expect.stringMatching(/^VL/) });
    // Nothing of B's calls is left on the connection: the next statement is scoped to no one.
    const after = await app.query(
      `SELECT current_setting('app.user_id', true) AS setting, (SELECT count(*)::int FROM generations) AS visible`,
    );
    expect(after.rows[0]).toMatchObject({ visible: 0 });
    expect(after.rows[0].setting ?? '').toBe('');
    // Inside a transaction scoped to A, B's read leaves A's scope as it was.
    await app.query('BEGIN');
    try {
      await app.query(`SELECT set_config('app.user_id', $1, true)`, [a.userId]);
      expect((await read(b.userId)).rows).toHaveLength(1);
      const scope = await app.query(
        `SELECT current_setting('app.user_id') AS s, count(*)::int AS n FROM generations WHERE id = $1`,
        [bGeneration],
      );
      expect(scope.rows[0]).toEqual({ s: a.userId, n: 0 });
    } finally {
      await app.query('ROLLBACK');
    }
  });

  it("cannot set a generation's credit state: the ledger keeps it", async () => {
    const state = async (id: string) =>
      (await system.query('SELECT credit_state FROM generations WHERE id = $1', [id])).rows[0]?.credit_state;
    expect(await state(bGeneration)).toBe('reserved');
    await expect(
      asUser(app, b.userId, `UPDATE generations SET credit_state = 'refunded' WHERE id = $1`, [bGeneration]),
    ).rejects.toMatchObject(refused);
    const forged = randomUUID();
    await app.query('BEGIN');
    try {
      await app.query(`SELECT set_config('app.user_id', $1, true)`, [a.userId]);
      await app.query(
        `INSERT INTO generations (id, user_id, model, input, credits, provider, credit_state)
         VALUES ($1, $2, 'imagen4-ultra', '{}', 10, 'local', 'charged')`,
        [forged, a.userId],
      );
      const { rows } = await app.query('SELECT credit_state FROM generations WHERE id = $1', [forged]);
      expect(rows).toEqual([{ credit_state: 'none' }]);
    } finally {
      await app.query('ROLLBACK');
    }
    await expect(app.query('SELECT generation_credit_state($1)', [bGeneration])).rejects.toMatchObject(
      refused,
    );
  });

  it('gives the velro_system login no way to the owner: cannot SET ROLE to it, not superuser, member of no role', async () => {
    await expect(system.query(`SET ROLE ${pg.escapeIdentifier(ownerName)}`)).rejects.toMatchObject(refused);
    await expect(
      system.query(`SET SESSION AUTHORIZATION ${pg.escapeIdentifier(ownerName)}`),
    ).rejects.toMatchObject(refused);
    const { rows } = await system.query(
      `SELECT current_user AS who, r.rolsuper, r.rolbypassrls, r.rolcreaterole,
              (SELECT count(*)::int FROM pg_auth_members m WHERE m.member = r.oid) AS memberships,
              has_schema_privilege('public', 'CREATE') AS create
       FROM pg_roles r WHERE r.rolname = current_user`,
    );
    expect(rows[0]).toEqual({
      who: 'velro_system',
      rolsuper: false,
      rolbypassrls: false,
      rolcreaterole: false,
      memberships: 0,
      create: false,
    });
  });
});
