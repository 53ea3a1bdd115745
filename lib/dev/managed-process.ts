// Development only: one child process of the cluster (Temporal, the UI, an API, a worker) that can be
// stopped, killed and started again, its output forwarded line by line to one log stream.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  log: (name: string, line: string) => void;
  /** Resolves once the process serves; it is raced against the process exiting. */
  ready?: () => Promise<void>;
  /** Called when the process exits without being asked to (crash, kill -9 from outside). */
  onUnexpectedExit?: (name: string, how: string) => void;
  /** SIGTERM, then SIGKILL after this long. */
  stopGraceMs?: number;
}

export interface ManagedProcess {
  readonly name: string;
  pid(): number | undefined;
  running(): boolean;
  /** Starts it (again): resolves when `ready` does. */
  start(): Promise<void>;
  /** SIGTERM, SIGKILL after the grace period; resolves when it is gone. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL, the fault tests' kill -9) and resolves when it is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  restart(): Promise<void>;
}

const TAIL_LINES = 30;

export function managedProcess(spec: ProcessSpec): ManagedProcess {
  let child: ChildProcess | undefined;
  let exited: Promise<string> = Promise.resolve('not started');
  let expectingExit = false;
  const tail: string[] = [];
  const killOnParentExit = () => child?.kill('SIGKILL');

  const isRunning = () => !!child && child.exitCode === null && child.signalCode === null;

  const start = async () => {
    if (isRunning()) return;
    expectingExit = false;
    tail.length = 0;
    const proc = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    for (const stream of [proc.stdout, proc.stderr]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        spec.log(spec.name, line);
      });
    }
    exited = new Promise((resolve) => {
      proc.once('error', (err) => resolve(`failed to start: ${err.message}`));
      proc.once('exit', (code, signal) => resolve(code !== null ? `exit code ${code}` : `signal ${signal}`));
    });
    process.on('exit', killOnParentExit);
    void exited.then((how) => {
      process.off('exit', killOnParentExit);
      if (!expectingExit && child === proc) spec.onUnexpectedExit?.(spec.name, how);
    });
    if (!spec.ready) return;
    const outcome = await Promise.race([spec.ready().then(() => undefined), exited]);
    if (outcome !== undefined) {
      const output = tail.length ? `\n--- last output ---\n${tail.join('\n')}` : ' (no output)';
      throw new Error(`${spec.name} (${spec.command}) ${outcome} before it was ready${output}`);
    }
  };

  const signalAndWait = async (signal: NodeJS.Signals, graceMs: number) => {
    if (!isRunning()) return;
    expectingExit = true;
    const proc = child!;
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.kill(signal);
    await exited;
    clearTimeout(timer);
  };

  return {
    name: spec.name,
    pid: () => (isRunning() ? child?.pid : undefined),
    running: isRunning,
    start,
    stop: () => signalAndWait('SIGTERM', spec.stopGraceMs ?? 15_000),
    kill: (signal = 'SIGKILL') => signalAndWait(signal, 5_000),
    restart: async () => {
      await signalAndWait('SIGTERM', spec.stopGraceMs ?? 15_000);
      await start();
    },
  };
}
