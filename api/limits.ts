import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { problem } from './errors';

/** The largest request body taken (a provider webhook route sets its own): above it, 413. */
export const BODY_LIMIT = 256 * 1024;
/** The longest path segment the router matches against a parameter (`:id`): above it, 414. */
export const MAX_PARAM_LENGTH = 100;
/** The longest request target (path and query) taken: above it, 414. */
export const MAX_URL_LENGTH = 8 * 1024;
/**
 * How long a connection that is closed after an early answer (a 413 or 401 before the body was
 * read) keeps reading what the client still sends, so that the client, busy sending, is not reset
 * before it reads the answer (a reset can discard the answer from its receive buffer).
 */
export const LINGER_MS = 5_000;

/**
 * Closes `socket` gracefully: our side ends now (the answer is complete), the client's bytes are
 * read and dropped until it ends its side, and after `ms` the socket is destroyed regardless.
 */
function lingeringClose(socket: Socket, ms: number): void {
  if (socket.destroyed) return;
  if (socket.writable) socket.end();
  const timer = setTimeout(() => socket.destroy(), ms);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * Makes Node close `socket` lingeringly (see LINGER_MS) instead of at once, when it ends the
 * current response with `connection: close`.
 */
export function lingerOnClose(socket: Socket): void {
  socket.destroySoon = function lingeringDestroySoon(this: Socket) {
    lingeringClose(this, LINGER_MS);
  };
}

const answered = new WeakSet<Socket>();

/** The request line (`GET /path HTTP/1.1`) at the start of `raw`, or as much of it as `raw` holds. */
function requestLineLength(raw: unknown): number | undefined {
  if (!Buffer.isBuffer(raw) || !/^[A-Z]+ /.test(raw.subarray(0, 16).toString('latin1'))) return undefined;
  const end = raw.indexOf('\r\n');
  return end === -1 ? raw.length : end;
}

type ParserError = Error & { code?: string; rawPacket?: unknown };

function classify(err: ParserError): {
  status: number;
  code: string;
  detail: string;
} {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW': {
      // Node counts the request line in the header size: a long URL overflows the same limit.
      const line = requestLineLength(err.rawPacket);
      if (line !== undefined && line > MAX_URL_LENGTH) {
        return {
          status: 414,
          code: 'uri_too_long',
          detail: `The request URL is longer than ${MAX_URL_LENGTH} characters.`,
        };
      }
      return { status: 431, code: 'headers_too_large', detail: 'The request headers are too large.' };
    }
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, code: 'payload_too_large', detail: 'The chunk extensions are too large.' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return { status: 408, code: 'request_timeout', detail: 'The request was not received in time.' };
    default:
      return { status: 400, code: 'invalid_request', detail: 'The request is not valid HTTP.' };
  }
}

/**
 * Fastify's `clientErrorHandler`: requests Node's HTTP parser refuses before Fastify sees them
 * (headers or URL too large, malformed, too slow) are answered like every other error, as
 * problem+json with a request id, and the connection is closed.
 */
export function clientErrorHandler(this: FastifyInstance, err: ParserError, socket: Socket): void {
  // Reset by the client: nobody to answer. Already answered: the parser fails again on every chunk
  // the client still sends while the socket lingers.
  if (err.code === 'ECONNRESET' || socket.destroyed || answered.has(socket)) return;
  answered.add(socket);
  const requestId = randomUUID();
  const { status, code, detail } = classify(err);
  this.log.debug({ err, reqId: requestId, status }, 'request refused by the HTTP parser');
  // A response already under way on this socket (keep-alive) must not be corrupted by another.
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const answer = problem(status, code, detail, requestId);
    const body = JSON.stringify(answer);
    socket.write(
      `HTTP/1.1 ${status} ${answer.title}\r\n` +
        'content-type: application/problem+json; charset=utf-8\r\n' +
        `content-length: ${Buffer.byteLength(body)}\r\n` +
        `x-request-id: ${requestId}\r\n` +
        'x-content-type-options: nosniff\r\n' +
        'cache-control: no-store\r\n' +
        'connection: close\r\n' +
        '\r\n' +
        body,
    );
  }
  lingeringClose(socket, LINGER_MS);
}
