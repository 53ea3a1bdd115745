// Development only: the Temporal Web UI for the cluster. The CLI's UI only comes with its own dev
// server (`temporal server start-dev`), so this is the standalone UI server, github.com/temporalio/ui-server,
// whose Go module ships the built web assets: fetched or built once, cached like temporal-server.
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cacheDir } from './cli';
import { errorText, exec, isExecutable } from './cluster-exec';
import { managedProcess, type ManagedProcess } from '../dev/managed-process';
import { downloadAndExtract, goInstall } from './server-binary';

/** The UI server version the pinned CLI (1.9.1) embeds, so the UI is the one `npm start` shows. */
export const TEMPORAL_UI_VERSION = '2.54.1';
const PREFIX = '[temporal-ui]';

export function uiReleaseArchiveUrl(): string {
  const arch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
  return `https://github.com/temporalio/ui-server/releases/download/v${TEMPORAL_UI_VERSION}/ui-server_${TEMPORAL_UI_VERSION}_${process.platform}_${arch}.tar.gz`;
}

export async function ensureUiServer(log: (m: string) => void): Promise<string> {
  const dir = path.join(cacheDir(), `temporal-ui-server-${TEMPORAL_UI_VERSION}`);
  const bin = path.join(dir, 'temporal-ui-server');
  if (await isExecutable(bin)) return bin;
  await mkdir(dir, { recursive: true });
  const workDir = await mkdtemp(path.join(dir, '.tmp-'));
  const failures: string[] = [];
  try {
    for (const [name, fetchInto, built] of [
      ['release archive', (d: string) => downloadAndExtract(uiReleaseArchiveUrl(), d), 'ui-server'],
      [
        'Go build',
        (d: string) =>
          goInstall(`github.com/temporalio/ui-server/v2/cmd/server@v${TEMPORAL_UI_VERSION}`, d, log, PREFIX),
        'server',
      ],
    ] as const) {
      try {
        log(`${PREFIX} trying the ${name} …`);
        await fetchInto(workDir);
        const candidate = path.join(workDir, built);
        const { stdout } = await exec(candidate, ['--version'], { timeoutMs: 30_000 });
        if (!stdout.includes(TEMPORAL_UI_VERSION)) throw new Error(`it reports "${stdout.trim()}"`);
        await rename(candidate, bin);
        log(`${PREFIX} installed ${bin}`);
        return bin;
      } catch (err) {
        log(`${PREFIX} ${name} failed: ${errorText(err)}`);
        failures.push(`${name}: ${errorText(err)}`);
      }
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  throw new Error(`Could not get the Temporal UI server ${TEMPORAL_UI_VERSION}: ${failures.join('; ')}`);
}

export interface UiServerOptions {
  bin: string;
  /** Where its config directory is written. */
  dir: string;
  temporalAddress: string;
  port: number;
  namespace: string;
  log: (name: string, line: string) => void;
  onUnexpectedExit?: (name: string, how: string) => void;
}

/** The UI on 127.0.0.1 only (it has no auth here); `start()` resolves when it answers HTTP. */
export async function uiServerProcess(opts: UiServerOptions): Promise<ManagedProcess> {
  const configDir = path.join(opts.dir, 'config');
  await mkdir(configDir, { recursive: true });
  const config = [
    `temporalGrpcAddress: ${JSON.stringify(opts.temporalAddress)}`,
    `host: "127.0.0.1"`,
    `port: ${opts.port}`,
    'enableUi: true',
    `defaultNamespace: ${JSON.stringify(opts.namespace)}`,
    'disableNewsFetch: true',
    'notifyOnNewVersion: false',
    'cors:',
    '  cookieInsecure: true',
    'auth:',
    '  enabled: false',
    '',
  ].join('\n');
  await writeFile(path.join(configDir, 'cluster.yaml'), config);
  const url = `http://127.0.0.1:${opts.port}`;
  return managedProcess({
    name: 'ui',
    command: opts.bin,
    args: ['--root', opts.dir, '--config', 'config', '--env', 'cluster', 'start'],
    env: process.env,
    log: opts.log,
    onUnexpectedExit: opts.onUnexpectedExit,
    ready: () => untilHttpOk(url, 30_000),
  });
}

export async function untilHttpOk(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not answer within ${timeoutMs / 1000} s: ${String(last)}`);
}
