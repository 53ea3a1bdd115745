import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { Readable } from 'node:stream';
import { signUploadPath } from '../lib/auth/signed-urls';
import { findModel } from '../lib/catalog/models';
import { withUserTx } from '../lib/db/pool';
import { derivedUuid } from '../lib/ledger/ids';
import type { Provider } from '../lib/providers/provider';
import { ObjectTooLargeError } from '../lib/storage/storage';
import { fetchInputImage, InputImageRefused, InputImageUnavailable } from '../lib/uploads/fetch-image';
import {
  generationInputs,
  getUpload,
  insertUpload,
  linkGenerationInput,
  recordProviderUrl,
  uploadFileName,
  uploadStorageKey,
  type GenerationInputRow,
} from '../lib/uploads/store';
import type { GenerationInput } from '../workflows/definitions';
import type { ActivityDeps } from './deps';
import { countProviderError, providerCall } from './provider';

/** The upload a field uses, as far as handing it over needs. */
type LinkedUpload = Pick<GenerationInputRow, 'upload_id' | 'storage_key' | 'content_type'>;

/**
 * A provider URL recorded for a field is handed over again while it outlives the generation: its
 * deadline, plus this for the queue and retries before the provider reads it.
 */
const REUSE_MARGIN_MS = 10 * 60_000;
/** A signed Velro URL outlives the generation's deadline by this much. */
const SIGNED_URL_EXTRA_SECONDS = 3600;

export function inputImageActivities(deps: ActivityDeps) {
  return {
    /**
     * Gives each image field of the input a value its provider can fetch:
     * the local renderer `storage:<key>`, fal its storage `file_url`, Replicate a data URI or a file
     * URL, or a signed Velro URL (INPUT_IMAGE_DELIVERY=signed-url). An external URL is first copied
     * into Velro storage as an upload of the generation's owner. Idempotent: what was handed over is
     * recorded (generation_inputs), and a retry hands over the same while it is still valid.
     */
    async resolveInputImages(input: GenerationInput): Promise<Record<string, string>> {
      const model = findModel(input.model);
      if (!model) {
        throw ApplicationFailure.nonRetryable(`no model ${input.model}`, 'configuration_error');
      }
      const fields = model.imageFields.filter(
        (f) => typeof input.input[f] === 'string' && input.input[f] !== '',
      );
      if (fields.length === 0) return {};
      const beat = setInterval(() => heartbeat(), 5000);
      try {
        const resolved: Record<string, string> = {};
        for (const field of fields) resolved[field] = await resolveField(input, field);
        return resolved;
      } finally {
        clearInterval(beat);
      }
    },
  };

  async function resolveField(input: GenerationInput, field: string): Promise<string> {
    const linked = await withUserTx(deps.db, input.userId, (tx) => generationInputs(tx, input.generationId));
    const existing = linked.find((row) => row.field === field);
    const marginMs = input.deadlineSeconds * 1000 + REUSE_MARGIN_MS;
    if (
      existing?.provider === input.provider &&
      existing.provider_url &&
      (existing.provider_url_expires_at === null ||
        existing.provider_url_expires_at.getTime() > Date.now() + marginMs)
    ) {
      return existing.provider_url;
    }
    const upload = existing ?? (await linkUpload(input, field, String(input.input[field])));
    return handOver(input, field, upload);
  }

  /** The upload the field names, or the copy of its external URL, linked to the generation. */
  async function linkUpload(input: GenerationInput, field: string, value: string): Promise<LinkedUpload> {
    const uploadId = value.startsWith('upload:')
      ? value.slice('upload:'.length)
      : await copyUrl(input, field, value);
    return withUserTx(deps.db, input.userId, async (tx) => {
      const ok = await linkGenerationInput(tx, { generationId: input.generationId, field, uploadId });
      const row = ok ? await getUpload(tx, uploadId) : undefined;
      if (!row) {
        throw ApplicationFailure.nonRetryable(
          `${field}: upload ${uploadId} is not available to this generation (deleted, expired, or another owner's)`,
          'invalid_input',
        );
      }
      return { upload_id: row.id, storage_key: row.storage_key, content_type: row.content_type };
    });
  }

  /**
   * Copies a client's image URL into Velro storage (SSRF rules of outgoing webhooks, the content
   * checks of uploads) as an upload whose id follows from the generation and field, so a retry
   * finds the copy it made before instead of fetching again.
   */
  async function copyUrl(input: GenerationInput, field: string, url: string): Promise<string> {
    const id = derivedUuid(`velro:input:${input.generationId}:${field}`);
    const copied = await withUserTx(deps.db, input.userId, (tx) => getUpload(tx, id));
    if (copied) return id;
    const { maxBytes, maxPixels, fetchTimeoutMs } = deps.inputImages;
    let image;
    try {
      image = await fetchInputImage(url, {
        policy: deps.webhooks.urlPolicy,
        lookup: deps.webhooks.lookup,
        timeoutMs: fetchTimeoutMs,
        maxBytes,
        maxPixels,
      });
    } catch (err) {
      if (err instanceof InputImageRefused)
        throw ApplicationFailure.nonRetryable(`${field}: ${err.message}`, 'invalid_input');
      if (err instanceof InputImageUnavailable) {
        throw ApplicationFailure.create({
          message: `${field}: ${err.message}`,
          type: 'input_unavailable',
          nonRetryable: false,
        });
      }
      throw err;
    }
    const storageKey = uploadStorageKey(id, image.contentType);
    try {
      await deps.storage.put(storageKey, Readable.from([image.bytes]), image.contentType, maxBytes);
    } catch (err) {
      if (err instanceof ObjectTooLargeError)
        throw ApplicationFailure.nonRetryable(
          `${field}: the image is larger than ${maxBytes} bytes`,
          'invalid_input',
        );
      throw err;
    }
    await withUserTx(deps.db, input.userId, (tx) =>
      insertUpload(tx, {
        id,
        userId: input.userId,
        teamId: input.teamId ?? null,
        storageKey,
        contentType: image.contentType,
        bytes: image.bytes.length,
        width: image.width,
        height: image.height,
        sha256: image.sha256,
        source: 'url',
        sourceUrl: url,
      }),
    );
    return id;
  }

  /** What the provider is given for the upload; recorded unless it is inline (a data URI). */
  async function handOver(input: GenerationInput, field: string, upload: LinkedUpload): Promise<string> {
    if (input.provider === 'local') return `storage:${upload.storage_key}`;
    let handed: { url: string; expiresAt: Date | null };
    if (deps.inputImages.delivery === 'signed-url') {
      const ttlSeconds = input.deadlineSeconds + SIGNED_URL_EXTRA_SECONDS;
      const key = await deps.webhooks.assetSigningKey();
      handed = {
        url: `${deps.webhooks.publicUrl}${signUploadPath(key, upload.upload_id, ttlSeconds)}`,
        expiresAt: new Date(Date.now() + ttlSeconds * 1000),
      };
    } else {
      const provider = uploader(input);
      const bytes = await readStored(upload.storage_key, field);
      handed = await providerCall(
        () =>
          provider.uploadInput!({
            bytes,
            contentType: upload.content_type,
            fileName: uploadFileName(upload.upload_id, upload.content_type),
          }),
        countProviderError(deps, input.provider, 'upload'),
      );
    }
    if (!handed.url.startsWith('data:')) {
      await withUserTx(deps.db, input.userId, (tx) =>
        recordProviderUrl(tx, {
          generationId: input.generationId,
          field,
          provider: input.provider,
          url: handed.url,
          expiresAt: handed.expiresAt,
        }),
      );
    }
    return handed.url;
  }

  function uploader(input: GenerationInput): Provider {
    const provider = deps.providers[input.provider];
    if (!provider?.uploadInput) {
      throw ApplicationFailure.nonRetryable(
        `provider ${input.provider} cannot take input images`,
        'configuration_error',
      );
    }
    return provider;
  }

  async function readStored(key: string, field: string): Promise<Buffer> {
    const object = await deps.storage.get(key);
    if (!object) {
      throw ApplicationFailure.nonRetryable(`${field}: the stored image is missing`, 'input_unavailable');
    }
    const chunks: Buffer[] = [];
    for await (const chunk of object.body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
}
