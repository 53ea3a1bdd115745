import { createServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../../lib/config';
import { createStorage } from '../../lib/wiring/from-config';
import { S3Storage } from '../../lib/storage/s3-storage';
import type { Storage } from '../../lib/storage/storage';
import { MOTO_CREDENTIALS, startMoto, type MotoServer } from './moto';
import { storageSuite } from './storage-suite';

const BUCKET = 'velro-storage-suite';
let moto: MotoServer;

beforeAll(async () => {
  // The driver takes credentials from the AWS default chain, as in production.
  for (const [name, value] of Object.entries(MOTO_CREDENTIALS)) vi.stubEnv(name, value);
  const started = Date.now();
  moto = await startMoto();
  process.stderr.write(`[test moto] S3 server at ${moto.endpoint} ready in ${Date.now() - started} ms\n`);
  await moto.createBucket(BUCKET);
});

afterAll(async () => {
  await moto?.stop();
  vi.unstubAllEnvs();
});

/** The driver as the service builds it from its configuration. */
function s3From(env: Record<string, string> = {}): S3Storage {
  const storage = createStorage(
    loadConfig({
      STORAGE_DRIVER: 's3',
      S3_BUCKET: BUCKET,
      S3_ENDPOINT: moto.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      ...env,
    }),
  );
  expect(storage).toBeInstanceOf(S3Storage);
  return storage as S3Storage;
}

storageSuite(
  's3',
  () => s3From(),
  {
    // Nothing at the key, and no multipart upload of it left open (its parts would be billed).
    async leftNothingBehind(key) {
      await expect(
        moto.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })),
      ).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
      const open = await moto.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: key }));
      expect(open.Uploads ?? []).toEqual([]);
    },
  },
  (storage: Storage) => (storage as S3Storage).close(),
);

describe('s3 storage specifics', () => {
  it('keeps the content type, so the bucket can serve objects as they are', async () => {
    const storage = s3From();
    try {
      await storage.put('specifics/typed.png', Readable.from([Buffer.from('png-ish')]), 'image/png');
      const head = await moto.client.send(
        new HeadObjectCommand({ Bucket: BUCKET, Key: 'specifics/typed.png' }),
      );
      expect(head).toMatchObject({ ContentType: 'image/png', ContentLength: 7 });
    } finally {
      storage.close();
    }
  });

  it('fails loudly for a bucket that does not exist instead of answering "no such object"', async () => {
    const storage = s3From({ S3_BUCKET: 'velro-no-such-bucket' });
    try {
      await expect(storage.get('generations/x/0.png')).rejects.toMatchObject({ name: 'NoSuchBucket' });
      await expect(
        storage.put('generations/x/0.png', Readable.from([Buffer.from('x')]), 'image/png'),
      ).rejects.toMatchObject({ name: 'NoSuchBucket' });
    } finally {
      storage.close();
    }
  });

  it('gives up on a server that never answers: a timeout per attempt, a bounded number of attempts', async () => {
    const sockets: Socket[] = [];
    let connections = 0;
    const silent = createServer((socket) => {
      connections++;
      sockets.push(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const storage = s3From({
      S3_ENDPOINT: `http://127.0.0.1:${port}`,
      S3_REQUEST_TIMEOUT_MS: '300',
      S3_MAX_ATTEMPTS: '2',
    });
    try {
      const started = Date.now();
      await expect(storage.get('generations/x/0.png')).rejects.toMatchObject({ name: 'TimeoutError' });
      const small = Readable.from([Buffer.from('x')]);
      await expect(storage.put('generations/x/0.png', small, 'image/png')).rejects.toMatchObject({
        name: 'TimeoutError',
      });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(connections).toBe(4);
    } finally {
      storage.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('s3 storage configuration', () => {
  it('requires S3_BUCKET with STORAGE_DRIVER=s3, naming it', () => {
    const config = loadConfig({ STORAGE_DRIVER: 's3' });
    expect(() => createStorage(config)).toThrow(ConfigError);
    expect(() => createStorage(config)).toThrow(/S3_BUCKET: required when STORAGE_DRIVER=s3/);
  });

  it('names a bad S3 variable', () => {
    expect(() => loadConfig({ S3_FORCE_PATH_STYLE: 'maybe' })).toThrow(/S3_FORCE_PATH_STYLE/);
    expect(() => loadConfig({ S3_ENDPOINT: 'not a url' })).toThrow(/S3_ENDPOINT/);
    expect(() => loadConfig({ S3_BUCKET: 'Not_A_Bucket' })).toThrow(/S3_BUCKET/);
    expect(() => loadConfig({ S3_MAX_ATTEMPTS: '0' })).toThrow(/S3_MAX_ATTEMPTS/);
  });

  it('defaults to us-east-1, virtual-hosted style, 30 s timeouts and 3 attempts', () => {
    const config = loadConfig({ STORAGE_DRIVER: 's3', S3_BUCKET: 'velro-outputs' });
    expect(config).toMatchObject({
      S3_REGION: 'us-east-1',
      S3_FORCE_PATH_STYLE: false,
      S3_REQUEST_TIMEOUT_MS: 30_000,
      S3_MAX_ATTEMPTS: 3,
    });
    const storage = createStorage(config) as S3Storage;
    expect(storage.driver).toBe('s3');
    expect(storage.bucket).toBe('velro-outputs');
    storage.close();
  });
});
