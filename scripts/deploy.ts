// `npm run deploy -- <command>`: which worker build new generations start on (README, Rolling out).
//   status              the deployment's builds: current, draining (pinned generations left), drained
//   promote <build id>  make that build current; rolling back is promoting the previous build again
// Reads TEMPORAL_ADDRESS (else the `npm start` stack), TEMPORAL_NAMESPACE, TEMPORAL_DEPLOYMENT_NAME.
//
// Exit codes: 0 done · 1 refused or failed · 2 cannot connect · 64 bad usage.
import { Connection } from '@temporalio/client';
import { loadConfig } from '../lib/config';
import { resolveEndpoints } from '../lib/wiring/endpoints';
import {
  describeDeployment,
  setCurrentBuild,
  type DeploymentTarget,
} from '../lib/temporal/worker-deployment';

const EXIT = { ok: 0, refused: 1, unreachable: 2, usage: 64 } as const;
const USAGE = 'usage: npm run deploy -- status | promote <build id>';

class CommandError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

async function run(argv: string[]): Promise<string> {
  const [command, ...rest] = argv;
  if (command === 'status' && rest.length === 0) return withTarget(status);
  if (command === 'promote' && rest.length === 1 && rest[0]!.trim())
    return withTarget((target) => promote(target, rest[0]!.trim()));
  throw new CommandError(EXIT.usage, USAGE);
}

async function status(target: DeploymentTarget): Promise<string> {
  const { currentBuildId, builds } = await describeDeployment(target);
  const lines = builds.map(
    (b) => `${b.buildId}\t${b.status}${b.createdAt ? `\tfirst seen ${b.createdAt.toISOString()}` : ''}`,
  );
  return [
    `deployment ${target.deploymentName}: current build ${currentBuildId ?? '(none: unversioned)'}`,
    ...lines,
  ].join('\n');
}

async function promote(target: DeploymentTarget, buildId: string): Promise<string> {
  const previous = await setCurrentBuild(target, buildId);
  if (!previous || previous === buildId) return `build ${buildId} is current`;
  return (
    `build ${buildId} is current (was ${previous}). Generations that started on ${previous} stay on it: ` +
    `keep its workers until \`npm run deploy -- status\` shows it drained.`
  );
}

async function withTarget(work: (target: DeploymentTarget) => Promise<string>): Promise<string> {
  const config = loadConfig();
  let connection: Connection;
  try {
    const { temporalAddress } = resolveEndpoints(config, { temporal: true });
    connection = await Connection.connect({ address: temporalAddress, connectTimeout: '10 seconds' });
  } catch (err) {
    throw new CommandError(EXIT.unreachable, `cannot connect to Temporal: ${messageOf(err)}`);
  }
  try {
    return await work({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      deploymentName: config.TEMPORAL_DEPLOYMENT_NAME,
    });
  } finally {
    await connection.close();
  }
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

run(process.argv.slice(2)).then(
  (out) => {
    console.log(out);
    process.exit(EXIT.ok);
  },
  (err: unknown) => {
    console.error(`deploy: ${messageOf(err)}`);
    process.exit(err instanceof CommandError ? err.exitCode : EXIT.refused);
  },
);
