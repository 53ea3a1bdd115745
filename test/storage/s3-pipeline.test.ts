import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { withUserTx } from '../../lib/db/pool';
import { createUser, startHarness, waitFor, type Harness } from '../support/context';
import { MOTO_CREDENTIALS, startMoto, type MotoServer } from './moto';

const BUCKET = 'velro-pipeline-outputs';

describe('a generation with STORAGE_DRIVER=s3', () => {
  let moto: MotoServer;
  let h: Harness;

  beforeAll(async () => {
    // The worker's and the API's drivers take these from the AWS default chain.
    for (const [name, value] of Object.entries(MOTO_CREDENTIALS)) vi.stubEnv(name, value);
    moto = await startMoto();
    await moto.createBucket(BUCKET);
    h = await startHarness({
      LOCAL_PROVIDER_LATENCY_MS: '200',
      STORAGE_DRIVER: 's3',
      S3_BUCKET: BUCKET,
      S3_ENDPOINT: moto.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
    });
  });

  afterAll(async () => {
    await h?.stop();
    await moto?.stop();
    vi.unstubAllEnvs();
  });

  it('stores the output in the bucket and serves it from there through its signed URL', async () => {
    const user = await createUser(h.db, 100);
    const submit = await h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: user.auth,
      payload: { model: 'flux-pro-v1.1-ultra', input: { prompt: 'a bucket of paint', aspect_ratio: '1:1' } },
    });
    expect(submit.statusCode).toBe(202);
    const id: string = submit.json().id;
    const done = await waitFor(
      async () => (await h.app.inject({ url: `/v1/generations/${id}`, headers: user.auth })).json(),
      (g) => g.status === 'succeeded' || g.status === 'failed',
    );
    expect(done.status).toBe('succeeded');
    expect(done.outputs).toHaveLength(1);
    const output = done.outputs[0];
    expect(output).toMatchObject({ contentType: 'image/png', width: 1024, height: 1024 });

    // Through the API, without a key: the signed URL.
    const url = new URL(output.url);
    const file = await h.app.inject({ url: url.pathname + url.search });
    expect(file.statusCode).toBe(200);
    expect(file.headers['content-type']).toBe('image/png');
    const png = file.rawPayload;
    expect(png.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]))).toBe(true);
    expect(png.length).toBe(output.bytes);
    expect(Number(file.headers['content-length'])).toBe(output.bytes);
    expect(createHash('sha256').update(png).digest('hex')).toBe(output.sha256);

    // In the bucket, read with the SDK directly, at the key the asset records.
    const { storageKey } = await withUserTx(h.db, user.userId, async (tx) => {
      const { rows } = await tx.query<{ storage_key: string }>(
        'SELECT storage_key FROM assets WHERE generation_id = $1',
        [id],
      );
      return { storageKey: rows[0]!.storage_key };
    });
    expect(storageKey).toBe(`generations/${id}/0.png`);
    const object = await moto.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: storageKey }));
    expect(object.ContentType).toBe('image/png');
    expect(object.ContentLength).toBe(output.bytes);
    const inBucket = Buffer.from(await object.Body!.transformToByteArray());
    expect(createHash('sha256').update(inBucket).digest('hex')).toBe(output.sha256);

    // And not on the local disk.
    const local = path.join(h.config.dataDir, 'storage', storageKey);
    await expect(fs.stat(local)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
