// Whether a database error means Postgres could not be reached or went away mid-query (down,
// restarting, failing over, or the pool out of time), as opposed to a query that is wrong. The
// first is the client's to retry (503), the second a bug (500).

/** SQLSTATE class 08 (connection exception) and the shutdown codes of class 57. */
const UNREACHABLE_SQLSTATE = /^(08...|57P01|57P02|57P03)$/;
const UNREACHABLE_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
// pg and pg-pool raise these as plain Errors, without a code.
const UNREACHABLE_MESSAGE =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout)/;

export function isDatabaseUnreachable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (UNREACHABLE_SQLSTATE.test(code) || UNREACHABLE_ERRNO.has(code)))
      return true;
    if (UNREACHABLE_MESSAGE.test(e.message)) return true;
  }
  return false;
}
