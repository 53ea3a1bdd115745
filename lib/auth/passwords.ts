import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/** Password policy: length only (NIST SP 800-63B), measured after Unicode normalisation. */
export const PASSWORD_MIN_LENGTH = 10;
export const PASSWORD_MAX_LENGTH = 200;

/** Current cost: N = 2^15, r = 8, p = 1 needs 32 MiB and takes ~50–100 ms on one core. */
const COST = { N: 2 ** 15, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const HASH_BYTES = 32;

// Bounds for parameters read back from the database: a corrupt or hostile row cannot make a
// login allocate gigabytes or spin for minutes.
const MAX_N = 2 ** 20;
const MAX_MEMORY = 256 * 1024 * 1024;

interface Params {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** NFKC, so that the same password typed on different keyboards or systems hashes alike. */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** Why a new password is refused, or null when it is acceptable. */
export function passwordProblem(password: string, email?: string): string | null {
  const length = [...normalizePassword(password)].length;
  if (length < PASSWORD_MIN_LENGTH || length > PASSWORD_MAX_LENGTH) {
    return `must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters long`;
  }
  if (email && password.trim().toLowerCase() === email.toLowerCase()) return 'must not be the email address';
  return null;
}

function derive(password: string, salt: Buffer, N: number, r: number, p: number, keylen: number) {
  return new Promise<Buffer>((resolve, reject) =>
    scrypt(
      normalizePassword(password),
      salt,
      keylen,
      // Node's default maxmem (32 MiB) is exactly 128·N·r for N = 2^15, r = 8 and refuses it.
      { N, r, p, maxmem: 128 * N * r + 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)),
    ),
  );
}

/** `scrypt$N$r$p$<salt base64url>$<hash base64url>`: self-describing, so the cost can grow later. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, COST.N, COST.r, COST.p, HASH_BYTES);
  return ['scrypt', COST.N, COST.r, COST.p, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

function parse(stored: string): Params | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map((v) => (/^\d{1,8}$/.test(v!) ? Number(v) : NaN)) as [
    number,
    number,
    number,
  ];
  if (!(N >= 2 && N <= MAX_N && (N & (N - 1)) === 0)) return undefined;
  if (!(r >= 1 && r <= 32 && p >= 1 && p <= 16) || 128 * N * r > MAX_MEMORY) return undefined;
  const b64 = /^[A-Za-z0-9_-]+$/;
  if (!b64.test(parts[4]!) || !b64.test(parts[5]!)) return undefined;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const hash = Buffer.from(parts[5]!, 'base64url');
  if (salt.length < 8 || salt.length > 64 || hash.length < 16 || hash.length > 64) return undefined;
  return { N, r, p, salt, hash };
}

let dummy: Promise<string> | undefined;
/** A real hash of a random password: checked against when there is no account, to take the same time. */
function dummyHash(): Promise<string> {
  dummy ??= hashPassword(randomBytes(16).toString('base64url'));
  return dummy;
}

/** Computes the dummy hash ahead of the first login, so that even that one takes the usual time. */
export function warmUpPasswords(): void {
  dummyHash().catch(() => {
    dummy = undefined;
  });
}

/**
 * Whether `password` matches `stored`. With no stored hash (unknown email, or an account without a
 * password) it still does the full scrypt work and answers false, so timing does not tell them apart.
 */
export async function verifyPassword(password: string, stored: string | null | undefined): Promise<boolean> {
  const params = stored ? parse(stored) : undefined;
  const target = params ?? parse(await dummyHash())!;
  const candidate = await derive(password, target.salt, target.N, target.r, target.p, target.hash.length);
  const same = timingSafeEqual(candidate, target.hash);
  return same && params !== undefined;
}

/**
 * The hash `password` would have under stored parameters: `params` is `scrypt$N$r$p$salt` and
 * `keyBytes` the stored hash's length, as the database hands them out (auth_password_params: it
 * never hands out a hash). Answers the full `scrypt$N$r$p$salt$hash`, to be compared by the
 * database; parameters out of bounds get the dummy's work and undefined, so timing stays the same.
 */
export async function passwordCandidate(
  password: string,
  params: string,
  keyBytes: number,
): Promise<string | undefined> {
  const placeholder = Buffer.alloc(Number.isInteger(keyBytes) && keyBytes > 0 ? keyBytes : 0, 1);
  const target = parse(`${params}$${placeholder.toString('base64url')}`);
  const used = target ?? parse(await dummyHash())!;
  const key = await derive(password, used.salt, used.N, used.r, used.p, used.hash.length);
  return target ? `${params}$${key.toString('base64url')}` : undefined;
}

/** True when `stored` was made with weaker parameters than today's: rehash it after a good login. */
export function needsRehash(stored: string): boolean {
  const params = parse(stored);
  return (
    !params ||
    params.N < COST.N ||
    params.r < COST.r ||
    params.p < COST.p ||
    params.salt.length < SALT_BYTES ||
    params.hash.length < HASH_BYTES
  );
}
