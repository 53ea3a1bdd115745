import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  NoSuchKey,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { z } from 'zod';
import { ConfigError, type Config } from '../config';
import { HashingStream } from './hashing-stream';
import { assertSafeKey, type Storage, type StoredObject } from './storage';

export interface S3StorageOptions {
  bucket: string;
  region: string;
  /** An S3-compatible server instead of AWS (e.g. `http://127.0.0.1:9000`). */
  endpoint?: string;
  /** `endpoint/bucket/key` rather than `bucket.endpoint/key`. */
  forcePathStyle?: boolean;
  /** Limit of connecting, of each request until its answer, and of an idle socket. */
  timeoutMs?: number;
  /** Attempts per call, the first included. */
  maxAttempts?: number;
  /** Bytes per multipart part (at least 5 MiB); a body no larger goes up in one PUT. */
  partSize?: number;
  /** Parts in flight per put: memory per put is at most about (queueSize + 1) × partSize. */
  queueSize?: number;
}

const MiB = 1024 * 1024;

/**
 * Keeps objects in an S3 bucket. A put streams the body through the hash and size cap into a
 * multipart upload (parts are buffered, never the whole body); S3 makes an object visible only when
 * its PUT or CompleteMultipartUpload succeeds, so readers never see half of one. A refused or
 * failed put aborts its multipart upload. Credentials come from the AWS default provider chain.
 */
export class S3Storage implements Storage {
  readonly driver = 's3' as const;
  readonly client: S3Client;
  readonly bucket: string;
  private readonly partSize: number;
  private readonly queueSize: number;

  constructor(options: S3StorageOptions) {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const agent = { keepAlive: true, maxSockets: 64 };
    this.bucket = options.bucket;
    this.partSize = Math.max(options.partSize ?? 8 * MiB, 5 * MiB);
    this.queueSize = options.queueSize ?? 2;
    this.client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle ?? false,
      maxAttempts: options.maxAttempts ?? 3,
      requestHandler: new NodeHttpHandler({
        connectionTimeout: Math.min(timeoutMs, 10_000),
        requestTimeout: timeoutMs,
        throwOnRequestTimeout: true,
        socketTimeout: timeoutMs,
        httpAgent: new HttpAgent(agent),
        httpsAgent: new HttpsAgent(agent),
      }),
    });
  }

  async put(key: string, body: Readable, contentType: string, maxBytes?: number): Promise<StoredObject> {
    assertSafeKey(key);
    const hashing = new HashingStream(maxBytes);
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: hashing, ContentType: contentType },
      partSize: this.partSize,
      queueSize: this.queueSize,
      // On any failure (the size cap included) the multipart upload is aborted: no parts are kept.
      leavePartsOnError: false,
    });
    // Settles to the reading side's error, if any, so a failure here is never left unhandled.
    const piped = pipeline(body, hashing).then(
      () => undefined,
      (err: unknown) => err,
    );
    try {
      await upload.done();
    } catch (err) {
      // The upload may stop reading first (a network failure): release the source too.
      hashing.destroy(err as Error);
      const readError = await piped;
      // The body's own error (or ObjectTooLargeError) explains more than how the upload ended.
      const prematureClose =
        (readError as NodeJS.ErrnoException | undefined)?.code === 'ERR_STREAM_PREMATURE_CLOSE';
      throw readError !== undefined && !prematureClose ? readError : err;
    }
    const readError = await piped;
    if (readError !== undefined) throw readError;
    return { bytes: hashing.bytes, sha256: hashing.sha256, head: hashing.head };
  }

  async get(key: string): Promise<{ body: Readable; bytes: number } | undefined> {
    assertSafeKey(key);
    let res;
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (err instanceof NoSuchKey) return undefined;
      // A missing bucket is a misconfiguration, not a missing object.
      if (
        err instanceof S3ServiceException &&
        err.$metadata.httpStatusCode === 404 &&
        err.name !== 'NoSuchBucket'
      ) {
        return undefined;
      }
      throw err;
    }
    const body = res.Body;
    if (!(body instanceof Readable) || res.ContentLength === undefined) {
      if (body instanceof Readable) body.destroy();
      throw new Error(`S3 answered GetObject ${key} without a readable body and its length`);
    }
    return { body, bytes: res.ContentLength };
  }

  /** S3 answers a delete of a missing key like any other (204): nothing to tell apart. */
  async delete(key: string): Promise<void> {
    assertSafeKey(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /** Closes the client's pooled connections. */
  close(): void {
    this.client.destroy();
  }
}

const s3Settings = z.object({
  S3_BUCKET: z.string('required when STORAGE_DRIVER=s3'),
  S3_REGION: z.string().min(1),
  S3_ENDPOINT: z.string().optional(),
  S3_FORCE_PATH_STYLE: z.boolean(),
  S3_REQUEST_TIMEOUT_MS: z.number(),
  S3_MAX_ATTEMPTS: z.number(),
});

/** The S3 driver's settings from the configuration; a missing one stops the process naming it. */
export function s3OptionsFromConfig(config: Config): S3StorageOptions {
  const parsed = s3Settings.safeParse(config);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const s = parsed.data;
  return {
    bucket: s.S3_BUCKET,
    region: s.S3_REGION,
    endpoint: s.S3_ENDPOINT,
    forcePathStyle: s.S3_FORCE_PATH_STYLE,
    timeoutMs: s.S3_REQUEST_TIMEOUT_MS,
    maxAttempts: s.S3_MAX_ATTEMPTS,
  };
}
