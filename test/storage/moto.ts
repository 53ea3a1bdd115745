import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from '../../lib/net/free-port';

/** Kept equal to MOTO_VERSION in scripts/setup-moto.sh. */
export const MOTO_VERSION = '5.2.5';
export const MOTO_INSTALL = `bash scripts/setup-moto.sh  (python3 -m pip install --user 'moto[server]==${MOTO_VERSION}')`;

/** moto accepts any credentials; the SDK reads these from the environment (its default chain). */
export const MOTO_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'velro-test', AWS_SECRET_ACCESS_KEY: 'velro-test' };

/** `python3 -m moto.server ARGS`, exiting when its standard input closes. */
const SERVE = [
  'import os, sys, threading',
  'from moto.server import main',
  'threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()',
  'main(sys.argv[1:])',
].join('\n');

export interface MotoServer {
  endpoint: string;
  /** An SDK client on the server, for checks from outside the storage driver. */
  client: S3Client;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The installed moto's version, or a failure naming the install command: a missing server must
 * fail the S3 tests, never skip them.
 */
async function checkMoto(): Promise<void> {
  let version: string;
  try {
    const { stdout } = await promisify(execFile)(
      'python3',
      ['-c', 'import moto, moto.server; print(moto.__version__)'],
      { timeout: 60_000 },
    );
    version = stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const why = (e.stderr?.trim().split('\n').at(-1) ?? e.message).slice(0, 300);
    throw new Error(
      `The S3 storage tests need moto's S3 server for python3, which is missing (${why}). Install it with:\n  ${MOTO_INSTALL}`,
    );
  }
  if (version !== MOTO_VERSION) {
    throw new Error(
      `The S3 storage tests run against moto ${MOTO_VERSION}, but python3 has moto ${version}. Install the pinned one with:\n  ${MOTO_INSTALL}`,
    );
  }
}

/** Starts moto's server on a free loopback port and waits until it answers. */
export async function startMoto(): Promise<MotoServer> {
  await checkMoto();
  let lastError: Error | undefined;
  // A port found free can be taken before moto binds it: then try another.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    // stdin stays open while this process lives: the server quits at its end, even after a crash.
    const child = spawn('python3', ['-c', SERVE, '-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    const keep = (chunk: Buffer) => {
      output.push(chunk.toString());
      if (output.length > 50) output.shift();
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const endpoint = `http://127.0.0.1:${port}`;
    try {
      await waitUntilAnswering(endpoint, child, exited, () => output.join(''));
    } catch (err) {
      lastError = err as Error;
      await stopChild(child, exited);
      if (/address already in use/i.test(output.join(''))) continue;
      throw err;
    }
    const client = new S3Client({
      region: 'us-east-1',
      endpoint,
      forcePathStyle: true,
      credentials: {
        accessKeyId: MOTO_CREDENTIALS.AWS_ACCESS_KEY_ID,
        secretAccessKey: MOTO_CREDENTIALS.AWS_SECRET_ACCESS_KEY,
      },
    });
    return {
      endpoint,
      client,
      async createBucket(name) {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      },
      async stop() {
        client.destroy();
        await stopChild(child, exited);
      },
    };
  }
  throw lastError ?? new Error('moto did not start');
}

async function waitUntilAnswering(
  endpoint: string,
  child: ChildProcess,
  exited: Promise<number | null>,
  output: () => string,
): Promise<void> {
  const until = Date.now() + 60_000;
  let gone = false;
  void exited.then(() => (gone = true));
  for (;;) {
    if (gone || child.exitCode !== null) {
      throw new Error(`moto's server exited with ${child.exitCode} before answering:\n${output()}`);
    }
    try {
      // Any HTTP answer means it is serving.
      const res = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > until) throw new Error(`moto's server did not answer within 60 s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const stopped = await Promise.race([
    exited.then(() => true),
    new Promise<false>((r) => setTimeout(() => r(false), 5000)),
  ]);
  if (!stopped) {
    child.kill('SIGKILL');
    await exited;
  }
}
