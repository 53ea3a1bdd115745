// How fal says no: a failure code from fal's error_type, and 4xx answers (`detail`) as content-policy
// refusals or bad input named by field. Used by ./fal.ts.
import { excerpt, type ProviderResponse } from './http';
import type { ProviderFailure } from './provider';

/** A failure code from fal's error_type (request errors and model errors). */
export function falFailure(errorType: unknown, message: string): ProviderFailure {
  const type = typeof errorType === 'string' ? errorType : '';
  if (type === 'content_policy_violation') return { code: 'content_policy', message };
  return { code: 'provider_error', message: type ? `fal: ${type}: ${message}` : `fal: ${message}` };
}

interface FalErrorItem {
  loc?: unknown;
  msg?: unknown;
  type?: unknown;
}

function fieldOf(item: FalErrorItem): string {
  const loc = Array.isArray(item.loc) ? item.loc.map(String) : [];
  const path = loc[0] === 'body' ? loc.slice(1) : loc;
  return path.length ? path.join('.') : 'input';
}

export function detailText(detail: unknown): string | undefined {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d: FalErrorItem) => `${fieldOf(d)}: ${typeof d?.msg === 'string' ? d.msg : 'invalid'}`)
      .join('; ');
  }
  return undefined;
}

/**
 * A 4xx (mostly 422) answer as a failure: `detail` is a list of {loc, msg, type} (or a string). A
 * `content_policy_violation` entry is a content-policy refusal; anything else is bad input, named by
 * field.
 */
export function detailFailure(res: ProviderResponse): ProviderFailure {
  const body = isObject(res.json) ? res.json : undefined;
  const detail = body?.detail;
  if (Array.isArray(detail)) {
    const items = detail as FalErrorItem[];
    const flagged = items.filter((d) => d?.type === 'content_policy_violation');
    if (flagged.length) {
      return {
        code: 'content_policy',
        message: `The provider's content checker refused the input (${flagged.map(fieldOf).join(', ')}).`,
      };
    }
    return { code: 'invalid_input', message: `The provider rejected the input: ${detailText(items)}` };
  }
  const text = typeof detail === 'string' ? detail : excerpt(res);
  if (/content[ _-]?policy|nsfw|flagged/i.test(text)) return { code: 'content_policy', message: text };
  return {
    code: res.status === 422 || res.status === 400 ? 'invalid_input' : 'provider_error',
    message: `fal: HTTP ${res.status}: ${text}`,
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
