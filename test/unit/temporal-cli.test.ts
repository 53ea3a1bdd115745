import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureTemporalCli, TEMPORAL_CLI_VERSION } from '../../lib/temporal/cli';
import { startTemporalDevServer, VELRO_SEARCH_ATTRIBUTES } from '../../lib/temporal/dev-server';

const ENV_KEYS = ['TEMPORAL_CLI', 'PATH', 'VELRO_CACHE_DIR', 'XDG_CACHE_HOME'] as const;
const FAKE_CLI = `#!/bin/sh\necho "temporal version ${TEMPORAL_CLI_VERSION} (Server 0.0.0, UI 0.0.0)"\n`;

async function writeExecutable(file: string, content: string, mode = 0o755): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
  await chmod(file, mode);
  return file;
}

function acceptsConnections(address: string): Promise<boolean> {
  const [host, port] = address.split(':');
  return new Promise((resolve) => {
    const socket = connect(Number(port), host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('ensureTemporalCli resolution order', () => {
  const saved: Partial<Record<(typeof ENV_KEYS)[number], string>> = {};
  let dir: string;
  const logs: string[] = [];
  const log = (m: string) => logs.push(m);

  beforeEach(async () => {
    for (const key of ENV_KEYS) saved[key] = process.env[key];
    dir = await mkdtemp(path.join(tmpdir(), 'velro-cli-test-'));
    logs.length = 0;
    // Nothing relevant on PATH and an empty cache, so no step below can reach the network.
    process.env.PATH = await mkdtemp(path.join(dir, 'bin-'));
    process.env.VELRO_CACHE_DIR = path.join(dir, 'cache');
    delete process.env.TEMPORAL_CLI;
  });

  afterEach(async () => {
    for (const key of ENV_KEYS) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('prefers TEMPORAL_CLI over everything else', async () => {
    const fake = await writeExecutable(path.join(dir, 'fake', 'temporal'), FAKE_CLI);
    await writeExecutable(path.join(process.env.PATH!, 'temporal'), FAKE_CLI);
    process.env.TEMPORAL_CLI = fake;

    await expect(ensureTemporalCli(log)).resolves.toBe(fake);
  });

  it('throws naming TEMPORAL_CLI when it is not executable', async () => {
    process.env.TEMPORAL_CLI = await writeExecutable(path.join(dir, 'not-exec'), FAKE_CLI, 0o644);

    await expect(ensureTemporalCli(log)).rejects.toThrow(/TEMPORAL_CLI/);
  });

  it('uses temporal from PATH before the cache', async () => {
    const onPath = await writeExecutable(path.join(process.env.PATH!, 'temporal'), FAKE_CLI);
    await writeExecutable(
      path.join(dir, 'cache', `temporal-cli-${TEMPORAL_CLI_VERSION}`, 'temporal'),
      FAKE_CLI,
    );

    await expect(ensureTemporalCli(log)).resolves.toBe(onPath);
    expect(logs).toEqual([]); // right version: nothing to warn about
  });

  it('uses the cached copy when PATH has no temporal', async () => {
    const cached = path.join(dir, 'cache', `temporal-cli-${TEMPORAL_CLI_VERSION}`, 'temporal');
    await writeExecutable(cached, FAKE_CLI);

    await expect(ensureTemporalCli(log)).resolves.toBe(cached);
    expect(logs).toEqual([]);
  });

  it('finds the cache under XDG_CACHE_HOME when VELRO_CACHE_DIR is unset', async () => {
    delete process.env.VELRO_CACHE_DIR;
    process.env.XDG_CACHE_HOME = path.join(dir, 'xdg');
    const cached = path.join(dir, 'xdg', 'velro', `temporal-cli-${TEMPORAL_CLI_VERSION}`, 'temporal');
    await writeExecutable(cached, FAKE_CLI);

    await expect(ensureTemporalCli(log)).resolves.toBe(cached);
  });
});

describe('real Temporal CLI dev server', () => {
  it('starts with the Velro search attributes and stops cleanly', async () => {
    const cliPath = await ensureTemporalCli();
    const dir = await mkdtemp(path.join(tmpdir(), 'velro-devserver-test-'));
    const server = await startTemporalDevServer({
      cliPath,
      uiPort: false,
      dbFile: path.join(dir, 'nested', 'temporal.db'),
      searchAttributes: VELRO_SEARCH_ATTRIBUTES,
    });
    try {
      const connection = await Connection.connect({ address: server.address });
      try {
        const { customAttributes } = await connection.operatorService.listSearchAttributes({
          namespace: 'default',
        });
        for (const name of Object.keys(VELRO_SEARCH_ATTRIBUTES)) {
          expect(customAttributes).toHaveProperty(name);
        }
      } finally {
        await connection.close();
      }
    } finally {
      await server.stop();
      await server.stop(); // idempotent
      await rm(dir, { recursive: true, force: true });
    }
    expect(await acceptsConnections(server.address)).toBe(false);
  });

  it('rejects at once with the output when the server exits early', async () => {
    const cliPath = await ensureTemporalCli();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    const started = Date.now();
    try {
      await expect(startTemporalDevServer({ cliPath, uiPort: false, port })).rejects.toThrow(
        /exited early[\s\S]*address already in use/,
      );
    } finally {
      blocker.close();
    }
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
