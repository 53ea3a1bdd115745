import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../api/app';
import { generateApiKey } from '../../lib/auth/api-keys';
import { createPool, type Db } from '../../lib/db/pool';
import { freePort } from '../../lib/net/free-port';
import { createStorage } from '../../lib/wiring/from-config';
import { testConfig, testStack } from '../support/context';

/**
 * The API whose Postgres is gone: a request whose rate limit cannot be counted is refused with
 * 503 unavailable and Retry-After, never let through uncounted and never a 500.
 */
describe('rate limits while Postgres is unreachable', () => {
  let app: App;
  let db: Db;
  let connection: Connection;
  beforeAll(async () => {
    const config = testConfig();
    db = createPool({ connectionString: `postgres://velro_app:x@127.0.0.1:${await freePort()}/velro` });
    connection = await Connection.connect({ address: testStack().temporalAddress });
    app = await buildApp({
      config,
      db,
      temporal: new Client({ connection, namespace: config.TEMPORAL_NAMESPACE }),
      storage: createStorage(config),
      assetSigningKey: Buffer.alloc(32, 7),
    });
  });
  afterAll(async () => {
    await app?.close();
    await connection?.close();
    await db?.end();
  });

  const expectUnavailable = (res: Awaited<ReturnType<App['inject']>>) => {
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ code: 'unavailable', status: 503 });
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  };

  it('answers 503 unavailable with Retry-After to a credential (its failure count) and to an anonymous call', async () => {
    const key = generateApiKey();
    expectUnavailable(await app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${key.key}` } }));
    expectUnavailable(
      await app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email: 'someone@test.velro', password: 'correct horse battery staple' },
      }),
    );
  });

  it('still answers what is never limited: health says ok, readiness says unavailable', async () => {
    expect((await app.inject({ url: '/health' })).statusCode).toBe(200);
    const ready = await app.inject({ url: '/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().status).toBe('unavailable');
  });
});
