/**
 * The fault cases fal and Replicate share, written once: test/e2e/providers-fal.test.ts and
 * providers-replicate.test.ts run them inside their own describes (on their harness and fake),
 * next to the cases only one provider has. A provider differs only in its words, its fakes' fault
 * tokens and where it finds requests and jobs; the few assertions one provider makes beyond the
 * other's are its `also` hooks, kept in its own test file.
 */
import { expect, it } from 'vitest';
import type { Delivery, RecordedRequest } from '../fakes/http';
import { createUser, waitFor, type Harness } from './context';
import {
  expectChargedOnce,
  expectRefundedOnce,
  fetchOutput,
  getGeneration,
  settled,
  submit,
} from './provider-e2e';

export type FaultCaseId =
  | 'duplicate-webhooks'
  | 'start-429'
  | 'start-503'
  | 'start-422'
  | 'provider-failure'
  | 'content-policy'
  | 'output-404'
  | 'no-webhook'
  | 'poll-hang'
  | 'poll-500-malformed';

/** What a case hands a provider's extra assertions (`also`). */
export interface CaseState {
  prompt: string;
  /** The generation as the API shows it once it ended. */
  done: Generation;
  /** The same generation read again, where the case reads it again. */
  after?: Generation;
  deliveries?: Delivery[];
  calls?: RecordedRequest[];
}

/** The API's JSON for a generation, as the tests read it. */
type Generation = Awaited<ReturnType<typeof getGeneration>>;

/** A fake provider as the shared cases see it. */
export interface FaultTarget {
  /** The enclosing describe's harness, once its beforeAll has run. */
  harness(): Harness;
  /** A prompt of each test's own carrying fault tokens: the fakes key faults and counts by prompt. */
  prompt(faults?: string): string;
  /** The provider's words in the test names. */
  words: {
    /** What starts a job: fal submits, Replicate creates. */
    start: 'submit' | 'create';
    /** A status read: fal's 'status call', Replicate's 'GET'. */
    poll: string;
    /** Its answer, as the test name says it. */
    pollAnswer: string;
    /** A job that ends in the provider's own error. */
    failedJob: string;
  };
  /** The fake's fault tokens (see test/fakes/*-server.ts). */
  faults: {
    start429: string;
    start503: string;
    start422: string;
    failed: string;
    pollHang: string;
    poll500: string;
    pollMalformed: string;
  };
  /** What the error message contains: the provider's own error, the field a 422 at start names. */
  messages: { failed: string; start422: string };
  /** Every request that started, or tried to start, a job with this prompt. */
  starts(prompt: string): RecordedRequest[];
  /** The fake's jobs (fal requests, Replicate predictions) with this prompt. */
  jobsWith(prompt: string): unknown[];
  /** The status reads of the job with this prompt. */
  polls(prompt: string): RecordedRequest[];
  /** The webhooks the fake sent about the job with this prompt. */
  deliveries(prompt: string): Delivery[];
  /** The sha256 of the job's first output, as the fake serves it. */
  outputSha256(prompt: string): string;
  /** Assertions only this provider makes, run at a fixed point of the named case. */
  also?: Partial<Record<FaultCaseId, (s: CaseState) => void | Promise<void>>>;
}

/** A generation with these fault tokens, submitted for a new user holding 200 credits, once it has ended. */
async function ended(t: FaultTarget, faults: string) {
  const h = t.harness();
  const user = await createUser(h.db, 200);
  const p = t.prompt(faults);
  const created = await submit(h, user, { prompt: p });
  const done = await settled(h, user, created.id);
  return { h, user, p, created, done };
}

interface FaultCase {
  id: FaultCaseId;
  name(words: FaultTarget['words']): string;
  run(t: FaultTarget, also: (s: CaseState) => void | Promise<void>): Promise<void>;
}

/** Cases for a harness that polls every 10 s: only a webhook can make them quick. */
const WEBHOOK_DRIVEN: FaultCase[] = [
  {
    id: 'duplicate-webhooks',
    name: () => 'answers duplicate and late webhooks 200 and changes nothing: one output, one charge',
    async run(t, also) {
      const { h, user, p, created, done } = await ended(t, '#dup-webhook');
      expect(done.status).toBe('succeeded');
      const deliveries = await waitFor(
        async () => t.deliveries(p),
        (d) => d.length === 3 && d.every((x) => x.status !== 'pending'),
      );
      expect(deliveries.map((d) => d.status)).toEqual([200, 200, 200]);
      const after = await getGeneration(h, user, created.id);
      expect(after.status).toBe('succeeded');
      expect(after.outputs).toHaveLength(1);
      await also({ prompt: p, done, after, deliveries });
      await expectChargedOnce(h, user, created.id, 200, 50);
    },
  },
  {
    id: 'start-429',
    name: (w) => `honours Retry-After on a 429 at ${w.start}, then ${w.start}s once more and succeeds`,
    async run(t, also) {
      const { h, user, p, created, done } = await ended(t, t.faults.start429);
      expect(done.status).toBe('succeeded');
      const attempts = t.starts(p);
      expect(attempts).toHaveLength(2);
      // Retry-After: 2 s; the activity's own first retry would come after 1 s.
      expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(1900);
      await also({ prompt: p, done });
      expect(t.jobsWith(p)).toHaveLength(1);
      await expectChargedOnce(h, user, created.id, 200, 50);
    },
  },
  {
    id: 'start-503',
    name: (w) => `retries a 503 gateway error at ${w.start} and succeeds`,
    async run(t, also) {
      const { h, user, p, created, done } = await ended(t, t.faults.start503);
      expect(done.status).toBe('succeeded');
      expect(t.starts(p)).toHaveLength(2);
      await also({ prompt: p, done });
      await expectChargedOnce(h, user, created.id, 200, 50);
    },
  },
  {
    id: 'provider-failure',
    name: (w) => `fails a ${w.failedJob} as provider_error with its message, and refunds once`,
    async run(t, also) {
      const { h, user, p, created, done } = await ended(t, t.faults.failed);
      expect(done.status).toBe('failed');
      expect(done.error.code).toBe('provider_error');
      expect(done.error.message).toContain(t.messages.failed);
      expect(done.credits).toEqual({ amount: 50, state: 'refunded' });
      await also({ prompt: p, done });
      await expectRefundedOnce(h, user, created.id, 200, 50);
    },
  },
  {
    id: 'start-422',
    name: (w) => `fails a 422 at ${w.start} as invalid_input naming the field, without retrying it`,
    async run(t, also) {
      const { h, user, p, created, done } = await ended(t, t.faults.start422);
      expect(done.status).toBe('failed');
      expect(done.error.code).toBe('invalid_input');
      expect(done.error.message).toContain(t.messages.start422);
      expect(t.starts(p)).toHaveLength(1);
      await also({ prompt: p, done });
      await expectRefundedOnce(h, user, created.id, 200, 50);
    },
  },
  {
    id: 'content-policy',
    name: () => 'fails a content-policy refusal as content_policy, and refunds once',
    async run(t, also) {
      const { h, user, p, created, done } = await ended(t, '#content-policy');
      expect(done.status).toBe('failed');
      expect(done.error.code).toBe('content_policy');
      await also({ prompt: p, done });
      await expectRefundedOnce(h, user, created.id, 200, 50);
    },
  },
  {
    id: 'output-404',
    name: () => 'fails when the output URL answers 404 (output_unavailable), and refunds once',
    async run(t, also) {
      const { h, user, p, created, done } = await ended(t, '#output-404');
      expect(done.status).toBe('failed');
      expect(done.error.code).toBe('output_unavailable');
      await also({ prompt: p, done });
      await expectRefundedOnce(h, user, created.id, 200, 50);
    },
  },
];

/** Cases for a harness that polls every 300 ms and that no webhook reaches. */
const POLLING: FaultCase[] = [
  {
    id: 'no-webhook',
    name: () => 'finishes by polling when no webhook ever arrives',
    async run(t, also) {
      const { h, user, p, created, done } = await ended(t, '#no-webhook');
      expect(done.status).toBe('succeeded');
      expect(t.deliveries(p)).toEqual([]);
      await also({ prompt: p, done });
      expect((await fetchOutput(h, done.outputs[0])).sha256).toBe(t.outputSha256(p));
      await expectChargedOnce(h, user, created.id, 200, 50);
    },
  },
  {
    id: 'poll-hang',
    name: (w) => `times out a ${w.poll} that hangs (1 s limit), retries it and succeeds`,
    async run(t, also) {
      const { h, user, p, created, done } = await ended(t, `${t.faults.pollHang} #no-webhook`);
      expect(done.status).toBe('succeeded');
      const calls = t.polls(p);
      await also({ prompt: p, done, calls });
      // The hung call was abandoned after the adapter's 1 s timeout, not the fake's 5 s hang.
      expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(1000);
      expect(calls[1]!.at - calls[0]!.at).toBeLessThan(4500);
      await expectChargedOnce(h, user, created.id, 200, 50);
    },
  },
  {
    id: 'poll-500-malformed',
    name: (w) => `retries a 500 and a malformed JSON ${w.pollAnswer}, and succeeds`,
    async run(t) {
      const h = t.harness();
      const user = await createUser(h.db, 200);
      const a = await submit(h, user, { prompt: t.prompt(`${t.faults.poll500} #no-webhook`) });
      const b = await submit(h, user, { prompt: t.prompt(`${t.faults.pollMalformed} #no-webhook`) });
      for (const id of [a.id, b.id]) expect((await settled(h, user, id)).status).toBe('succeeded');
      expect((await getGeneration(h, user, a.id)).credits).toEqual({ amount: 50, state: 'charged' });
      expect((await getGeneration(h, user, b.id)).credits).toEqual({ amount: 50, state: 'charged' });
    },
  },
];

function register(cases: FaultCase[], t: FaultTarget): void {
  for (const c of cases) {
    it(c.name(t.words), () => c.run(t, (s) => t.also?.[c.id]?.(s)));
  }
}

/** Registers the shared cases for a provider whose harness polls every 10 s (webhooks make it quick). */
export function webhookDrivenFaultCases(t: FaultTarget): void {
  register(WEBHOOK_DRIVEN, t);
}

/** Registers the shared cases for a provider whose harness polls every 300 ms and gets no webhook. */
export function pollingFaultCases(t: FaultTarget): void {
  register(POLLING, t);
}
