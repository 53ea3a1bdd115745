// docker-compose.yml cannot run here (no Docker), so it is checked the ways that can fail without
// it: against the Compose Specification's schema, against the variables lib/config.ts and each
// image read, against tags known to exist, and its scripts (health checks, the namespace job) run
// for real against the test stack's Temporal.
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import Ajv from 'ajv';
import draft07 from 'ajv/dist/refs/json-schema-draft-07.json';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { configSchema, loadConfig } from '../../lib/config';
import { ensureTemporalCli } from '../../lib/temporal/cli';
import { testStack } from '../support/context';
import composeSpec from '../fixtures/compose-spec.json';
import knownImages from '../fixtures/compose-images.json';
import imageEnv from '../fixtures/compose-image-env.json';

const ROOT = path.resolve(__dirname, '../..');
const COMPOSE_TEXT = fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  healthcheck?: { test: string[] };
  restart?: string;
  deploy?: { replicas?: number };
  depends_on?: Record<string, { condition: string }>;
}
const SERVICE_NAMES = [
  'postgres',
  'temporal-postgres',
  'temporal-schema',
  'temporal',
  'temporal-namespace',
  'temporal-ui',
  'migrate',
  'api',
  'worker',
] as const;
type ServiceName = (typeof SERVICE_NAMES)[number];
interface ComposeFile {
  services: Record<ServiceName, Service>;
}

/** The secrets docker-compose.yml requires: what a user's .env holds. */
const SECRETS = {
  VELRO_DB_OWNER_PASSWORD: randomBytes(24).toString('hex'),
  VELRO_APP_DB_PASSWORD: randomBytes(24).toString('hex'),
  VELRO_SYSTEM_DB_PASSWORD: randomBytes(24).toString('hex'),
  TEMPORAL_DB_PASSWORD: randomBytes(24).toString('hex'),
  JWT_SECRET: randomBytes(48).toString('base64'),
};

/**
 * Compose's interpolation of one string (the forms docker-compose.yml uses): `$$` is a literal `$`,
 * `${VAR}`, `${VAR:-default}` and `${VAR:?message}` (an error when VAR is unset or empty).
 */
function interpolateText(text: string, env: Record<string, string | undefined>): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}|\$(?![{$])/g,
    (m, name, op, arg) => {
      if (m === '$$') return '$';
      if (!name) throw new Error(`a bare $ in ${JSON.stringify(text)}: write $$ for a literal one`);
      const value = env[name];
      if (op === ':?' && !value) throw new Error(`required variable ${name} is missing: ${arg}`);
      if (op === ':-' && !value) return arg;
      return value ?? '';
    },
  );
}

function interpolate<T>(node: T, env: Record<string, string | undefined>): T {
  if (typeof node === 'string') return interpolateText(node, env) as T;
  if (Array.isArray(node)) return node.map((item) => interpolate(item, env)) as T;
  if (node && typeof node === 'object')
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolate(v, env)])) as T;
  return node;
}

/** The file as Compose would run it with `env` as its .env: YAML merge keys resolved, interpolated. */
function loadCompose(env: Record<string, string | undefined> = SECRETS): ComposeFile {
  return interpolate(parse(COMPOSE_TEXT, { merge: true }) as ComposeFile, env);
}

function validatorOf() {
  // The spec names draft-07 by its https address; Ajv knows that meta-schema by its http one.
  const ajv = new Ajv({ allErrors: true, strict: false });
  ajv.addMetaSchema({ ...draft07, $id: 'https://json-schema.org/draft-07/schema' });
  return ajv.compile(composeSpec);
}

const VELRO_SERVICES: ServiceName[] = ['migrate', 'api', 'worker'];

function run(
  file: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: ROOT, env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

/** A healthcheck's `CMD` argv, run on this machine. */
function runHealthcheck(service: Service, env: Record<string, string>) {
  const [kind, file, ...args] = service.healthcheck?.test ?? [];
  if (kind !== 'CMD' || !file)
    throw new Error(`not a CMD health check: ${JSON.stringify(service.healthcheck)}`);
  return run(file, args, { PATH: process.env.PATH ?? '', ...env });
}

describe('docker-compose.yml', () => {
  it('is valid by the Compose Specification schema', () => {
    const validate = validatorOf();
    const valid = validate(loadCompose());
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('the schema check refuses what Compose would (a misspelt key, a condition that does not exist)', () => {
    const validate = validatorOf();
    const broken = loadCompose();
    (broken.services.api as Record<string, unknown>).imagee = 'velro';
    broken.services.worker.depends_on = { migrate: { condition: 'service_finished' } };
    expect(validate(broken)).toBe(false);
    const failed = (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`).join('\n');
    expect(failed).toMatch(/\/services\/api must NOT have additional properties/);
    expect(failed).toMatch(
      /\/services\/worker\/depends_on\/migrate\/condition must be equal to one of the allowed values/,
    );
  });

  it('refuses to start without each secret (no default stands in for one)', () => {
    for (const name of Object.keys(SECRETS)) {
      const env: Record<string, string | undefined> = { ...SECRETS, [name]: undefined };
      expect(() => loadCompose(env), name).toThrow(`required variable ${name} is missing`);
    }
  });

  it('sets api, worker and migrate only variables lib/config.ts reads, and each parses', () => {
    const compose = loadCompose();
    const known = new Set(Object.keys(configSchema.shape));
    for (const name of VELRO_SERVICES) {
      const environment = compose.services[name].environment ?? {};
      expect(
        Object.keys(environment).filter((key) => !known.has(key)),
        name,
      ).toEqual([]);
      // Empty defaults (`${FAL_KEY:-}`) must read as "not given", and production checks must pass.
      expect(() => loadConfig(environment), name).not.toThrow();
      expect(environment.NODE_ENV, name).toBe('production');
    }
  });

  it('gives each process only its own database login', () => {
    const { services } = loadCompose();
    const has = (name: ServiceName) =>
      Object.keys(services[name].environment ?? {}).filter((k) => /^DATABASE_/.test(k));
    expect(has('migrate').sort()).toEqual(['DATABASE_APP_URL', 'DATABASE_SYSTEM_URL', 'DATABASE_URL']);
    expect(has('api')).toEqual(['DATABASE_APP_URL']);
    expect(has('worker').sort()).toEqual(['DATABASE_APP_URL', 'DATABASE_SYSTEM_URL']);
    const ownerPassword = SECRETS.VELRO_DB_OWNER_PASSWORD;
    const seeOwner = Object.entries(services)
      .filter(([, s]) => JSON.stringify(s).includes(ownerPassword))
      .map(([name]) => name);
    expect(seeOwner.sort()).toEqual(['migrate', 'postgres']);
    const seeTemporalDb = Object.entries(services)
      .filter(([, s]) => JSON.stringify(s).includes(SECRETS.TEMPORAL_DB_PASSWORD))
      .map(([name]) => name);
    expect(seeTemporalDb.sort()).toEqual(['temporal', 'temporal-postgres', 'temporal-schema']);
  });

  it('names only image tags known to exist, and builds the rest from the Dockerfile', () => {
    const { services } = loadCompose();
    const known = knownImages.images as Record<string, { evidence: string[] }>;
    for (const [name, service] of Object.entries(services)) {
      if (!service.image) {
        expect(service.build, name).toBe('.');
        continue;
      }
      expect(Object.keys(known), name).toContain(service.image);
      expect(known[service.image]?.evidence.length, service.image).toBeGreaterThan(0);
    }
    // The schema the admin tools apply is the one the server expects.
    const tagOf = (repo: string) =>
      new Set(
        Object.values(services)
          .map((s) => s.image)
          .filter((image) => image?.startsWith(`${repo}:`))
          .map((image) => image!.split(':')[1]),
      );
    expect([...tagOf('temporalio/admin-tools')]).toEqual([...tagOf('temporalio/server')]);
  });

  it('gives each image only variables that image reads (its config template at that tag)', () => {
    const { services } = loadCompose();
    const lists = imageEnv as unknown as Record<string, { tag: string; variables: string[] }>;
    for (const [name, service] of Object.entries(services)) {
      if (!service.image) continue;
      const [repo = '', tag] = service.image.split(':');
      const list = lists[repo];
      if (!list) throw new Error(`${name}: no variable list for ${repo}`);
      expect(list.tag, name).toBe(tag);
      const unknown = Object.keys(service.environment ?? {}).filter((key) => !list.variables.includes(key));
      expect(unknown, name).toEqual([]);
    }
  });

  it('starts in order, runs two API and two worker replicas, and keeps operator ports on loopback', () => {
    const { services } = loadCompose();
    expect(Object.keys(services).sort()).toEqual([...SERVICE_NAMES].sort());
    const dependsOn = (name: ServiceName) =>
      Object.fromEntries(Object.entries(services[name].depends_on ?? {}).map(([k, v]) => [k, v.condition]));
    expect(dependsOn('temporal')).toEqual({ 'temporal-schema': 'service_completed_successfully' });
    expect(dependsOn('temporal-namespace')).toEqual({ temporal: 'service_healthy' });
    for (const name of ['api', 'worker'] as const) {
      expect(dependsOn(name), name).toEqual({
        migrate: 'service_completed_successfully',
        'temporal-namespace': 'service_completed_successfully',
      });
      expect(services[name].deploy?.replicas, name).toBe(2);
    }
    // The UI's image is not known to carry a client to probe itself with, and nothing waits on it.
    const unprobed = new Set(['temporal-ui']);
    for (const [name, service] of Object.entries(services)) {
      const oneShot = service.restart === 'no';
      if (!unprobed.has(name))
        expect(Boolean(service.healthcheck) || oneShot, `${name} has a health check`).toBe(true);
      if (name !== 'api')
        for (const port of service.ports ?? []) expect(port, name).toMatch(/^127\.0\.0\.1:/);
    }
    expect(services['temporal-ui'].ports).toEqual(['127.0.0.1:8233:8080']);
    expect(services.temporal.image).toMatch(/^temporalio\/server:/);
    expect(COMPOSE_TEXT).not.toMatch(/start-dev|--search-attribute/);
  });
});

describe('docker-compose.yml scripts, run for real', () => {
  const services = loadCompose().services;

  it('api health check: healthy on 200 from /ready, unhealthy on 503 or no answer', async () => {
    let status = 200;
    const server = http.createServer((req, res) => {
      res.statusCode = req.url === '/ready' ? status : 404;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const api = structuredClone(services.api);
    // The same script, pointed at this stand-in instead of the container's port 3000.
    api.healthcheck!.test = api.healthcheck!.test.map((arg) => arg.replace(':3000/', `:${port}/`));
    try {
      expect((await runHealthcheck(api, {})).code).toBe(0);
      status = 503;
      expect((await runHealthcheck(api, {})).code).toBe(1);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    expect((await runHealthcheck(api, {})).code).toBe(1);
  });

  it('worker health check: healthy only while a worker of this host polls the task queue', async () => {
    const { temporalAddress } = testStack();
    const connection = await Connection.connect({ address: temporalAddress });
    const polls = new AbortController();
    const pollAs = (taskQueue: string, identity: string) =>
      connection
        .withAbortSignal(polls.signal, () =>
          connection.withDeadline(Date.now() + 30_000, () =>
            connection.workflowService.pollWorkflowTaskQueue({
              namespace: 'default',
              taskQueue: { name: taskQueue },
              identity,
            }),
          ),
        )
        .catch(() => undefined);
    const check = (taskQueue: string, address = temporalAddress) =>
      runHealthcheck(services.worker, { TEMPORAL_ADDRESS: address, TEMPORAL_TASK_QUEUE: taskQueue });
    try {
      const idle = `compose-idle-${randomUUID()}`;
      expect((await check(idle)).code).toBe(1);

      const elsewhere = `compose-elsewhere-${randomUUID()}`;
      void pollAs(elsewhere, `1@not-${os.hostname()}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect((await check(elsewhere)).code).toBe(1);

      const here = `compose-here-${randomUUID()}`;
      void pollAs(here, `${process.pid}@${os.hostname()}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const healthy = await check(here);
      expect(healthy.code, healthy.output).toBe(0);
    } finally {
      polls.abort();
      await connection.close();
    }
    // Temporal unreachable: unhealthy, within the check's own deadline.
    expect((await check('any', '127.0.0.1:1')).code).toBe(1);
  });

  it('namespace job: creates the namespace, and succeeds again once it exists', async () => {
    const { temporalAddress } = testStack();
    const cli = await ensureTemporalCli(() => undefined);
    const namespace = `compose-${randomUUID()}`;
    const job = loadCompose({ ...SECRETS, TEMPORAL_NAMESPACE: namespace }).services['temporal-namespace'];
    const [shell, flags, script] = job.command ?? [];
    if (!shell || !flags || !script) throw new Error('temporal-namespace: expected [sh, -ec, script]');
    const local = script.replaceAll('temporal:7233', temporalAddress);
    const env = { PATH: `${path.dirname(cli)}:${process.env.PATH ?? ''}` };
    const first = await run(shell, [flags, local], env);
    expect(first.code, first.output).toBe(0);
    const again = await run(shell, [flags, local], env);
    expect(again.code, again.output).toBe(0);
    const described = await run(
      cli,
      ['operator', 'namespace', 'describe', '--address', temporalAddress, '-n', namespace],
      env,
    );
    expect(described.code, described.output).toBe(0);
  });
});
