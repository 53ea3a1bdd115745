import type { ImageField, ModelDefinition } from '../../lib/catalog/models';
import { IMAGE_FIELDS, uploadIdInPath, uploadIdInRef } from '../../lib/catalog/models';
import { withUserTx, type Db } from '../../lib/db/pool';
import { getUpload, type UploadRow } from '../../lib/uploads/store';
import { judgeWebhookUrl, type LookupAll, type WebhookUrlPolicy } from '../../lib/webhooks/url-policy';
import { ApiError } from '../errors';

// The image fields of a submitted input: an upload reference is checked and written in
// its canonical form `upload:<id>`; an external URL is checked against the outgoing-webhook rules
// and kept as given (the worker copies it, checking again at connect time). Runs before anything
// is started or reserved, so a refusal here costs nothing.

export interface InputRefDeps {
  db: Db;
  /** WEBHOOK_ALLOW_HTTP / WEBHOOK_ALLOW_PRIVATE_URLS: client image URLs follow the webhook rules. */
  inputUrlPolicy: WebhookUrlPolicy;
  /** VELRO_PUBLIC_URL (or its default): an upload's own URL starts with it. */
  publicUrl: string;
  /** Name resolution for the host check (tests pin it); the system resolver by default. */
  lookup?: LookupAll;
}

const fieldProblem = (status: 400 | 404, field: string, message: string) => {
  const path = `input.${field}`;
  return new ApiError(status, status === 404 ? 'not_found' : 'invalid_request', `${path}: ${message}`, {
    errors: [{ path, message }],
  });
};

/**
 * Before the model's own validation: an image field the model does not take is answered by name
 * (not as one unrecognised key among others).
 */
export function refuseImageFieldsNotTaken(model: ModelDefinition, input: unknown): void {
  if (typeof input !== 'object' || input === null) return;
  for (const field of IMAGE_FIELDS) {
    if (field in input && !model.imageFields.includes(field)) {
      throw fieldProblem(
        400,
        field,
        model.imageFields.length === 0
          ? `${model.id} takes no image`
          : `${model.id} takes no ${field} (its image fields: ${model.imageFields.join(', ')})`,
      );
    }
  }
}

/** The upload id a value names (`upload:<id>`, its own URL or path), or undefined for an external URL. */
export function uploadIdOf(value: string, publicUrl: string): string | undefined {
  if (value.startsWith('upload:')) return uploadIdInRef(value);
  const base = publicUrl.replace(/\/+$/, '');
  if (value.startsWith(`${base}/`)) return uploadIdInPath(value.slice(base.length).split(/[?#]/)[0]!);
  return uploadIdInPath(value);
}

/** Why an external image URL is refused (the webhook policy, in words about images), or undefined. */
async function externalUrlProblem(raw: string, deps: InputRefDeps): Promise<string | undefined> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a URL';
  }
  if (deps.inputUrlPolicy.requireHttps && url.protocol !== 'https:') {
    return 'image URLs must use https (or upload the image: POST /v1/uploads, then upload:<id>)';
  }
  if (url.username || url.password) return 'image URLs may not carry credentials (user:password@)';
  const verdict = await judgeWebhookUrl(raw, deps.inputUrlPolicy, deps.lookup);
  return verdict.ok ? undefined : `${verdict.reason}: Velro does not fetch images from inside a network`;
}

/**
 * The input with its image references checked: each upload must be visible to the caller (else
 * 404, as for any upload it may not see) and belong to the generation's owner — a personal upload
 * for a personal generation, the team's for a team generation (else 400) — and is rewritten to
 * `upload:<id>`; each external URL must pass the URL policy (else 400). `end_image_url` needs
 * `image_url`.
 */
export async function resolveInputRefs<T extends Record<string, unknown>>(
  deps: InputRefDeps,
  userId: string,
  model: ModelDefinition,
  input: T,
  owner: { teamId: string | null },
): Promise<T> {
  const present = model.imageFields.filter((f) => typeof input[f] === 'string');
  if (present.length === 0) return input;
  if (present.includes('end_image_url') && !present.includes('image_url')) {
    throw fieldProblem(400, 'end_image_url', 'an end image needs a start image: give image_url too');
  }
  const uploads = new Map<ImageField, string>();
  for (const field of present) {
    const value = input[field] as string;
    const id = uploadIdOf(value, deps.publicUrl);
    if (id) {
      uploads.set(field, id);
      continue;
    }
    if (value.startsWith('upload:') || /^\/v1\/uploads\//.test(value)) {
      throw fieldProblem(
        400,
        field,
        'an upload reference is upload:<id>, the id POST /v1/uploads answered with',
      );
    }
    const problem = await externalUrlProblem(value, deps);
    if (problem) throw fieldProblem(400, field, problem);
  }
  if (uploads.size === 0) return input;

  const rows = await withUserTx(deps.db, userId, async (tx) => {
    const found = new Map<ImageField, UploadRow | undefined>();
    for (const [field, id] of uploads) found.set(field, await getUpload(tx, id));
    return found;
  });
  const resolved: Record<string, unknown> = { ...input };
  for (const [field, id] of uploads) {
    const row = rows.get(field);
    if (!row) throw fieldProblem(404, field, `no upload ${id} (it may have been deleted or expired)`);
    if (row.team_id !== owner.teamId) {
      throw fieldProblem(
        400,
        field,
        row.team_id === null
          ? `upload ${id} is a personal upload; a team's generation takes that team's uploads only`
          : owner.teamId === null
            ? `upload ${id} belongs to a team; a personal generation takes personal uploads only (give its teamId)`
            : `upload ${id} belongs to another team than the generation's`,
      );
    }
    resolved[field] = `upload:${row.id}`;
  }
  return resolved as T;
}
