import path from 'node:path';
import pg from 'pg';
import { PROJECT_ROOT } from '../paths';

/** The committed dump: what the migrations leave behind, read from a migrated database. */
export const SCHEMA_FILE = path.join(PROJECT_ROOT, 'db', 'schema.sql');

const HEADER = `-- GENERATED FILE, do not edit: \`npm run db:schema\` (scripts/db-schema.ts) writes it.
--
-- The live definition of every function (pg_get_functiondef), view and row-level security policy of
-- the schema \`public\` after all of db/migrations/ has run, each kind sorted by name. A later
-- migration can drop and recreate what an earlier one defined (007 replaces most of 002's ledger
-- functions): this file is the current text, the migrations are the history.
-- The script migrates a scratch embedded Postgres (or reads DATABASE_URL); the test
-- test/integration/schema-file.test.ts regenerates it from the test stack's database and fails
-- when this file differs.
`;

const FUNCTIONS = `
  SELECT p.proname AS name, pg_get_function_identity_arguments(p.oid) AS args,
         pg_get_functiondef(p.oid) AS def
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  ORDER BY p.proname COLLATE "C", pg_get_function_identity_arguments(p.oid) COLLATE "C"`;

const VIEWS = `
  SELECT c.relname AS name, c.relkind AS kind, array_to_string(c.reloptions, ', ') AS options,
         pg_get_viewdef(c.oid, true) AS def
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm')
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
  ORDER BY c.relname COLLATE "C"`;

const POLICIES = `
  SELECT policyname AS name, tablename AS "table", permissive, roles::text[] AS roles, cmd, qual,
         with_check
  FROM pg_policies
  WHERE schemaname = 'public'
  ORDER BY policyname COLLATE "C", tablename COLLATE "C"`;

interface PolicyRow {
  name: string;
  table: string;
  permissive: string;
  roles: string[];
  cmd: string;
  qual: string | null;
  with_check: string | null;
}

const ident = (name: string) => pg.escapeIdentifier(name).replace(/^"([a-z_][a-z0-9_]*)"$/, '$1');

/** The text of db/schema.sql for the database at `databaseUrl` (already migrated). */
export async function dumpSchema(databaseUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const functions = await client.query<{ name: string; args: string; def: string }>(FUNCTIONS);
    const views = await client.query<{ name: string; kind: string; options: string; def: string }>(VIEWS);
    const policies = await client.query<PolicyRow>(POLICIES);
    const out: string[] = [HEADER];

    out.push(`-- Functions (${functions.rows.length})\n`);
    for (const f of functions.rows) out.push(`${f.def.trimEnd()};\n`);

    out.push(`-- Views (${views.rows.length})\n`);
    for (const v of views.rows) {
      const kind = v.kind === 'm' ? 'MATERIALIZED VIEW' : 'VIEW';
      const options = v.options ? ` WITH (${v.options})` : '';
      out.push(`CREATE ${kind} ${ident(v.name)}${options} AS\n${v.def.trimEnd().replace(/;$/, '')};\n`);
    }

    out.push(`-- Policies (${policies.rows.length})\n`);
    for (const p of policies.rows) {
      const parts = [
        `CREATE POLICY ${ident(p.name)} ON ${ident(p.table)}`,
        `  AS ${p.permissive} FOR ${p.cmd} TO ${p.roles.map(ident).join(', ')}`,
      ];
      if (p.qual !== null) parts.push(`  USING (${p.qual})`);
      if (p.with_check !== null) parts.push(`  WITH CHECK (${p.with_check})`);
      out.push(`${parts.join('\n')};\n`);
    }
    return out.join('\n');
  } finally {
    await client.end();
  }
}
