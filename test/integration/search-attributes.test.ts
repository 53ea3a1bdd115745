import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cloudRegistrationCommand,
  ensureSearchAttributes,
  SearchAttributeError,
} from '../../lib/temporal/register-search-attributes';
import { SEARCH_ATTRIBUTE_NAMES } from '../../lib/temporal/search-attributes';
import { ModelKey, StatusKey, UserIdKey } from '../../workflows/definitions';
import { testStack, waitFor } from '../support/context';

const { KEYWORD, TEXT } = {
  KEYWORD: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  TEXT: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
};
const NAMES = Object.values(SEARCH_ATTRIBUTE_NAMES);

let connection: Connection;

beforeAll(async () => {
  connection = await Connection.connect({ address: testStack().temporalAddress });
});
afterAll(async () => {
  await connection?.close();
});

/** A namespace of its own (the dev server's `default` has Velro's attributes from its flags). */
async function freshNamespace(): Promise<string> {
  const namespace = `sa-${randomUUID().slice(0, 8)}`;
  await connection.workflowService.registerNamespace({
    namespace,
    workflowExecutionRetentionPeriod: msToTs('1 day'),
  });
  await waitFor(
    () =>
      connection.workflowService.describeNamespace({ namespace }).then(
        () => true,
        () => false,
      ),
    (ok) => ok,
  );
  return namespace;
}

const listed = async (namespace: string) =>
  (await connection.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {};

/** Starts a workflow with Velro's search attributes set (no worker needed: it is terminated at once). */
async function startWithAttributes(namespace: string) {
  const client = new Client({ connection, namespace });
  const handle = await client.workflow.start('generation', {
    taskQueue: `sa-${randomUUID()}`,
    workflowId: `sa-${randomUUID()}`,
    args: [],
    typedSearchAttributes: [
      { key: UserIdKey, value: randomUUID() },
      { key: ModelKey, value: 'veo3' },
      { key: StatusKey, value: 'queued' },
    ],
  });
  await handle.terminate('test');
}

describe('a worker registers its search attributes (ensureSearchAttributes)', () => {
  it('adds the missing ones as Keyword, after which a generation can start; a second call adds none', async () => {
    const namespace = await freshNamespace();
    // Without them, the server refuses a start that sets them: what a worker on a bare cluster would face.
    const refused = await startWithAttributes(namespace).catch(
      (e: unknown) => e as Error & { cause?: Error },
    );
    expect(refused).toBeInstanceOf(Error);
    expect(`${refused?.message} ${refused?.cause?.message}`).toMatch(/search attribute/i);

    const first = await ensureSearchAttributes(connection, namespace);
    expect(first.added.sort()).toEqual([...NAMES].sort());
    const types = await listed(namespace);
    for (const name of NAMES) expect(types[name]).toBe(KEYWORD);
    await startWithAttributes(namespace);

    expect(await ensureSearchAttributes(connection, namespace)).toEqual({ added: [] });
  });

  it('is safe when several workers start at once', async () => {
    const namespace = await freshNamespace();
    const results = await Promise.all([1, 2, 3].map(() => ensureSearchAttributes(connection, namespace)));
    const types = await listed(namespace);
    for (const name of NAMES) expect(types[name]).toBe(KEYWORD);
    // Each is added by someone; nobody fails.
    expect(new Set(results.flatMap((r) => r.added))).toEqual(new Set(NAMES));
  });

  it('refuses a namespace where a name is taken with another type, and adds nothing', async () => {
    const namespace = await freshNamespace();
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: { [SEARCH_ATTRIBUTE_NAMES.model]: TEXT },
    });
    await waitFor(
      () => listed(namespace),
      (types) => types[SEARCH_ATTRIBUTE_NAMES.model] === TEXT,
    );
    const err = await ensureSearchAttributes(connection, namespace).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SearchAttributeError);
    expect((err as SearchAttributeError).kind).toBe('clash');
    expect((err as Error).message).toContain(SEARCH_ATTRIBUTE_NAMES.model);
    expect(Object.keys(await listed(namespace))).toEqual([SEARCH_ATTRIBUTE_NAMES.model]);
  });

  it('names the tcld command for Temporal Cloud, with every attribute', () => {
    const command = cloudRegistrationCommand('velro.a1b2c');
    expect(command).toMatch(/^tcld namespace search-attributes add --namespace velro\.a1b2c /);
    for (const name of NAMES) expect(command).toContain(`--search-attribute "${name}=Keyword"`);
  });
});
