import dns from 'node:dns';
import net from 'node:net';
import type { Config } from '../config';

/**
 * Where Velro may send webhooks. Checked when a URL is registered (or given with a generation) and
 * again on every delivery, at connect time, so a name that later resolves inside the network (DNS
 * rebinding) is refused too.
 */
export interface WebhookUrlPolicy {
  /** Only https (unless WEBHOOK_ALLOW_HTTP). */
  requireHttps: boolean;
  /** Loopback, private, link-local... addresses allowed (WEBHOOK_ALLOW_PRIVATE_URLS: local development). */
  allowPrivate: boolean;
}

/** Strict unless the configuration relaxes it explicitly; NODE_ENV plays no part. */
export function webhookUrlPolicy(
  config: Pick<Config, 'WEBHOOK_ALLOW_HTTP' | 'WEBHOOK_ALLOW_PRIVATE_URLS'>,
): WebhookUrlPolicy {
  return { requireHttps: !config.WEBHOOK_ALLOW_HTTP, allowPrivate: config.WEBHOOK_ALLOW_PRIVATE_URLS };
}

/** A webhook URL Velro will not send to; `message` says why, for the 400 answer or the delivery log. */
export class WebhookUrlRefused extends Error {
  override readonly name = 'WebhookUrlRefused';
}

/**
 * A host name that could not be resolved right now. Refused when a client gives it; at delivery time
 * a transient failure, retried like an unreachable receiver.
 */
export class WebhookHostUnresolved extends Error {
  override readonly name = 'WebhookHostUnresolved';
}

/** An IPv4 address as a 32-bit number, or undefined. */
function ipv4Number(address: string): number | undefined {
  if (!net.isIPv4(address)) return undefined;
  return address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function inV4(n: number, base: string, bits: number): boolean {
  const b = ipv4Number(base)!;
  const size = 2 ** (32 - bits);
  return Math.floor(n / size) === Math.floor(b / size);
}

// Not reachable on the public internet, or not meant to be: RFC 6890 special-purpose registry.
const BLOCKED_V4: [string, number, string][] = [
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'shared (carrier-grade NAT)'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'IETF protocol assignment'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, '6to4 relay'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

function v4Problem(address: string): string | undefined {
  const n = ipv4Number(address);
  if (n === undefined) return 'not an address';
  return BLOCKED_V4.find(([base, bits]) => inV4(n, base, bits))?.[2];
}

/** The eight 16-bit groups of an IPv6 address (with or without a trailing dotted quad). */
function ipv6Groups(address: string): number[] | undefined {
  if (!net.isIPv6(address)) return undefined;
  let text = address.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const n = ipv4Number(dotted[1]!)!;
    text = `${text.slice(0, -dotted[1]!.length)}${Math.floor(n / 65536).toString(16)}:${(n % 65536).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const left = parse(head);
  const right = parse(tail);
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
  return groups.length === 8 ? groups : undefined;
}

const v4From = (hi: number, lo: number) =>
  [hi >> 8, hi & 255, lo >> 8, lo & 255].map((b) => String(b)).join('.');

function v6Problem(address: string): string | undefined {
  const g = ipv6Groups(address);
  if (!g) return 'not an address';
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 8)) return 'unspecified';
  if (zeros(0, 7) && g[7] === 1) return 'loopback';
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d), 6to4
  // (2002:AABB:CCDD::): judged by the IPv4 address inside.
  if (zeros(0, 5) && g[5] === 0xffff) return v4Problem(v4From(g[6]!, g[7]!));
  if (zeros(0, 6)) return v4Problem(v4From(g[6]!, g[7]!));
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4Problem(v4From(g[6]!, g[7]!));
  if (g[0] === 0x2002) return v4Problem(v4From(g[1]!, g[2]!));
  const first = g[0]!;
  if ((first & 0xff00) === 0xff00) return 'multicast';
  if ((first & 0xffc0) === 0xfe80) return 'link-local';
  if ((first & 0xffc0) === 0xfec0) return 'site-local';
  if ((first & 0xfe00) === 0xfc00) return 'unique-local';
  if (first === 0x2001 && g[1] === 0x0db8) return 'documentation';
  // Teredo hides the real destination; NAT64 local-use and discard-only prefixes are not public.
  if (first === 0x2001 && g[1] === 0) return 'Teredo';
  if (first === 0x64 && g[1] === 0xff9b) return 'NAT64 local-use';
  if (first === 0x100 && zeros(1, 4)) return 'discard-only';
  // Everything public lives in global unicast, 2000::/3.
  if ((first & 0xe000) !== 0x2000) return 'reserved';
  return undefined;
}

/**
 * Why an IP address is no place for a webhook (loopback, private, link-local, unique-local,
 * multicast, unspecified, documentation, reserved...), or undefined for a public unicast address.
 */
export function addressProblem(address: string): string | undefined {
  if (net.isIPv4(address)) return v4Problem(address);
  if (net.isIPv6(address)) return v6Problem(address);
  return 'not an IP address';
}

/** The URL, if its form is acceptable: http(s), no credentials, https in production, no internal IP literal. */
export function parseWebhookUrl(raw: string, policy: WebhookUrlPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookUrlRefused('not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new WebhookUrlRefused('only http and https URLs receive webhooks');
  }
  if (policy.requireHttps && url.protocol !== 'https:') {
    throw new WebhookUrlRefused('webhook URLs must use https');
  }
  if (url.username || url.password) {
    throw new WebhookUrlRefused('webhook URLs may not carry credentials (user:password@)');
  }
  if (!policy.allowPrivate) {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (net.isIP(host)) {
      const problem = addressProblem(host);
      if (problem) throw new WebhookUrlRefused(`${host} is a ${problem} address`);
    } else if (host === 'localhost' || host.endsWith('.localhost') || !host.includes('.')) {
      throw new WebhookUrlRefused(`${host} is not a public host name`);
    }
  }
  return url;
}

export type LookupAll = (hostname: string) => Promise<{ address: string; family: number }[]>;

const systemLookup: LookupAll = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

/**
 * Resolves a host name and refuses it unless every address it has is public; a name that does not
 * resolve (in `timeoutMs`) throws WebhookHostUnresolved.
 */
export async function resolvePublic(
  hostname: string,
  lookup: LookupAll = systemLookup,
  timeoutMs = 5000,
): Promise<{ address: string; family: number }[]> {
  let timer: NodeJS.Timeout | undefined;
  let addresses: { address: string; family: number }[];
  try {
    addresses = await Promise.race([
      lookup(hostname),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WebhookHostUnresolved(
      `${hostname} does not resolve (${code ?? (err instanceof Error ? err.message : String(err))})`,
    );
  } finally {
    clearTimeout(timer);
  }
  if (addresses.length === 0) throw new WebhookUrlRefused(`${hostname} has no address`);
  for (const { address } of addresses) {
    const problem = addressProblem(address);
    // One internal address is enough to refuse: the connection could pick it.
    if (problem) throw new WebhookUrlRefused(`${hostname} resolves to ${address}, a ${problem} address`);
  }
  return addresses;
}

/**
 * Checks a webhook URL as given by a client: its form, and unless private addresses are allowed,
 * that its host resolves only to public addresses.
 */
export async function checkWebhookUrl(
  raw: string,
  policy: WebhookUrlPolicy,
  lookup: LookupAll = systemLookup,
): Promise<URL> {
  const url = parseWebhookUrl(raw, policy);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!policy.allowPrivate && !net.isIP(host)) {
    await resolvePublic(host, lookup).catch((err: unknown) => {
      throw err instanceof WebhookHostUnresolved ? new WebhookUrlRefused(err.message) : err;
    });
  }
  return url;
}

/** The verdict on a webhook URL a client gives: acceptable, or refused with the reason to tell them. */
export type WebhookUrlVerdict = { ok: true; url: URL } | { ok: false; reason: string };

/**
 * checkWebhookUrl as a verdict: a refusal (WebhookUrlRefused) is an answer, not an error; anything
 * else still throws.
 */
export async function judgeWebhookUrl(
  raw: string,
  policy: WebhookUrlPolicy,
  lookup: LookupAll = systemLookup,
): Promise<WebhookUrlVerdict> {
  try {
    return { ok: true, url: await checkWebhookUrl(raw, policy, lookup) };
  } catch (err) {
    if (err instanceof WebhookUrlRefused) return { ok: false, reason: err.message };
    throw err;
  }
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for http.request that resolves like the system does but fails the connection when any
 * address is internal: the address checked is the address connected to.
 */
export function guardedLookup(lookup: LookupAll = systemLookup) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
    resolvePublic(hostname, lookup).then(
      (addresses) => {
        const wanted = options.family === 4 || options.family === 6 ? options.family : undefined;
        const usable = wanted ? addresses.filter((a) => a.family === wanted) : addresses;
        if (usable.length === 0) {
          callback(
            Object.assign(new Error(`${hostname} has no IPv${wanted} address`), { code: 'ENOTFOUND' }),
            '',
          );
        } else if (options.all) {
          callback(null, usable);
        } else {
          callback(null, usable[0]!.address, usable[0]!.family);
        }
      },
      (err: Error) => callback(err, ''),
    );
  };
}
