import fs from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ApiCallError, VelroClient } from './client';
import { resolveConfig, saveConfig } from './config';
import { teams, TEAMS_USAGE } from './teams';
import { UsageError, type Out } from './usage';

const USAGE = `velro — the Velro API from a terminal

Usage:
  velro login [--url URL] [--key KEY]        check a key and save it (or read it from VELRO_API_KEY)
  velro models                              the model catalog
  velro credits [--team TEAM]               your balance (or the team's)
  velro upload FILE [--team TEAM]           store a PNG, JPEG or WebP image; prints its upload
  velro generate --model ID "prompt" [--image FILE|URL] [--end-image FILE|URL]
                 [--input key=value ...] [--team TEAM] [--priority 1-10] [--wait] [--out FILE]
                                            a local --image file is uploaded first (the team's
                                            with --team), a URL is passed as it is
  velro list [--status S] [--model ID] [--team TEAM] [--limit N]
  velro get ID
  velro cancel ID
${TEAMS_USAGE}

Options: --url (VELRO_URL), --key (VELRO_API_KEY), --json for machine-readable output.
The config file is ~/.config/velro/config.json (VELRO_CONFIG overrides).`;

interface Upload {
  id: string;
  contentType: string;
  bytes: number;
  width: number;
  height: number;
}

/** The image type by its magic bytes, as the server checks it; undefined for anything else. */
function imageTypeOf(bytes: Buffer): string | undefined {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    return 'image/png';
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') {
    return 'image/webp';
  }
  return undefined;
}

async function uploadFile(client: VelroClient, file: string, team: string | undefined): Promise<Upload> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    throw new UsageError(
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const type = imageTypeOf(bytes);
  if (!type) throw new UsageError(`${file} is not a PNG, JPEG or WebP image`);
  return client.upload<Upload>(bytes, type, team);
}

/** An image option: a URL or an `upload:` reference as given, a local file uploaded first. */
async function imageRef(client: VelroClient, value: string, team: string | undefined): Promise<string> {
  if (/^https?:\/\//i.test(value) || value.startsWith('upload:')) return value;
  const upload = await uploadFile(client, value, team);
  process.stderr.write(`uploaded ${value}: upload ${upload.id} (${upload.width}x${upload.height})\n`);
  return `upload:${upload.id}`;
}

interface Generation {
  id: string;
  model: string;
  status: string;
  stage: string;
  credits: { amount: number; state: string };
  outputs: { url: string; contentType: string; width: number | null; height: number | null; bytes: number }[];
  error: { code: string; message: string } | null;
  createdAt: string;
}

/** `key=value` → value as JSON when it parses (numbers, booleans), else the string. */
function parseInputs(pairs: string[]): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--input takes key=value, got "${pair}"`);
    const raw = pair.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a plain string
    }
    input[pair.slice(0, eq)] = value;
  }
  return input;
}

function progressBar(stage: string, percent: number | undefined): string {
  const width = 24;
  const filled = Math.round(((percent ?? 0) / 100) * width);
  return `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${stage.padEnd(28)}`;
}

async function generate(
  client: VelroClient,
  args: {
    model?: string;
    prompt?: string;
    inputs: string[];
    image?: string;
    endImage?: string;
    team?: string;
    priority?: string;
    wait: boolean;
    outFile?: string;
    json: boolean;
  },
  out: Out,
) {
  const priority = args.priority === undefined ? undefined : Number(args.priority);
  if (priority !== undefined && !(Number.isInteger(priority) && priority >= 1 && priority <= 10))
    throw new UsageError('--priority must be a whole number from 1 to 10');
  if (!args.model) throw new UsageError('generate needs --model (see `velro models`)');
  if (!args.prompt) throw new UsageError('generate needs a prompt');
  if (args.endImage && !args.image) throw new UsageError('--end-image needs --image');
  const images: Record<string, string> = {};
  if (args.image) images.image_url = await imageRef(client, args.image, args.team);
  if (args.endImage) images.end_image_url = await imageRef(client, args.endImage, args.team);
  let gen = await client.request<Generation>('POST', '/v1/generations', {
    model: args.model,
    input: { prompt: args.prompt, ...parseInputs(args.inputs), ...images },
    ...(args.team ? { teamId: args.team } : {}),
    ...(priority !== undefined ? { priority } : {}),
  });
  if (!args.json)
    process.stderr.write(`generation ${gen.id}: ${gen.status} (${gen.credits.amount} credits reserved)\n`);
  if (args.wait || args.outFile) {
    const live = !args.json && process.stderr.isTTY;
    for await (const { event, data } of client.events(gen.id)) {
      if (event === 'progress' && live && typeof data.queuePosition === 'number') {
        process.stderr.write(progressBar(`${String(data.stage)} (#${data.queuePosition})`, undefined));
      } else if (event === 'progress' && live) {
        const last = (data.logs as string[] | undefined)?.at(-1) ?? '';
        const percent = Number(/(\d+)%/.exec(last)?.[1] ?? NaN);
        process.stderr.write(progressBar(String(data.stage), Number.isNaN(percent) ? undefined : percent));
      } else if (event === 'status' && !args.json) {
        process.stderr.write(
          `${live ? '\r' : ''}${String(data.status)}: ${String(data.stage)}${live ? ' '.repeat(20) : ''}\n`,
        );
      } else if (event === 'done') {
        gen = data as unknown as Generation;
      }
    }
  }
  if (args.outFile) {
    if (gen.status !== 'succeeded' || !gen.outputs[0]) {
      throw new ApiCallError(
        0,
        gen.error?.code ?? gen.status,
        `generation ${gen.status}: ${gen.error?.message ?? ''}`,
      );
    }
    await fs.writeFile(args.outFile, await client.download(gen.outputs[0].url));
  }
  out(
    `${gen.id}  ${gen.status}  ${gen.credits.amount} credits ${gen.credits.state}` +
      (gen.outputs[0] ? `\n${gen.outputs[0].url}` : '') +
      (args.outFile && gen.status === 'succeeded' ? `\nsaved to ${args.outFile}` : '') +
      (gen.error ? `\n${gen.error.code}: ${gen.error.message}` : ''),
    gen,
  );
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      key: { type: 'string' },
      json: { type: 'boolean', default: false },
      model: { type: 'string' },
      input: { type: 'string', multiple: true, default: [] },
      wait: { type: 'boolean', default: false },
      out: { type: 'string' },
      status: { type: 'string' },
      limit: { type: 'string' },
      team: { type: 'string' },
      role: { type: 'string' },
      month: { type: 'string' },
      image: { type: 'string' },
      'end-image': { type: 'string' },
      priority: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, ...rest] = positionals;
  const out: Out = (human, json) =>
    process.stdout.write(`${values.json ? JSON.stringify(json, null, 2) : human}\n`);
  if (!command || values.help) {
    process.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 2;
  }
  const config = await resolveConfig({ url: values.url, key: values.key });
  const client = new VelroClient(config);
  try {
    switch (command) {
      case 'login': {
        const me = await client.request<{ email: string; credits: { available: number } }>('GET', '/v1/me');
        const file = await saveConfig(config);
        out(
          `logged in to ${config.url} as ${me.email} (${me.credits.available} credits); saved to ${file}`,
          me,
        );
        return 0;
      }
      case 'models': {
        const { data } = await client.request<{
          data: { id: string; kind: string; credits: number; name: string }[];
        }>('GET', '/v1/models');
        out(
          data
            .map(
              (m) =>
                `${m.id.padEnd(22)} ${m.kind.padEnd(6)} ${String(m.credits).padStart(4)} credits  ${m.name}`,
            )
            .join('\n'),
          data,
        );
        return 0;
      }
      case 'credits': {
        const c = await client.request<{ available: number; reserved: number; spent: number }>(
          'GET',
          values.team ? `/v1/teams/${encodeURIComponent(values.team)}/credits` : '/v1/credits',
        );
        out(`available ${c.available}  reserved ${c.reserved}  spent ${c.spent}`, c);
        return 0;
      }
      case 'generate':
        await generate(
          client,
          {
            model: values.model,
            prompt: rest.join(' '),
            inputs: values.input ?? [],
            image: values.image,
            endImage: values['end-image'],
            team: values.team,
            priority: values.priority,
            wait: values.wait ?? false,
            outFile: values.out,
            json: values.json ?? false,
          },
          out,
        );
        return 0;
      case 'upload': {
        const file = rest[0];
        if (!file || rest.length > 1) throw new UsageError('upload needs one FILE');
        const u = await uploadFile(client, file, values.team);
        out(
          `${u.id}  ${u.contentType}  ${u.width}x${u.height}  ${u.bytes} bytes\nuse it as upload:${u.id}`,
          u,
        );
        return 0;
      }
      case 'list': {
        const q = new URLSearchParams();
        if (values.status) q.set('status', values.status);
        if (values.model) q.set('model', values.model);
        if (values.limit) q.set('limit', values.limit);
        if (values.team) q.set('teamId', values.team);
        const { data } = await client.request<{ data: Generation[] }>('GET', `/v1/generations?${q}`);
        out(
          data.map((g) => `${g.id}  ${g.model.padEnd(22)} ${g.status.padEnd(9)} ${g.createdAt}`).join('\n') ||
            '(none)',
          data,
        );
        return 0;
      }
      case 'get':
      case 'cancel': {
        const id = rest[0];
        if (!id) throw new UsageError(`${command} needs a generation id`);
        const g = await client.request<Generation>(
          command === 'get' ? 'GET' : 'POST',
          `/v1/generations/${id}${command === 'cancel' ? '/cancel' : ''}`,
        );
        out(`${g.id}  ${g.status}  ${g.stage}  ${g.credits.amount} credits ${g.credits.state}`, g);
        return 0;
      }
      case 'teams':
        await teams(client, rest, { role: values.role, month: values.month }, out);
        return 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`velro: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (err instanceof ApiCallError) {
      process.stderr.write(`velro: ${err.message}${err.code ? ` (${err.code})` : ''}\n`);
      return 1;
    }
    throw err;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`velro: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
