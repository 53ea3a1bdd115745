import type { FastifyServerOptions } from 'fastify';

/**
 * Secrets, passwords, API keys, tokens and prompts never reach the logs. Fastify's own request log
 * carries method, URL and addresses only (no headers, no bodies); these paths catch anything that
 * code logs by mistake, and the request serializer strips credentials from query strings (signed
 * asset URLs carry theirs there).
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'authorization',
  'password',
  'passwordHash',
  'password_hash',
  'token',
  'apiKey',
  'key',
  'secret',
  'prompt',
  'negative_prompt',
  'input',
  'body',
  '*.authorization',
  '*.password',
  '*.passwordHash',
  '*.password_hash',
  '*.token',
  '*.apiKey',
  '*.key',
  '*.secret',
  '*.prompt',
  '*.negative_prompt',
  '*.input',
  '*.body',
];

const SECRET_QUERY_PARAMS = /^(signature|token|access_token|key|api_key|apikey|password)$/i;

/** `url` with the values of credential-bearing query parameters replaced. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name);
      } catch {
        // keep the raw name
      }
      return eq >= 0 && SECRET_QUERY_PARAMS.test(decoded) ? `${name}=[redacted]` : pair;
    });
  return `${url.slice(0, q)}?${params.join('&')}`;
}

interface SerializableRequest {
  method?: unknown;
  url?: unknown;
  host?: unknown;
  ip?: unknown;
  socket?: { remotePort?: unknown };
}

const text = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** The logger options buildApp applies on top of whatever the caller passes. */
export function loggerOptions(logger: FastifyServerOptions['logger']): FastifyServerOptions['logger'] {
  if (!logger) return false;
  const base = logger === true ? {} : logger;
  return {
    ...base,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      ...(base.serializers ?? {}),
      // Only these fields, whatever is passed as `req` (never headers or bodies).
      req: (req: SerializableRequest) => ({
        method: text(req.method),
        url: typeof req.url === 'string' ? redactUrl(req.url) : undefined,
        host: text(req.host),
        remoteAddress: text(req.ip),
        remotePort: typeof req.socket?.remotePort === 'number' ? req.socket.remotePort : undefined,
      }),
    },
  };
}
