// How the local provider reads its input images: `storage:<key>` references into Velro storage, which the
// workflow hands it in place of the client's upload or URL (activities/input-images.ts).
import { assertSafeKey, type Storage } from '../../storage/storage';
import { NonRetryableProviderError } from '../provider';

export const STORAGE_REF_PREFIX = 'storage:';

/**
 * A reader of `storage:<key>` references, at most `maxBytes` each. A missing object or a bad reference
 * cannot get better on retry (invalid_input); a storage outage is an ordinary error, retried.
 */
export function storageInputReader(storage: Storage, maxBytes: number): (ref: string) => Promise<Buffer> {
  return async (ref) => {
    const key = ref.startsWith(STORAGE_REF_PREFIX) ? ref.slice(STORAGE_REF_PREFIX.length) : '';
    try {
      assertSafeKey(key);
    } catch {
      throw new NonRetryableProviderError('invalid_input', `not a reference into Velro storage: ${ref}`);
    }
    const object = await storage.get(key);
    if (!object)
      throw new NonRetryableProviderError('invalid_input', `the input image ${ref} is not in storage`);
    if (object.bytes > maxBytes) {
      object.body.destroy();
      throw new NonRetryableProviderError(
        'invalid_input',
        `the input image is larger than ${maxBytes} bytes`,
      );
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of object.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > maxBytes) {
        object.body.destroy();
        throw new NonRetryableProviderError(
          'invalid_input',
          `the input image is larger than ${maxBytes} bytes`,
        );
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, total);
  };
}
