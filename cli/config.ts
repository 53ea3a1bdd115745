import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface CliConfig {
  url: string;
  key?: string;
}

export function configFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return env.VELRO_CONFIG || path.join(base, 'velro', 'config.json');
}

async function readFileConfig(env: NodeJS.ProcessEnv): Promise<Partial<CliConfig>> {
  try {
    return JSON.parse(await fs.readFile(configFile(env), 'utf8')) as Partial<CliConfig>;
  } catch {
    return {};
  }
}

/** Flags win over the environment, which wins over the config file written by `velro login`. */
export async function resolveConfig(
  flags: { url?: string; key?: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<CliConfig> {
  const file = await readFileConfig(env);
  return {
    url: (flags.url ?? env.VELRO_URL ?? file.url ?? 'http://localhost:3000').replace(/\/$/, ''),
    key: flags.key ?? env.VELRO_API_KEY ?? file.key,
  };
}

export async function saveConfig(config: CliConfig, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const file = configFile(env);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await fs.writeFile(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  return file;
}
