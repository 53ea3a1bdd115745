// Development only: the cluster's temporal-server configuration, made from the module's
// config/development-postgres12.yaml with the addresses, login, ports and paths of this machine.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { TemporalDbLogin } from './cluster-schema';
import type { TemporalServerInstall } from './server-binary';

export interface ServerPorts {
  frontendGrpc: number;
  frontendHttp: number;
  frontendMembership: number;
  history: number;
  historyMembership: number;
  matching: number;
  matchingMembership: number;
  worker: number;
  workerMembership: number;
  metrics: number;
}

/** Writes `<dir>/temporal-server.yaml` and its dynamic config; returns the config file's path. */
export async function writeServerConfig(
  install: TemporalServerInstall,
  dir: string,
  login: TemporalDbLogin,
  ports: ServerPorts,
): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const dynamicConfig = path.join(dir, 'dynamicconfig.yaml');
  const dynamicTemplate = await fs.readFile(install.dynamicConfigTemplate, 'utf8');
  // Nexus callbacks go to the frontend's HTTP port, which the template assumes is 7243.
  await fs.writeFile(
    dynamicConfig,
    dynamicTemplate.replaceAll('localhost:7243', `127.0.0.1:${ports.frontendHttp}`),
  );

  const db = `${login.host}:${login.port}`;
  const values: Record<string, string | number> = {
    'log.level': 'warn',
    'global.pprof.port': 0, // 0: off
    'global.metrics.prometheus.listenAddress': `127.0.0.1:${ports.metrics}`,
    'services.frontend.rpc.grpcPort': ports.frontendGrpc,
    'services.frontend.rpc.httpPort': ports.frontendHttp,
    'services.frontend.rpc.membershipPort': ports.frontendMembership,
    'services.history.rpc.grpcPort': ports.history,
    'services.history.rpc.membershipPort': ports.historyMembership,
    'services.matching.rpc.grpcPort': ports.matching,
    'services.matching.rpc.membershipPort': ports.matchingMembership,
    'services.worker.rpc.grpcPort': ports.worker,
    'services.worker.rpc.membershipPort': ports.workerMembership,
    'clusterMetadata.clusterInformation.active.rpcAddress': `127.0.0.1:${ports.frontendGrpc}`,
    'dynamicConfigClient.filepath': dynamicConfig,
  };
  for (const store of ['postgres-default', 'postgres-visibility']) {
    const base = `persistence.datastores.${store}.sql`;
    Object.assign(values, {
      [`${base}.connectAddr`]: db,
      [`${base}.user`]: login.user,
      [`${base}.password`]: login.password,
    });
  }
  const template = await fs.readFile(install.configTemplate, 'utf8');
  const file = path.join(dir, 'temporal-server.yaml');
  await fs.writeFile(file, setYamlValues(template, values), { mode: 0o600 });
  return file;
}

/**
 * Replaces the scalar at each dotted key path of a block-style YAML document (no YAML library in
 * the project; the template is pinned). Throws when a path is missing, so a changed template fails
 * loudly instead of starting with its defaults.
 */
export function setYamlValues(yaml: string, values: Record<string, string | number>): string {
  const stack: { indent: number; key: string }[] = [];
  const seen = new Set<string>();
  const lines = yaml.split('\n').map((line) => {
    const match = /^( *)([A-Za-z0-9_.-]+):(.*)$/.exec(line);
    if (!match) return line;
    const indent = match[1]!.length;
    while (stack.length && stack[stack.length - 1]!.indent >= indent) stack.pop();
    stack.push({ indent, key: match[2]! });
    const keyPath = stack.map((s) => s.key).join('.');
    if (!(keyPath in values)) return line;
    seen.add(keyPath);
    const value = values[keyPath]!;
    return `${match[1]}${match[2]}: ${typeof value === 'number' ? value : JSON.stringify(value)}`;
  });
  const missing = Object.keys(values).filter((k) => !seen.has(k));
  if (missing.length) throw new Error(`the temporal-server config template has no ${missing.join(', ')}`);
  return lines.join('\n');
}
