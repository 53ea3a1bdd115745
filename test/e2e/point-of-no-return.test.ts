// Money at the end of a generation, through HTTP with a real worker: once the provider has reported
// success the generation is stored and charged (a cancel is refused), and a generation that ends
// failed or canceled lists and serves no output, even one stored before the failure.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signAssetPath } from '../../lib/auth/signed-urls';
import { withUserTx } from '../../lib/db/pool';
import { LocalProvider } from '../../lib/providers/local-provider';
import type {
  OutputSource,
  Provider,
  ProviderJob,
  ProviderStatus,
  SubmitRequest,
} from '../../lib/providers/provider';
import { createUser, startHarness, submitGeneration, waitFor, type Harness } from '../support/context';

type LocalSource = Extract<OutputSource, { kind: 'local' }>;

/**
 * A provider that finishes every job at once with real PNGs rendered by the local renderer, and does
 * what the prompt asks: `slow-store` holds the download until the test releases it;
 * `second-not-media` has a second output that is an HTML page declared as image/png;
 * `never-finishes` stays running, `stays-queued` queued; `hold-submit` holds the submit until the
 * test releases it.
 */
/** A step the test holds: `reached` resolves when the step starts, which then waits for `release`. */
class Hold {
  reached = Promise.resolve();
  private arrive: () => void = () => undefined;
  private held = Promise.resolve();
  release: () => void = () => undefined;

  /** Holds the next time the step runs. */
  arm(): this {
    this.held = new Promise<void>((r) => (this.release = r));
    this.reached = new Promise<void>((r) => (this.arrive = r));
    return this;
  }

  async pass(): Promise<void> {
    this.arrive();
    await this.held;
  }
}

class ScriptedProvider implements Provider {
  readonly name = 'local' as const;
  private readonly renderer = new LocalProvider({ latencyMs: 0, failureRate: 0 });
  readonly download = new Hold();
  readonly submission = new Hold();
  readonly canceled = new Set<string>();

  async submit(req: SubmitRequest) {
    if (req.input.prompt.includes('hold-submit')) await this.submission.pass();
    return { requestId: `scripted-${req.generationId}` };
  }

  async status(job: ProviderJob): Promise<ProviderStatus> {
    const prompt = job.input.prompt;
    if (prompt.includes('stays-queued')) return { state: 'queued', queuePosition: 4, logs: [] };
    if (prompt.includes('never-finishes') || prompt.includes('hold-submit'))
      return { state: 'running', logs: [] };
    return { state: 'succeeded', logs: [] };
  }
  async result(job: ProviderJob): Promise<OutputSource[]> {
    const prompt = job.input.prompt;
    const source = (seed: number): LocalSource => ({
      kind: 'local',
      media: 'image',
      prompt,
      seed,
      width: 64,
      height: 64,
    });
    return prompt.includes('second-not-media') ? [source(1), source(2)] : [source(1)];
  }
  async cancel(job: ProviderJob) {
    this.canceled.add(job.requestId);
  }
  async openLocal(source: LocalSource) {
    if (source.prompt.includes('slow-store')) await this.download.pass();
    if (source.prompt.includes('second-not-media') && source.seed === 2) {
      const page = '<!doctype html><script>fetch("/v1/credits")</script>';
      return { body: Readable.from([Buffer.from(page)]), contentType: 'image/png' };
    }
    return this.renderer.openLocal(source);
  }
}

describe('the point of no return', () => {
  const provider = new ScriptedProvider();
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({}, { providers: { local: provider, fal: undefined, replicate: undefined } });
  });
  afterAll(() => h?.stop());

  const submit = (auth: Record<string, string>, prompt: string) =>
    submitGeneration(h.app, auth, { model: 'imagen4-ultra', input: { prompt } });
  const get = (auth: Record<string, string>, id: string) =>
    h.app.inject({ url: `/v1/generations/${id}`, headers: auth }).then((r) => r.json());
  const ended = (auth: Record<string, string>, id: string) =>
    waitFor(
      () => get(auth, id),
      (g) => ['succeeded', 'failed', 'canceled'].includes(g.status),
    );
  const credits = (auth: Record<string, string>) =>
    h.app.inject({ url: '/v1/credits', headers: auth }).then((r) => r.json());
  const cancel = (auth: Record<string, string>, id: string) =>
    h.app.inject({ method: 'POST', url: `/v1/generations/${id}/cancel`, headers: auth });

  it('refuses a cancel while the outputs are being stored (409 not_cancelable): stored, charged, served', async () => {
    const user = await createUser(h.db, 100);
    const download = provider.download.arm();
    const id = await submit(user.auth, 'slow-store: a lighthouse');
    await download.reached;

    const refused = await cancel(user.auth, id);
    expect(refused.statusCode).toBe(409);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.json()).toMatchObject({ code: 'not_cancelable', status: 409 });
    // An operator's cancel from the Temporal UI or CLI does not cut the download either.
    await h.temporal.workflow.getHandle(`generation-${id}`).cancel();
    download.release();

    const done = await ended(user.auth, id);
    expect(done).toMatchObject({ status: 'succeeded', credits: { amount: 45, state: 'charged' } });
    expect(done.outputs).toHaveLength(1);
    expect(await credits(user.auth)).toEqual({ available: 55, reserved: 0, spent: 45 });
    const asset = await h.app.inject({ url: done.outputs[0].url.replace(/^https?:\/\/[^/]+/, '') });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['content-type']).toBe('image/png');
    expect(asset.rawPayload.subarray(1, 4).toString()).toBe('PNG');
  });

  it('refuses a cancel after success with 409 not_cancelable and changes nothing', async () => {
    const user = await createUser(h.db, 100);
    const id = await submit(user.auth, 'a quick one');
    expect((await ended(user.auth, id)).status).toBe('succeeded');
    const refused = await cancel(user.auth, id);
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ code: 'not_cancelable' });
    expect(await get(user.auth, id)).toMatchObject({ status: 'succeeded', credits: { state: 'charged' } });
    expect(await credits(user.auth)).toEqual({ available: 55, reserved: 0, spent: 45 });
  });

  it('refuses an output that is not media (HTML declared as image/png) after output 1 was stored: refunded, nothing listed or served', async () => {
    const user = await createUser(h.db, 100);
    const id = await submit(user.auth, 'second-not-media: a harbour');
    const done = await ended(user.auth, id);
    expect(done).toMatchObject({
      status: 'failed',
      error: { code: 'output_unavailable' },
      credits: { state: 'refunded' },
      outputs: [],
    });
    expect(await credits(user.auth)).toEqual({ available: 100, reserved: 0, spent: 0 });

    // Output 1 was stored before output 2 was refused; it is never served, by key or by signed URL.
    const stored = await withUserTx(h.db, user.userId, (tx) =>
      tx.query<{ id: string; position: number; content_type: string }>(
        'SELECT id, position, content_type FROM assets WHERE generation_id = $1',
        [id],
      ),
    );
    expect(stored.rows).toEqual([{ id: expect.any(String), position: 0, content_type: 'image/png' }]);
    const first = stored.rows[0]!.id;
    const byKey = await h.app.inject({ url: `/v1/assets/${first}`, headers: user.auth });
    expect(byKey.statusCode).toBe(404);
    const signed = await h.app.inject({ url: signAssetPath(Buffer.alloc(32, 7), first, 3600) });
    expect(signed.statusCode).toBe(404);
    expect(signed.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it.each([
    ['while it is being submitted', 'hold-submit'],
    ['while queued at the provider', 'stays-queued'],
    ['while running at the provider', 'never-finishes'],
  ])(
    'accepts a cancel %s: 202, cancelled there, refunded, no output; a repeated cancel is a 202 too',
    async (_stage, prompt) => {
      const user = await createUser(h.db, 100);
      const submission = prompt === 'hold-submit' ? provider.submission.arm() : undefined;
      const id = await submit(user.auth, `${prompt}: a comet`);
      if (submission) await submission.reached;
      else
        await waitFor(
          () => get(user.auth, id),
          (g) => g.status === 'running',
        );

      const accepted = await cancel(user.auth, id);
      expect(accepted.statusCode).toBe(202);
      submission?.release();
      expect(await ended(user.auth, id)).toMatchObject({
        status: 'canceled',
        error: { code: 'canceled' },
        credits: { state: 'refunded' },
        outputs: [],
      });
      expect(await credits(user.auth)).toEqual({ available: 100, reserved: 0, spent: 0 });
      // What reached the provider was cancelled there (a submit in flight finishes first, then is cancelled).
      expect(provider.canceled.has(`scripted-${id}`)).toBe(true);
      const again = await cancel(user.auth, id);
      expect(again.statusCode).toBe(202);
      expect(again.json()).toMatchObject({ status: 'canceled' });
    },
  );
});
