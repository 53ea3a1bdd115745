import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { assetIdAt, insertAssetWhileRunning } from '../lib/assets/store';
import { withUserTx } from '../lib/db/pool';
import { probeMedia, SERVABLE_MEDIA_TYPES, sniffMediaType } from '../lib/media/probe';
import { DownloadRefused, openDownload } from '../lib/providers/download';
import type { OutputSource, Provider } from '../lib/providers/provider';
import { ObjectTooLargeError } from '../lib/storage/storage';
import type { ActivityDeps } from './deps';
import { countProviderError, providerCall, providerFor, type JobInput } from './provider';

const EXTENSIONS: Record<string, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'image/gif': 'gif',
  'video/mp4': 'mp4',
  'video/webm': 'webm',
};

export function outputActivities(deps: ActivityDeps) {
  async function open(
    provider: Provider,
    source: OutputSource,
  ): Promise<{ body: Readable; contentType: string }> {
    if (source.kind === 'local') {
      if (!provider.openLocal) throw new Error(`${provider.name} has no local outputs`);
      const openLocal = provider.openLocal.bind(provider);
      return providerCall(() => openLocal(source)); // an unusable input image: invalid_input
    }
    try {
      const res = await openDownload(source.url, {
        allowedHosts: deps.outputHosts,
        allowLoopback: deps.allowLoopbackOutputs,
        timeoutMs: deps.downloadTimeoutMs,
      });
      if (res.status === 404 || res.status === 410) {
        throw ApplicationFailure.nonRetryable(
          `the provider's output is gone (HTTP ${res.status})`,
          'output_unavailable',
        );
      }
      if (res.status >= 400) throw new Error(`output download failed with HTTP ${res.status}`);
      return {
        body: res.body,
        contentType: res.contentType ?? source.contentType ?? 'application/octet-stream',
      };
    } catch (err) {
      if (err instanceof DownloadRefused)
        throw ApplicationFailure.nonRetryable(err.message, 'output_rejected');
      throw err;
    }
  }

  return {
    /**
     * Copies every output into Velro storage (provider URLs expire) and records it as an asset.
     * Idempotent: an output already recorded at its position is kept as it is.
     */
    async storeOutputs(input: JobInput): Promise<string[]> {
      const beat = setInterval(() => heartbeat(), 5000);
      try {
        return await storeAll(input);
      } finally {
        clearInterval(beat);
      }
    },
  };

  async function storeAll(input: JobInput): Promise<string[]> {
    const { provider, job } = providerFor(deps, input);
    const sources = await providerCall(
      () => provider.result({ ...job, requestId: input.requestId }),
      countProviderError(deps, input.provider, 'result'),
    );
    if (sources.length === 0)
      throw ApplicationFailure.nonRetryable('the provider returned no output', 'no_output');
    const assetIds: string[] = [];
    for (const [position, source] of sources.entries()) {
      const done = await withUserTx(deps.db, input.userId, (tx) =>
        assetIdAt(tx, input.generationId, position),
      );
      if (done) {
        assetIds.push(done);
        continue;
      }
      const { body, contentType } = await open(provider, source);
      const type = contentType.split(';')[0]!.trim().toLowerCase();
      const key = `generations/${input.generationId}/${position}.${EXTENSIONS[type] ?? 'bin'}`;
      let stored;
      try {
        stored = await deps.storage.put(key, body, type, deps.maxOutputBytes);
      } catch (err) {
        if (err instanceof ObjectTooLargeError) {
          throw ApplicationFailure.nonRetryable(
            `output is larger than ${deps.maxOutputBytes} bytes`,
            'output_too_large',
          );
        }
        throw err;
      }
      // Served from the API's origin: only media, by its bytes, whatever the provider declared.
      const media = probeMedia(stored.head);
      const mediaType = media?.contentType ?? sniffMediaType(stored.head);
      if (!mediaType || !SERVABLE_MEDIA_TYPES.has(mediaType)) {
        throw ApplicationFailure.nonRetryable(
          `output ${position + 1} is not an image or video Velro can serve (declared as ${type})`,
          'output_unavailable',
        );
      }
      const durationMs =
        media?.durationMs ??
        (source.kind === 'local' && source.durationSeconds ? source.durationSeconds * 1000 : null);
      const id = await withUserTx(deps.db, input.userId, async (tx) => {
        const inserted = await insertAssetWhileRunning(tx, {
          id: randomUUID(),
          generationId: input.generationId,
          userId: input.userId,
          position,
          storageKey: key,
          contentType: mediaType,
          bytes: stored.bytes,
          width: media?.width ?? null,
          height: media?.height ?? null,
          durationMs,
          sha256: stored.sha256,
        });
        if (inserted) return inserted;
        // A concurrent attempt recorded it first, or the generation is no longer running.
        const existing = await assetIdAt(tx, input.generationId, position);
        if (!existing) {
          throw ApplicationFailure.nonRetryable('the generation has already ended', 'generation_ended');
        }
        return existing;
      });
      assetIds.push(id);
    }
    return assetIds;
  }
}
