import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPool,
  createSystemPool,
  withSystemTx,
  withUserTx,
  type Db,
  type SystemDb,
} from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { createUser, testConfig, testDb, systemDb } from '../support/context';

/**
 * The second wall: the database itself, as the role the API and worker run as (velro_app), shows
 * and changes only the rows of the user named by the transaction setting app.user_id.
 */

/** Every table in `public` with a user_id column, plus users itself (keyed by id). */
async function tenantTables(_db: Db): Promise<{ table: string; column: string }[]> {
  const { rows } = await withSystemTx(systemDb(), (tx) =>
    tx.query<{ table_name: string }>(
      `SELECT c.table_name FROM information_schema.columns c
       JOIN information_schema.tables t USING (table_schema, table_name)
       WHERE c.table_schema = 'public' AND c.column_name = 'user_id' AND t.table_type = 'BASE TABLE'
       ORDER BY c.table_name`,
    ),
  );
  return [{ table: 'users', column: 'id' }, ...rows.map((r) => ({ table: r.table_name, column: 'user_id' }))];
}

/** A with a row in every table we know to be a tenant table; B with a few of its own. */
async function seed(db: Db) {
  const a = await createUser(db, 1000);
  const b = await createUser(db, 300);
  const generationId = randomUUID();
  await withSystemTx(systemDb(), async (tx) => {
    const { rows } = await tx.query<{ id: string }>(
      `INSERT INTO projects (user_id, name) VALUES ($1, 'a-project') RETURNING id`,
      [a.userId],
    );
    await tx.query(
      `INSERT INTO generations (id, user_id, project_id, model, input, credits, provider)
       VALUES ($1, $2, $3, 'imagen4-ultra', '{"prompt":"a secret"}', 45, 'local')`,
      [generationId, a.userId, rows[0]!.id],
    );
    await tx.query(
      `INSERT INTO assets (id, generation_id, user_id, position, storage_key, content_type, bytes, sha256)
       VALUES ($1, $2, $3, 0, 'k', 'image/png', 1, $4)`,
      [randomUUID(), generationId, a.userId, createHash('sha256').update('x').digest('hex')],
    );
    await tx.query(`INSERT INTO projects (user_id, name) VALUES ($1, 'b-project')`, [b.userId]);
  });
  // An expiring grant and a reservation drawn from it: credit_lots, credit_transfers and
  // credit_allocations rows through the ledger (lots exist only for credit that expires).
  await withSystemTx(systemDb(), (tx) =>
    ledger.grant(tx, {
      id: randomUUID(),
      userId: a.userId,
      amount: 50,
      reason: 'expiring',
      expiresAt: new Date(Date.now() + 3600_000),
    }),
  );
  await withUserTx(db, a.userId, (tx) =>
    ledger.reserve(tx, {
      id: randomUUID(),
      amount: 45,
      generationId,
      deadline: new Date(Date.now() + 3600_000),
    }),
  );
  return { a, b, generationId };
}

describe('row-level security at the database wall', () => {
  let db: Db;
  let catalog: SystemDb; // catalogue queries (pg_roles, pg_class), as velro_system
  let seeded: Awaited<ReturnType<typeof seed>>;
  let tables: { table: string; column: string }[];
  beforeAll(async () => {
    const config = testConfig();
    db = testDb(config);
    catalog = createSystemPool({ connectionString: config.DATABASE_SYSTEM_URL!, max: 1 });
    seeded = await seed(db);
    tables = await tenantTables(db);
  });
  afterAll(async () => {
    await db?.end();
    await catalog?.end();
  });

  it('knows the tenant tables, and the seed put rows in each of the core ones', async () => {
    const names = tables.map((t) => t.table);
    for (const t of [
      'users',
      'api_keys',
      'projects',
      'generations',
      'assets',
      'credit_accounts',
      'credit_transfers',
      'credit_lots',
      'credit_allocations',
    ]) {
      expect(names).toContain(t);
      const { rows } = await withSystemTx(systemDb(), (tx) =>
        tx.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${t} WHERE ${t === 'users' ? 'id' : 'user_id'} = $1`,
          [seeded.a.userId],
        ),
      );
      expect(rows[0]!.n, t).toBeGreaterThan(0);
    }
  });

  it('has RLS enabled and forced on every table with a user_id column (and on users)', async () => {
    const { rows } = await withSystemTx(systemDb(), (tx) =>
      tx.query<{
        relname: string;
        relrowsecurity: boolean;
        relforcerowsecurity: boolean;
        policies: string[];
      }>(
        `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                coalesce(array_agg(p.polname) FILTER (WHERE p.polname IS NOT NULL), '{}') AS policies
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_policy p ON p.polrelid = c.oid
         WHERE n.nspname = 'public' AND c.relname = ANY($1) GROUP BY c.oid`,
        [tables.map((t) => t.table)],
      ),
    );
    expect(rows).toHaveLength(tables.length);
    for (const r of rows) {
      expect({ table: r.relname, enabled: r.relrowsecurity, forced: r.relforcerowsecurity }).toEqual({
        table: r.relname,
        enabled: true,
        forced: true,
      });
      expect(r.policies.length, r.relname).toBeGreaterThan(0);
    }
  });

  it('filters every view by the rights of its reader (security_invoker), so RLS of its tables applies', async () => {
    const { rows } = await withSystemTx(systemDb(), (tx) =>
      tx.query<{ relname: string; options: string[] | null }>(
        `SELECT c.relname, c.reloptions AS options FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'v'`,
      ),
    );
    expect(rows.map((r) => r.relname)).toContain('credit_balances');
    for (const r of rows) expect(r.options ?? [], r.relname).toContain('security_invoker=true');
    // And it does: B sees only B's balance, A's is invisible.
    const seen = await withUserTx(db, seeded.b.userId, (tx) =>
      tx.query<{ user_id: string }>('SELECT user_id FROM credit_balances'),
    );
    expect(seen.rows).toEqual([{ user_id: seeded.b.userId }]);
  });

  it('gives the app role privileges only on tables and views that have RLS enabled or are security_invoker', async () => {
    const { rows } = await withSystemTx(systemDb(), (tx) =>
      tx.query<{ relname: string }>(
        `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relrowsecurity
           AND NOT (c.relkind = 'v' AND 'security_invoker=true' = ANY(coalesce(c.reloptions, '{}')))
           AND (has_table_privilege('velro_app', c.oid, 'SELECT') OR has_table_privilege('velro_app', c.oid, 'INSERT')
             OR has_table_privilege('velro_app', c.oid, 'UPDATE') OR has_table_privilege('velro_app', c.oid, 'DELETE'))`,
      ),
    );
    expect(rows.map((r) => r.relname)).toEqual([]);
  });

  it('returns no tenant rows at all without app.user_id: outside a transaction, inside one, and after one', async () => {
    const single = createPool({ connectionString: testConfig().DATABASE_APP_URL!, max: 1 });
    try {
      // The same pooled connection first serves A's transaction: its setting must not linger.
      await withUserTx(single, seeded.a.userId, (tx) => tx.query('SELECT 1 FROM projects'));
      for (const { table } of tables) {
        const plain = await single.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
        expect(plain.rows[0]!.n, `${table}, no transaction`).toBe(0);
        const client = await single.connect();
        try {
          await client.query('BEGIN');
          const inTx = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
          expect(inTx.rows[0]!.n, `${table}, in a transaction`).toBe(0);
          await client.query("SELECT set_config('app.user_id', '', true)");
          const empty = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
          expect(empty.rows[0]!.n, `${table}, empty setting`).toBe(0);
        } finally {
          await client.query('ROLLBACK');
          client.release();
        }
      }
    } finally {
      await single.end();
    }
  });

  it("returns only B's rows, all of them, with B's id", async () => {
    const { b } = seeded;
    for (const { table, column } of tables) {
      const asB = await withUserTx(db, b.userId, (tx) =>
        tx.query<{ owner: string }>(`SELECT ${column}::text AS owner FROM ${table}`),
      );
      const truth = await withSystemTx(systemDb(), (tx) =>
        tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${column} = $1`, [b.userId]),
      );
      expect(new Set(asB.rows.map((r) => r.owner)), table).toEqual(
        new Set(asB.rows.length ? [b.userId] : []),
      );
      expect(asB.rows.length, table).toBe(truth.rows[0]!.n);
    }
  });

  it("refuses B's writes to A's rows and rows for A", async () => {
    const { a, b, generationId } = seeded;
    await expect(
      withUserTx(db, b.userId, (tx) =>
        tx.query(`INSERT INTO projects (user_id, name) VALUES ($1, 'planted')`, [a.userId]),
      ),
    ).rejects.toMatchObject({ code: '42501' }); // new row violates row-level security policy
    await expect(
      withUserTx(db, b.userId, (tx) =>
        tx.query(`INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES ($1, 'x', 'vk_x', $2)`, [
          a.userId,
          randomUUID(),
        ]),
      ),
    ).rejects.toMatchObject({ code: '42501' });
    const touched = await withUserTx(db, b.userId, async (tx) => [
      (await tx.query(`UPDATE projects SET name = 'stolen' WHERE user_id = $1`, [a.userId])).rowCount,
      (await tx.query(`DELETE FROM projects WHERE user_id = $1`, [a.userId])).rowCount,
      (
        await tx.query(`UPDATE generations SET status = 'canceled', completed_at = now() WHERE id = $1`, [
          generationId,
        ])
      ).rowCount,
      (await tx.query(`UPDATE api_keys SET revoked_at = now() WHERE user_id = $1`, [a.userId])).rowCount,
    ]);
    expect(touched).toEqual([0, 0, 0, 0]);
    // Moving one's own project to A is refused too (WITH CHECK).
    await expect(
      withUserTx(db, b.userId, (tx) => tx.query(`UPDATE projects SET user_id = $1`, [a.userId])),
    ).rejects.toMatchObject({ code: '42501' });
  });

  it('keeps ledger counters and cross-user helpers out of the app role', async () => {
    const { a } = seeded;
    const denied = [
      `UPDATE credit_accounts SET credits_posted = credits_posted + 1000000`,
      `INSERT INTO credit_transfers (id, account_id, user_id, kind, amount) SELECT gen_random_uuid(), id, user_id, 'grant', 1 FROM credit_accounts`,
      `SELECT create_user('intruder-${randomUUID()}@test.velro', NULL, 'admin')`,
      `SELECT create_api_key('${a.userId}', 'x', 'vk_x', '\\x00'::bytea)`,
      `SELECT ledger_grant(gen_random_uuid(), '${a.userId}', 1000, 'free')`,
      `UPDATE users SET role = 'admin'`,
    ];
    for (const sql of denied) {
      await expect(
        withUserTx(db, a.userId, (tx) => tx.query(sql)),
        sql,
      ).rejects.toMatchObject({ code: '42501' });
    }
  });

  it("ties a generation's project to its own user with one composite foreign key", async () => {
    const { rows } = await catalog.query<{ conname: string; def: string }>(
      `SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
       WHERE conrelid = 'generations'::regclass AND confrelid = 'projects'::regclass`,
    );
    expect(rows).toEqual([
      {
        conname: 'generations_project_owner_fkey',
        def: 'FOREIGN KEY (project_id, user_id) REFERENCES projects(id, user_id) ON DELETE SET NULL (project_id)',
      },
    ]);
  });

  it('gives velro_app no way around RLS: not superuser, no BYPASSRLS, owns nothing, not a member of velro_system', async () => {
    const role = await catalog.query(
      `SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin, rolinherit
       FROM pg_roles WHERE rolname = 'velro_app'`,
    );
    expect(role.rows[0]).toMatchObject({
      rolsuper: false,
      rolbypassrls: false,
      rolcreaterole: false,
      rolcreatedb: false,
      // Its own login since db/migrations/008 (it used to be reached by SET ROLE from the owner).
      rolcanlogin: true,
    });
    const system = await catalog.query(
      `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'velro_system'`,
    );
    expect(system.rows[0]).toEqual({ rolsuper: false, rolbypassrls: false });
    const owned = await catalog.query(
      `SELECT 'table ' || relname AS what FROM pg_class WHERE relowner = 'velro_app'::regrole
       UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proowner = 'velro_app'::regrole
       UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = 'velro_app'::regrole`,
    );
    expect(owned.rows).toEqual([]);
    const membership = await catalog.query(
      `SELECT pg_has_role('velro_app', 'velro_system', 'MEMBER') AS member,
              has_schema_privilege('velro_app', 'public', 'CREATE') AS can_create`,
    );
    expect(membership.rows[0]).toEqual({ member: false, can_create: false });
  });
});
