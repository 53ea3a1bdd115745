// Small defects of a generation's life, each fixed with its test: the `done` event's URL lifetime,
// provider log lines counted once, repeated lines kept in the event stream, and a first poll
// interval that the worker chooses (not the API).
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firstPollIntervals } from '../../lib/generations/poll';
import { LocalProvider } from '../../lib/providers/local-provider';
import type { ProviderJob, ProviderStatus } from '../../lib/providers/provider';
import { generationWorkflowId, progressQuery } from '../../workflows/definitions';
import { createUser, startHarness, submitGeneration, waitFor, type Harness } from '../support/context';

interface SseEvent {
  event?: string;
  data?: unknown;
}

/** A whole Server-Sent Events stream, read over real HTTP until the server closes it. */
async function readStream(url: string, headers: Record<string, string>): Promise<SseEvent[]> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(30_000) });
  expect(res.status).toBe(200);
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.trim() && !block.startsWith(':') && !block.startsWith('retry'))
    .map((block) => {
      const e: SseEvent = {};
      for (const line of block.split('\n')) {
        const [field, ...rest] = line.split(': ');
        if (field === 'event') e.event = rest.join(': ');
        if (field === 'data') e.data = JSON.parse(rest.join(': '));
      }
      return e;
    });
}

/**
 * The local renderer, except that its status answers, poll after poll, with the latest log line
 * of this script (as fal and Replicate report their logs): `step 1` twice, `step 2` twice, then
 * `step 1` again, a line that genuinely repeats an earlier one; then success, still showing it.
 */
const SCRIPT = ['step 1', 'step 1', 'step 2', 'step 2', 'step 1'];
class ScriptedLogs extends LocalProvider {
  private readonly polls = new Map<string, number>();
  override async status(job: ProviderJob): Promise<ProviderStatus> {
    const n = this.polls.get(job.requestId) ?? 0;
    this.polls.set(job.requestId, n + 1);
    if (n < SCRIPT.length) return { state: 'running', logs: [SCRIPT[n]!] };
    return { state: 'succeeded', logs: [SCRIPT[SCRIPT.length - 1]!] };
  }
}

const TTL_SECONDS = 600;

describe('a generation, end to end', () => {
  let h: Harness;
  let base: string;
  beforeAll(async () => {
    h = await startHarness(
      { LOCAL_PROVIDER_LATENCY_MS: '400', ASSET_URL_TTL_SECONDS: String(TTL_SECONDS) },
      {
        providers: {
          local: new ScriptedLogs({ latencyMs: 0, failureRate: 0 }),
          fal: undefined,
          replicate: undefined,
        },
      },
    );
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => h?.stop());

  const submit = (auth: Record<string, string>) =>
    submitGeneration(h.app, auth, { model: 'imagen4-ultra', input: { prompt: 'scripted logs' } });

  it('keeps each provider log line once, and the stream sends a repeated line again', async () => {
    const user = await createUser(h.db, 100);
    const id = await submit(user.auth);
    const events = await readStream(`${base}/v1/generations/${id}/events`, user.auth);
    const streamed = events
      .filter((e) => e.event === 'progress')
      .flatMap((e) => (e.data as { logs: string[] }).logs);
    expect(streamed).toEqual(['step 1', 'step 2', 'step 1']);
    expect(events[events.length - 1]?.event).toBe('done');

    const progress = await h.temporal.workflow.getHandle(generationWorkflowId(id)).query(progressQuery);
    expect(progress.logs).toEqual(['step 1', 'step 2', 'step 1']);
    expect(progress.logCount).toBe(3);
  });

  it('signs the output URLs of the done event for ASSET_URL_TTL_SECONDS', async () => {
    const user = await createUser(h.db, 100);
    const id = await submit(user.auth);
    const events = await readStream(`${base}/v1/generations/${id}/events`, user.auth);
    const done = events[events.length - 1]!;
    expect(done.event).toBe('done');
    const outputs = (done.data as { outputs: { url: string }[] }).outputs;
    expect(outputs).toHaveLength(1);
    const expires = Number(new URL(outputs[0]!.url).searchParams.get('expires'));
    const left = expires - Date.now() / 1000;
    expect(left).toBeGreaterThan(TTL_SECONDS - 60);
    expect(left).toBeLessThanOrEqual(TTL_SECONDS + 1);

    // The same lifetime as GET /v1/generations/:id gives.
    const got = await h.app.inject({ url: `/v1/generations/${id}`, headers: user.auth });
    const getExpires = Number(new URL(got.json().outputs[0].url).searchParams.get('expires'));
    expect(Math.abs(getExpires - expires)).toBeLessThan(60);
  });

  it("starts the workflow without a poll interval: the worker's admission chooses it", async () => {
    const user = await createUser(h.db, 100);
    const id = await submit(user.auth);
    const handle = h.temporal.workflow.getHandle(generationWorkflowId(id));
    await waitFor(
      () => handle.describe(),
      (d) => d.status.name === 'COMPLETED',
    );
    const history = await handle.fetchHistory();
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    const input = JSON.parse(Buffer.from(started!.input!.payloads![0]!.data!).toString('utf8'));
    expect(input.generationId).toBe(id);
    expect(input).not.toHaveProperty('pollInitialMs');
    // The admission's answer, recorded in the history (a local activity's marker), carries it:
    // LOCAL_PROVIDER_LATENCY_MS 400 → 100 ms.
    const recorded = (history.events ?? [])
      .flatMap((e) => Object.values(e.markerRecordedEventAttributes?.details ?? {}))
      .flatMap((p) => p.payloads ?? [])
      .map((p) => Buffer.from(p.data ?? []).toString('utf8'));
    expect(recorded.some((text) => /"pollInitialMs":100\b/.test(text))).toBe(true);
  });
});

describe('firstPollIntervals', () => {
  it('takes PROVIDER_POLL_INITIAL_MS for fal and Replicate, a quarter of its latency for the local renderer', () => {
    expect(firstPollIntervals({ PROVIDER_POLL_INITIAL_MS: 2000, LOCAL_PROVIDER_LATENCY_MS: 1500 })).toEqual({
      local: 375,
      fal: 2000,
      replicate: 2000,
    });
    expect(firstPollIntervals({ PROVIDER_POLL_INITIAL_MS: 500, LOCAL_PROVIDER_LATENCY_MS: 0 }).local).toBe(
      100,
    );
    expect(
      firstPollIntervals({ PROVIDER_POLL_INITIAL_MS: 500, LOCAL_PROVIDER_LATENCY_MS: 600_000 }).local,
    ).toBe(1000);
  });
});
