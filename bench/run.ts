// `npm run bench [-- <name>... [--seconds N] [--clients N] [--cluster]]`: runs each benchmark in turn (all by
// default). A benchmark is a module exporting a `Bench`; add it to BENCHES below, and its variant on the
// real cluster (lib/dev/cluster.ts) to ON_CLUSTER.
import { parseArgs } from 'node:util';
import fairness from './fairness';
import generations from './generations';
import generationsOnCluster from './generations-cluster';
import ledger from './ledger';
import readPath from './read-path';

export interface BenchOptions {
  /** Wall time each measurement runs for. */
  seconds: number;
  /** Concurrent clients driving each measurement. */
  clients: number;
  log: (line: string) => void;
}

export interface Bench {
  name: string;
  description: string;
  run(opts: BenchOptions): Promise<void>;
}

const BENCHES: Bench[] = [ledger, generations, fairness, readPath];
/** `--cluster`: these run in place of the bench of the same name. */
const ON_CLUSTER: Bench[] = [generationsOnCluster];

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      clients: { type: 'string', default: '16' },
      cluster: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
  });
  const usage = `usage: npm run bench -- [${BENCHES.map((b) => b.name).join('|')}]... [--seconds N] [--clients N] [--cluster]`;
  if (values.help) {
    const lines = [
      ...BENCHES.map((b) => `  ${b.name}: ${b.description}`),
      ...ON_CLUSTER.map((b) => `  ${b.name} --cluster: ${b.description}`),
    ];
    console.log(`${usage}\n${lines.join('\n')}`);
    return 0;
  }
  const seconds = Number(values.seconds);
  const clients = Number(values.clients);
  if (!(seconds > 0) || !Number.isInteger(clients) || clients < 1) {
    console.error(`--seconds must be > 0 and --clients a whole number >= 1\n${usage}`);
    return 64;
  }
  const unknown = positionals.filter((p) => !BENCHES.some((b) => b.name === p));
  if (unknown.length) {
    console.error(`unknown bench: ${unknown.join(', ')}\n${usage}`);
    return 64;
  }
  let selected = positionals.length ? BENCHES.filter((b) => positionals.includes(b.name)) : BENCHES;
  if (values.cluster) {
    const without = selected.filter((b) => !ON_CLUSTER.some((c) => c.name === b.name));
    if (without.length) {
      console.error(`--cluster: no cluster variant of ${without.map((b) => b.name).join(', ')}\n${usage}`);
      return 64;
    }
    selected = selected.map((b) => ON_CLUSTER.find((c) => c.name === b.name)!);
  }
  for (const bench of selected) {
    console.log(`\n== ${bench.name}: ${bench.description}`);
    const started = Date.now();
    await bench.run({ seconds, clients, log: (line) => console.log(line) });
    console.log(`== ${bench.name} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
