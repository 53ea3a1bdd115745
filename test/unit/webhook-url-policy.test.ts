import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { postWebhook } from '../../lib/webhooks/http';
import {
  addressProblem,
  checkWebhookUrl,
  parseWebhookUrl,
  webhookUrlPolicy,
  WebhookUrlRefused,
  type LookupAll,
} from '../../lib/webhooks/url-policy';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver';

const production = { requireHttps: true, allowPrivate: false };
const development = { requireHttps: false, allowPrivate: true };

/** A resolver with fixed answers; any other name does not exist. */
function fakeDns(answers: Record<string, string[]>): LookupAll {
  return async (hostname) => {
    const addresses = answers[hostname];
    if (!addresses)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

describe('which addresses webhooks may reach', () => {
  it.each([
    ['0.0.0.0', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'shared (carrier-grade NAT)'],
    ['224.0.0.251', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.10', 'documentation'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456:789a::1', 'unique-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    ['64:ff9b::a9fe:a9fe', 'link-local'],
    ['2002:c0a8:0101::1', 'private'],
    ['2001:db8::1', 'documentation'],
  ])('refuses %s (%s)', (address, why) => {
    expect(addressProblem(address)).toBe(why);
  });

  it.each([
    '93.184.215.14',
    '8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
  ])('accepts the public address %s', (address) => {
    expect(addressProblem(address)).toBeUndefined();
  });
});

describe('webhook URLs as clients give them', () => {
  it('in production: https only, no internal IP literals, no credentials, no local names', () => {
    expect(parseWebhookUrl('https://hooks.example.com/velro?x=1', production).hostname).toBe(
      'hooks.example.com',
    );
    expect(parseWebhookUrl('https://93.184.215.14/hook', production).hostname).toBe('93.184.215.14');
    for (const url of [
      'http://hooks.example.com/velro',
      'https://127.0.0.1/hook',
      'https://2130706433/hook', // 127.0.0.1 in disguise: the URL parser normalises it
      'https://0x7f.1/hook',
      'https://[::1]/hook',
      'https://[::ffff:127.0.0.1]/hook',
      'https://[fd00::1]/hook',
      'https://169.254.169.254/latest/meta-data',
      'https://10.0.0.8/hook',
      'https://localhost/hook',
      'https://api.localhost/hook',
      'https://intranet/hook',
      'https://user:pass@hooks.example.com/velro',
      'ftp://hooks.example.com/velro',
      'not a url',
    ]) {
      expect(() => parseWebhookUrl(url, production), url).toThrow(WebhookUrlRefused);
    }
  });

  it('outside production: http and local receivers are fine', () => {
    expect(parseWebhookUrl('http://127.0.0.1:9000/hook', development).port).toBe('9000');
    expect(parseWebhookUrl('http://localhost:9000/hook', development).hostname).toBe('localhost');
    expect(() => parseWebhookUrl('ftp://127.0.0.1/hook', development)).toThrow(WebhookUrlRefused);
  });

  it.each([{}, { NODE_ENV: 'development' }, { NODE_ENV: 'test' }])(
    'with the default configuration (%o) refuses http and private targets',
    async (env) => {
      const policy = webhookUrlPolicy(loadConfig(env));
      const dns = fakeDns({ 'hooks.example.com': ['93.184.215.14'], 'inside.example.com': ['10.0.0.5'] });
      for (const url of [
        'http://hooks.example.com/velro',
        'http://127.0.0.1:9000/hook',
        'http://localhost:9000/hook',
        'https://127.0.0.1/hook',
        'https://[::1]/hook',
        'https://192.168.1.20/hook',
        'https://169.254.169.254/latest/meta-data',
        'https://localhost/hook',
      ]) {
        await expect(checkWebhookUrl(url, policy, dns), url).rejects.toThrow(WebhookUrlRefused);
      }
      await expect(checkWebhookUrl('https://inside.example.com/hook', policy, dns)).rejects.toThrow(
        /a private address/,
      );
      await expect(checkWebhookUrl('https://hooks.example.com/velro', policy, dns)).resolves.toBeInstanceOf(
        URL,
      );
    },
  );

  it('resolves host names in production and refuses one that has any internal address', async () => {
    const dns = fakeDns({
      'hooks.example.com': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
      'sneaky.example.com': ['93.184.215.14', '10.0.0.5'],
      'metadata.example.com': ['169.254.169.254'],
      'v6-local.example.com': ['fd00::5'],
    });
    await expect(checkWebhookUrl('https://hooks.example.com/velro', production, dns)).resolves.toBeInstanceOf(
      URL,
    );
    await expect(checkWebhookUrl('https://sneaky.example.com/', production, dns)).rejects.toThrow(
      /resolves to 10\.0\.0\.5, a private address/,
    );
    await expect(checkWebhookUrl('https://metadata.example.com/', production, dns)).rejects.toThrow(
      /link-local/,
    );
    await expect(checkWebhookUrl('https://v6-local.example.com/', production, dns)).rejects.toThrow(
      /unique-local/,
    );
    await expect(checkWebhookUrl('https://nowhere.example.com/', production, dns)).rejects.toThrow(
      /does not resolve \(ENOTFOUND\)/,
    );
  });

  it('does not resolve anything when private addresses are allowed', async () => {
    const dns: LookupAll = async () => {
      throw new Error('must not be called');
    };
    await expect(checkWebhookUrl('http://whatever.invalid/hook', development, dns)).resolves.toBeInstanceOf(
      URL,
    );
  });
});

describe('posting a webhook', () => {
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
  });
  afterAll(() => receiver?.close());

  const post = (url: string, policy = development, lookup?: LookupAll) =>
    postWebhook({
      url,
      body: '{"a":1}',
      headers: { 'content-type': 'application/json' },
      policy,
      timeoutMs: 2000,
      lookup,
    });

  it('sends the body and reports the answer', async () => {
    const url = receiver.url('/ok');
    expect(await post(url)).toEqual({ kind: 'answer', status: 204, excerpt: '', retryAfter: undefined });
    expect(receiver.at('/ok')[0]).toMatchObject({ body: '{"a":1}' });
    expect(receiver.at('/ok')[0]!.headers['content-type']).toBe('application/json');
  });

  it('reports a failing answer with its Retry-After, and does not follow redirects', async () => {
    const busy = receiver.url('/busy', () => ({ status: 503, headers: { 'retry-after': '7' } }));
    expect(await post(busy)).toEqual({ kind: 'answer', status: 503, excerpt: 'nope', retryAfter: '7' });
    const moved = receiver.url('/moved', () => ({ status: 301, headers: { location: receiver.url('/ok') } }));
    const before = receiver.at('/ok').length;
    expect(await post(moved)).toMatchObject({ kind: 'answer', status: 301 });
    expect(receiver.at('/ok')).toHaveLength(before);
  });

  it('reports a refused connection as an error, not an answer', async () => {
    const closed = await startWebhookReceiver();
    const url = closed.url('/x');
    await closed.close();
    expect(await post(url)).toMatchObject({ kind: 'error', error: expect.stringMatching(/ECONNREFUSED/) });
  });

  it('gives up on a receiver that does not answer in time', async () => {
    const http = await import('node:http');
    const silent = http.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    const started = Date.now();
    const result = await postWebhook({
      url: `http://127.0.0.1:${port}/slow`,
      body: '{}',
      headers: {},
      policy: development,
      timeoutMs: 300,
    });
    expect(result).toEqual({ kind: 'error', error: 'no answer within 300 ms' });
    expect(Date.now() - started).toBeLessThan(2000);
    silent.closeAllConnections();
    silent.close();
  });

  it('checks the address it connects to: a name that resolves inside the network is refused, nothing is sent', async () => {
    // DNS rebinding: a public-looking name answering with the receiver's loopback address.
    const strictButHttp = { requireHttps: false, allowPrivate: false };
    const dns = fakeDns({ 'rebind.example.com': ['127.0.0.1'] });
    const port = new URL(receiver.origin).port;
    const before = receiver.received.length;
    const result = await post(`http://rebind.example.com:${port}/rebind`, strictButHttp, dns);
    expect(result).toEqual({
      kind: 'refused',
      error: 'rebind.example.com resolves to 127.0.0.1, a loopback address',
    });
    expect(await post(receiver.url('/literal'), strictButHttp)).toMatchObject({ kind: 'refused' });
    expect(receiver.received).toHaveLength(before);
  });

  it('treats a name that does not resolve at delivery time as a failure to retry, not a refusal', async () => {
    const strictButHttp = { requireHttps: false, allowPrivate: false };
    const result = await post('http://flaky-dns.example.com/hook', strictButHttp, fakeDns({}));
    expect(result).toEqual({
      kind: 'error',
      error: 'WebhookHostUnresolved: flaky-dns.example.com does not resolve (ENOTFOUND)',
    });
  });
});
