import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../lib/net/free-port';
import { PROJECT_ROOT } from '../../lib/paths';
import { createUser, startHarness, type Harness } from '../support/context';
import { pngImage, RED } from '../support/images';
import { runAdmin } from '../support/scripts';

const run = promisify(execFile);

describe('the velro CLI against a running service', () => {
  let h: Harness;
  let url: string;
  let home: string;
  let user: Awaited<ReturnType<typeof createUser>>;

  /** Runs `velro ARGS` as a user would (the package bin), with only the config file to remember the key. */
  async function velro(args: string[], env: Record<string, string> = {}) {
    try {
      const { stdout, stderr } = await run(
        process.execPath,
        [path.join(PROJECT_ROOT, 'bin/velro.js'), ...args],
        {
          env: { PATH: process.env.PATH, HOME: home, VELRO_CONFIG: path.join(home, 'velro.json'), ...env },
          timeout: 60_000,
        },
      );
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  beforeAll(async () => {
    // Output URLs must point at this server, so its address is known before the configuration is.
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '1500', PORT: String(port), VELRO_PUBLIC_URL: url });
    await h.app.listen({ port, host: '127.0.0.1' });
    home = await fs.mkdtemp(path.join(os.tmpdir(), 'velro-cli-'));
    user = await createUser(h.db, 200);
  });
  afterAll(async () => {
    await h?.stop();
    if (home) await fs.rm(home, { recursive: true, force: true });
  });

  it('logs in, remembers the key, and lists models and credits', async () => {
    const login = await velro(['login', '--url', url, '--key', user.apiKey]);
    expect(login.code).toBe(0);
    expect(login.stdout).toContain(user.email);
    const saved = JSON.parse(await fs.readFile(path.join(home, 'velro.json'), 'utf8'));
    expect(saved).toEqual({ url, key: user.apiKey });

    const models = await velro(['models', '--json']);
    expect(models.code).toBe(0);
    expect(JSON.parse(models.stdout).map((m: { id: string }) => m.id)).toContain('veo3');
    const credits = await velro(['credits', '--json']);
    expect(JSON.parse(credits.stdout)).toEqual({ available: 200, reserved: 0, spent: 0 });
  });

  it('generates, waits on the event stream and saves the PNG', async () => {
    const out = path.join(home, 'out.png');
    const res = await velro([
      'generate',
      '--model',
      'imagen4-ultra',
      'a',
      'paper',
      'boat',
      '--input',
      'aspect_ratio=16:9',
      '--priority',
      '8',
      '--wait',
      '--out',
      out,
      '--json',
    ]);
    expect(res.code, res.stderr).toBe(0);
    const gen = JSON.parse(res.stdout);
    expect(gen).toMatchObject({ status: 'succeeded', credits: { state: 'charged' } });
    const png = await fs.readFile(out);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.readUInt32BE(16)).toBe(1024);
    expect(png.readUInt32BE(20)).toBe(576);

    const list = await velro(['list', '--json']);
    expect(JSON.parse(list.stdout).map((g: { id: string }) => g.id)).toContain(gen.id);
  });

  it('says clearly what is wrong', async () => {
    const badModel = await velro(['generate', '--model', 'dalle-9', 'x']);
    expect(badModel.code).toBe(1);
    expect(badModel.stderr).toMatch(/invalid_request/);
    const noKey = await velro(['credits'], { VELRO_CONFIG: path.join(home, 'none.json') });
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toMatch(/velro login/);
    const unknown = await velro(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command/);
    const wrongKey = await velro(['credits', '--key', 'vk_' + 'x'.repeat(43)]);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/unauthorized/);
  });

  it('cancels a generation and gets a refund', async () => {
    const before = JSON.parse((await velro(['credits', '--json'])).stdout);
    const started = await velro(['generate', '--model', 'imagen4-ultra', 'never', 'mind', '--json']);
    const id = JSON.parse(started.stdout).id;
    const cancel = await velro(['cancel', id, '--json']);
    expect(cancel.code, cancel.stderr).toBe(0);
    let state = JSON.parse(cancel.stdout);
    for (let i = 0; i < 50 && state.status !== 'canceled'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      state = JSON.parse((await velro(['get', id, '--json'])).stdout);
    }
    expect(state).toMatchObject({ status: 'canceled', credits: { state: 'refunded' } });
    expect(JSON.parse((await velro(['credits', '--json'])).stdout)).toEqual(before);
  });
  it('uploads an image, and generates from a local file (uploaded first) with --image', async () => {
    const cat = await createUser(h.db, 350);
    const asCat = { VELRO_URL: url, VELRO_API_KEY: cat.apiKey };
    const file = path.join(home, 'cat.png');
    await fs.writeFile(file, pngImage(64, 36, RED));
    const uploaded = await velro(['upload', file, '--json'], asCat);
    expect(uploaded.code, uploaded.stderr).toBe(0);
    expect(JSON.parse(uploaded.stdout)).toMatchObject({ contentType: 'image/png', width: 64, height: 36 });
    const human = await velro(['upload', file], asCat);
    expect(human.stdout).toMatch(
      /^[0-9a-f-]{36} {2}image\/png {2}64x36 {2}\d+ bytes\nuse it as upload:[0-9a-f-]{36}/,
    );

    const gen = await velro(
      ['generate', '--model', 'kling-v2.1-master', '--image', file, 'the cat walks away', '--wait', '--json'],
      asCat,
    );
    expect(gen.code, gen.stderr).toBe(0);
    expect(gen.stderr).toMatch(/uploaded .*cat\.png: upload [0-9a-f-]{36} \(64x36\)/);
    const done = JSON.parse(gen.stdout);
    expect(done).toMatchObject({
      status: 'succeeded',
      outputs: [{ contentType: 'image/gif' }],
      inputs: [{ field: 'image_url', contentType: 'image/png', width: 64, height: 36 }],
    });
    // The file was uploaded anew for the generation, and the generation names that upload.
    expect(done.input.image_url).toBe(`upload:${done.inputs[0].uploadId}`);
    expect(done.inputs[0].uploadId).not.toBe(JSON.parse(uploaded.stdout).id);
  });

  it('refuses files that are not images, an end image without a start image, and a priority out of range', async () => {
    const notes = path.join(home, 'notes.txt');
    await fs.writeFile(notes, 'not a picture');
    const upload = await velro(['upload', notes]);
    expect(upload.code).toBe(2);
    expect(upload.stderr).toContain('is not a PNG, JPEG or WebP image');
    const missing = await velro([
      'generate',
      '--model',
      'wan-pro',
      '--image',
      path.join(home, 'nope.png'),
      'x',
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read .*nope\.png: ENOENT/);
    const endOnly = await velro(['generate', '--model', 'hailuo-02-pro', '--end-image', notes, 'x']);
    expect(endOnly.code).toBe(2);
    expect(endOnly.stderr).toContain('--end-image needs --image');
    const badPriority = await velro(['generate', '--model', 'wan-pro', '--priority', '11', 'x']);
    expect(badPriority.code).toBe(2);
    expect(badPriority.stderr).toContain('--priority must be a whole number from 1 to 10');
    expect(JSON.parse((await velro(['credits', '--json'])).stdout).reserved).toBe(0);
  });

  it('runs a team: create, invite, accept, grant, limit, generate --team, usage', async () => {
    const ann = await createUser(h.db);
    const owner = { VELRO_URL: url, VELRO_API_KEY: user.apiKey };
    const asAnn = { VELRO_URL: url, VELRO_API_KEY: ann.apiKey };
    const created = await velro(['teams', 'create', 'Studio', '--json'], owner);
    expect(created.code).toBe(0);
    const team = JSON.parse(created.stdout) as { id: string; role: string };
    expect(team.role).toBe('owner');

    const invite = await velro(['teams', 'invite', team.id, ann.email, '--role', 'member', '--json'], owner);
    expect(invite.code).toBe(0);
    const { token } = JSON.parse(invite.stdout) as { token: string };
    const accepted = await velro(['teams', 'accept', token], asAnn);
    expect(accepted.stdout).toMatch(/^joined team .* as member/);

    await runAdmin(['grant', '--team', team.id, '--credits', '500', '--reason', 'cli test']);
    const limit = await velro(['teams', 'limit', team.id, ann.userId, '100'], owner);
    expect(limit.stdout).toContain('limit 100');
    const listed = await velro(['teams', '--json'], asAnn);
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ id: team.id, role: 'member' })]);

    const gen = await velro(
      ['generate', '--model', 'imagen4-ultra', 'a team fox', '--team', team.id, '--wait', '--json'],
      asAnn,
    );
    expect(gen.code).toBe(0);
    expect(JSON.parse(gen.stdout)).toMatchObject({ status: 'succeeded', teamId: team.id });
    // 45 of Ann's 100 are spent; a second 45 fits, a third does not.
    await velro(['generate', '--model', 'imagen4-ultra', 'again', '--team', team.id, '--wait'], asAnn);
    const over = await velro(['generate', '--model', 'imagen4-ultra', 'once more', '--team', team.id], asAnn);
    expect(over.code).toBe(1);
    expect(over.stderr).toContain('spend_limit_exceeded');

    const credits = await velro(['credits', '--team', team.id, '--json'], owner);
    expect(JSON.parse(credits.stdout)).toMatchObject({ available: 410, spent: 90 });
    const usage = await velro(['teams', 'usage', team.id, '--json'], owner);
    expect(JSON.parse(usage.stdout).data).toEqual([
      expect.objectContaining({ userId: ann.userId, model: 'imagen4-ultra', count: 2, spent: 90 }),
    ]);
    const members = await velro(['teams', 'members', team.id], owner);
    expect(members.stdout).toContain(ann.email);
  });
});
