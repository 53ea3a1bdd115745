import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_NAMES } from './search-attributes';

const KEYWORD = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
/** A real server's search-attribute cache refreshes every few seconds: wait for new ones this long. */
const VISIBLE_WITHIN_MS = 60_000;
const POLL_MS = 500;
const CALL_TIMEOUT_MS = 10_000;
// gRPC status codes (@grpc/grpc-js is not a direct dependency).
const ALREADY_EXISTS = 6;
const PERMISSION_DENIED = 7;
const UNIMPLEMENTED = 12;

/**
 * Why the namespace cannot take Velro's search attributes: `refused` (no rights to list or add them, as
 * on Temporal Cloud), `clash` (a name taken with another type), `not-visible` (added, never listed).
 */
export class SearchAttributeError extends Error {
  constructor(
    readonly kind: 'refused' | 'clash' | 'not-visible',
    message: string,
  ) {
    super(message);
  }
}

/** The tcld command that registers them on Temporal Cloud, where the operator service cannot. */
export const cloudRegistrationCommand = (namespace: string) =>
  `tcld namespace search-attributes add --namespace ${namespace} ` +
  Object.values(SEARCH_ATTRIBUTE_NAMES)
    .map((name) => `--search-attribute "${name}=Keyword"`)
    .join(' ');

const codeOf = (err: unknown) => (err as { code?: number } | null)?.code;
const deadline = () => new Date(Date.now() + CALL_TIMEOUT_MS);

async function registered(connection: Connection, namespace: string) {
  const listed = await connection.withDeadline(deadline(), () =>
    connection.operatorService.listSearchAttributes({ namespace }),
  );
  return new Map(Object.entries(listed.customAttributes ?? {}));
}

/**
 * Makes sure the namespace has Velro's search attributes (all Keyword), adding the missing ones through
 * the operator service, and waits until the server shows them (a real cluster refreshes its cache every
 * few seconds; until then a generation's start would be refused). Idempotent: concurrent workers may
 * all call it. Throws SearchAttributeError when one cannot be had: a name already taken with another
 * type, or a server that refuses (Temporal Cloud: register them with `tcld`, see the message).
 */
export async function ensureSearchAttributes(
  connection: Connection,
  namespace: string,
): Promise<{ added: string[] }> {
  const wanted = Object.values(SEARCH_ATTRIBUTE_NAMES);
  let existing: Map<string, temporal.api.enums.v1.IndexedValueType>;
  try {
    existing = await registered(connection, namespace);
  } catch (err) {
    throw refusal(err, namespace, 'list');
  }
  const clashing = wanted.filter((name) => existing.has(name) && existing.get(name) !== KEYWORD);
  if (clashing.length > 0) {
    throw new SearchAttributeError(
      'clash',
      `search attributes ${clashing.join(', ')} exist in namespace ${namespace} with a type other than Keyword`,
    );
  }
  const missing = wanted.filter((name) => !existing.has(name));
  if (missing.length === 0) return { added: [] };

  try {
    await connection.withDeadline(deadline(), () =>
      connection.operatorService.addSearchAttributes({
        namespace,
        searchAttributes: Object.fromEntries(missing.map((name) => [name, KEYWORD])),
      }),
    );
  } catch (err) {
    // Another worker added them first.
    if (codeOf(err) !== ALREADY_EXISTS) throw refusal(err, namespace, 'add');
  }
  for (const until = Date.now() + VISIBLE_WITHIN_MS; ;) {
    const now = await registered(connection, namespace);
    if (missing.every((name) => now.get(name) === KEYWORD)) return { added: missing };
    if (Date.now() > until) {
      throw new SearchAttributeError(
        'not-visible',
        `search attributes ${missing.join(', ')} were added to namespace ${namespace} but are not listed after ${VISIBLE_WITHIN_MS / 1000} s`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function refusal(err: unknown, namespace: string, step: 'list' | 'add'): Error {
  const code = codeOf(err);
  if (code === PERMISSION_DENIED || code === UNIMPLEMENTED) {
    return new SearchAttributeError(
      'refused',
      `the server refused to ${step} search attributes in namespace ${namespace} (${(err as Error).message}). ` +
        `On Temporal Cloud, register them once with: ${cloudRegistrationCommand(namespace)}`,
    );
  }
  return err instanceof Error ? err : new Error(String(err));
}
