import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import type { ReconcileReport } from '../../activities/reconciliation';
import { withUserTx } from '../../lib/db/pool';
import { linkGenerationInput } from '../../lib/uploads/store';
import { createProviders, createStorage } from '../../lib/wiring/from-config';
import { activityDeps } from '../../worker/create-worker';
import { createUser, startApi, systemDb, type ApiHarness } from '../support/context';
import { pngImage } from '../support/images';

// The reconciler removes uploads no generation uses once deleted or past UPLOAD_RETENTION_HOURS
// (1 hour here, so that the hours are seen to reach the activity from the configuration).

describe('upload retention (the reconciler)', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi({ UPLOAD_RETENTION_HOURS: '1' });
  });
  afterAll(() => api?.stop());

  /** One reconciler run, with its deps built from the configuration as the worker builds them. */
  function reconcile(): Promise<ReconcileReport> {
    const storage = createStorage(api.config);
    const deps = activityDeps(api.config, {
      db: api.db,
      systemDb: systemDb(),
      storage,
      providers: createProviders(api.config, storage),
      workflowState: async () => 'running',
      stoppedGenerations: async () => [],
    });
    expect(deps.uploadRetentionHours).toBe(1);
    return new MockActivityEnvironment().run(
      createActivities(deps).reconcileLedger,
    ) as Promise<ReconcileReport>;
  }

  async function upload(auth: Record<string, string>, width: number) {
    const res = await api.app.inject({
      method: 'POST',
      url: '/v1/uploads',
      headers: { ...auth, 'content-type': 'image/png' },
      payload: pngImage(width, 4),
    });
    expect(res.statusCode, res.body).toBe(201);
    const { rows } = await systemDb().query<{ storage_key: string }>(
      'SELECT storage_key FROM uploads WHERE id = $1',
      [res.json().id],
    );
    return { id: res.json().id as string, key: rows[0]!.storage_key };
  }

  const age = (id: string, minutes: number) =>
    systemDb().query(`UPDATE uploads SET created_at = now() - make_interval(mins => $2) WHERE id = $1`, [
      id,
      minutes,
    ]);
  const purgedAt = async (id: string) =>
    (await systemDb().query<{ purged_at: Date | null }>('SELECT purged_at FROM uploads WHERE id = $1', [id]))
      .rows[0]!.purged_at;
  const bytesThere = async (key: string) => (await api.app.storage.get(key)) !== undefined;

  it('purges old unused and deleted uploads (row and bytes), keeps fresh ones and used ones however old', async () => {
    const user = await createUser(api.db);
    const old = await upload(user.auth, 1);
    const deleted = await upload(user.auth, 2);
    const used = await upload(user.auth, 3);
    const fresh = await upload(user.auth, 4);
    const youngish = await upload(user.auth, 5);
    await age(old.id, 61);
    await age(used.id, 24 * 60);
    await age(youngish.id, 59);
    const del = await api.app.inject({
      method: 'DELETE',
      url: `/v1/uploads/${deleted.id}`,
      headers: user.auth,
    });
    expect(del.statusCode).toBe(204);
    // A generation uses `used`: it is kept from then on.
    const generationId = randomUUID();
    await withUserTx(api.db, user.userId, async (tx) => {
      await tx.query(
        `INSERT INTO generations (id, user_id, model, input, credits, provider, status, stage)
         VALUES ($1, $2, 'kling-v2.1-master', '{"prompt":"x"}', 1, 'local', 'running', 'waiting for provider')`,
        [generationId, user.userId],
      );
      expect(await linkGenerationInput(tx, { generationId, field: 'image_url', uploadId: used.id })).toBe(
        true,
      );
    });
    for (const u of [old, deleted, used, fresh, youngish]) expect(await bytesThere(u.key)).toBe(true);

    const report = await reconcile();
    // Other test files' deleted uploads may go in the same run: at least these two.
    expect(report.purgedUploads).toBeGreaterThanOrEqual(2);

    for (const gone of [old, deleted]) {
      expect(await purgedAt(gone.id)).toBeInstanceOf(Date);
      expect(await bytesThere(gone.key)).toBe(false);
    }
    for (const kept of [used, fresh, youngish]) {
      expect(await purgedAt(kept.id)).toBeNull();
      expect(await bytesThere(kept.key)).toBe(true);
    }
    // Gone from the API too; the kept ones are still served.
    const status = (id: string) =>
      api.app.inject({ url: `/v1/uploads/${id}`, headers: user.auth }).then((r) => r.statusCode);
    expect(await status(old.id)).toBe(404);
    expect(await status(fresh.id)).toBe(200);
    expect(await status(used.id)).toBe(200);
    const usedView = (await api.app.inject({ url: `/v1/uploads/${used.id}`, headers: user.auth })).json();
    expect(usedView.expiresAt).toBeNull();

    // A purged upload can no longer be used by a generation.
    const other = randomUUID();
    await withUserTx(api.db, user.userId, async (tx) => {
      await tx.query(
        `INSERT INTO generations (id, user_id, model, input, credits, provider, status, stage)
         VALUES ($1, $2, 'kling-v2.1-master', '{"prompt":"x"}', 1, 'local', 'running', 'waiting for provider')`,
        [other, user.userId],
      );
      expect(
        await linkGenerationInput(tx, { generationId: other, field: 'image_url', uploadId: old.id }),
      ).toBe(false);
    });

    // The next run finds nothing more of these: a purge happens once.
    await age(used.id, 48 * 60);
    await reconcile();
    expect(await purgedAt(used.id)).toBeNull();
    expect(await bytesThere(used.key)).toBe(true);
  });
});
