// isDatabaseUnreachable on the errors pg really raises: the API answers these 503 `unavailable`
// (api/plugins/errors.ts), as seen in the cluster fault test when Postgres restarted mid-request,
// and keeps 500 for a query that is wrong.
import net from 'node:net';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isDatabaseUnreachable } from '../../lib/db/unreachable';
import { testStack } from '../support/context';

async function errorOf(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('isDatabaseUnreachable', () => {
  it('is true for a backend terminated under its query (a restart, 57P01)', async () => {
    const client = new pg.Client({ connectionString: testStack().systemDatabaseUrl });
    client.on('error', () => undefined);
    await client.connect();
    const err = await errorOf(() => client.query('SELECT pg_terminate_backend(pg_backend_pid())'));
    await client.end().catch(() => undefined);
    expect(isDatabaseUnreachable(err)).toBe(true);
  });

  it('is true when nothing listens (ECONNREFUSED), and for a pool out of time to connect', async () => {
    const port = await closedPort();
    const refused = await errorOf(() =>
      new pg.Client({ host: '127.0.0.1', port, user: 'x', database: 'x' }).connect(),
    );
    expect(isDatabaseUnreachable(refused)).toBe(true);

    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket)); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const pool = new pg.Pool({
      host: '127.0.0.1',
      port: (silent.address() as net.AddressInfo).port,
      user: 'x',
      database: 'x',
      connectionTimeoutMillis: 200,
    });
    const timedOut = await errorOf(() => pool.query('SELECT 1'));
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
    await pool.end();
    expect(isDatabaseUnreachable(timedOut)).toBe(true);
  });

  it('is false for a query that is wrong, and for errors that are not the database', async () => {
    const client = new pg.Client({ connectionString: testStack().systemDatabaseUrl });
    await client.connect();
    const syntax = await errorOf(() => client.query('SELEC 1'));
    const missing = await errorOf(() => client.query('SELECT * FROM no_such_table'));
    await client.end();
    expect(isDatabaseUnreachable(syntax)).toBe(false);
    expect(isDatabaseUnreachable(missing)).toBe(false);
    expect(isDatabaseUnreachable(new TypeError('x is undefined'))).toBe(false);
    expect(isDatabaseUnreachable('ECONNREFUSED')).toBe(false);
  });
});
