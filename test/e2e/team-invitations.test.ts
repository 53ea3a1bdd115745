import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../api/app';
import { withUserTx } from '../../lib/db/pool';
import { freePort } from '../../lib/net/free-port';
import { hashInvitationToken } from '../../lib/teams/invitation-tokens';
import { createStorage } from '../../lib/wiring/from-config';
import { createUser, startApi, systemDb, testConfig, type ApiHarness } from '../support/context';

type User = Awaited<ReturnType<typeof createUser>>;

const PUBLIC_URL = 'https://app.velro.test';
const TOKEN = /^vinv_[A-Za-z0-9_-]{43}$/;

/** A message the in-process SMTP server received. */
interface Received {
  from: string | undefined;
  to: string[];
  raw: string;
}

/** A real SMTP server on a free port (smtp-server), keeping every message it is sent. */
async function startSmtp(): Promise<{ port: number; inbox: Received[]; close(): Promise<void> }> {
  const inbox: Received[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const mailFrom = session.envelope.mailFrom;
        inbox.push({
          from: mailFrom ? mailFrom.address : undefined,
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        callback();
      });
    },
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, inbox, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** The text body of a raw message, decoded from quoted-printable when it is so encoded. */
function bodyOf(raw: string): { headers: string; text: string } {
  const split = raw.indexOf('\r\n\r\n');
  // Unfolded: a long header continues on lines that start with white space.
  const headers = raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
  const body = raw.slice(split + 4);
  const qp = /content-transfer-encoding:\s*quoted-printable/i.test(headers);
  const text = qp
    ? body
        .replace(/=\r\n/g, '')
        .replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    : body;
  return { headers, text };
}

describe('team invitations', () => {
  let h: ApiHarness;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let mailApp: App;
  let owner: User;
  let admin: User;
  let member: User;
  let viewer: User;
  let outsider: User;
  let teamId: string;

  const as = (user: User, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object, app?: App) =>
    (app ?? h.app).inject({ method, url, headers: user.auth, ...(payload ? { payload } : {}) });
  const invite = (user: User, email: string, role = 'member', team = teamId, app?: App) =>
    as(user, 'POST', `/v1/teams/${team}/invitations`, { email, role }, app);
  const accept = (user: User, token: string) => as(user, 'POST', '/v1/invitations/accept', { token });

  async function createTeam(ownerId: string): Promise<string> {
    return withUserTx(h.db, ownerId, async (tx) => {
      const { rows } = await tx.query<{ id: string }>('SELECT create_team($1) AS id', ['Lighthouse studio']);
      return rows[0]!.id;
    });
  }
  const addMember = (team: string, userId: string, role: string) =>
    systemDb().query('INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, $3)', [
      team,
      userId,
      role,
    ]);
  const roleOf = async (team: string, userId: string) =>
    (
      await systemDb().query<{ role: string }>(
        'SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2',
        [team, userId],
      )
    ).rows[0]?.role;
  const invitationCount = async (team: string) =>
    (
      await systemDb().query<{ n: number }>(
        'SELECT count(*)::int AS n FROM team_invitations WHERE team_id = $1',
        [team],
      )
    ).rows[0]!.n;
  /** An app on the harness's database and Temporal with its own configuration, logging to `lines`. */
  async function appWith(env: Record<string, string>, lines: string[] = []): Promise<App> {
    const config = testConfig({ VELRO_PUBLIC_URL: PUBLIC_URL, ...env });
    const stream = new Writable({
      write(chunk, _enc, done) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        done();
      },
    });
    return buildApp({
      config,
      db: h.db,
      temporal: h.temporal,
      storage: createStorage(config),
      assetSigningKey: Buffer.alloc(32, 7),
      logger: { level: 'info', stream },
    });
  }

  beforeAll(async () => {
    smtp = await startSmtp();
    // No SMTP_URL here: the inviter shares the link.
    h = await startApi({ VELRO_PUBLIC_URL: PUBLIC_URL });
    mailApp = await appWith({
      SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
      SMTP_FROM: 'Velro Invitations <invites@velro.test>',
    });
    [owner, admin, member, viewer, outsider] = (await Promise.all(
      Array.from({ length: 5 }, () => createUser(h.db)),
    )) as [User, User, User, User, User];
    teamId = await createTeam(owner.userId);
    await addMember(teamId, admin.userId, 'admin');
    await addMember(teamId, member.userId, 'member');
    await addMember(teamId, viewer.userId, 'viewer');
  });
  afterAll(async () => {
    await mailApp?.close();
    await h?.stop();
    await smtp?.close();
  });

  it('creates an invitation with a one-time token (only its hash stored), lists it and revokes it', async () => {
    const email = `Invitee-${randomUUID()}@Example.com `;
    const res = await invite(admin, email, 'viewer');
    expect(res.statusCode, res.body).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    const normalised = email.trim().toLowerCase();
    expect(body).toMatchObject({
      invitation: { email: normalised, role: 'viewer', invitedBy: admin.userId, status: 'pending' },
      emailed: false,
    });
    expect(body.token).toMatch(TOKEN);
    expect(body.acceptUrl).toBe(`${PUBLIC_URL}/invitations/accept?token=${body.token}`);
    const { createdAt, expiresAt } = body.invitation;
    expect(Date.parse(expiresAt) - Date.parse(createdAt)).toBe(7 * 24 * 3600_000);

    const stored = await systemDb().query<{ token_hash: Buffer; row: string }>(
      'SELECT token_hash, row_to_json(i)::text AS row FROM team_invitations i WHERE id = $1',
      [body.invitation.id],
    );
    expect(stored.rows[0]!.token_hash.equals(hashInvitationToken(body.token))).toBe(true);
    expect(stored.rows[0]!.row).not.toContain(body.token);
    const audit = await systemDb().query<{ request_id: string; actor_user_id: string }>(
      "SELECT request_id, actor_user_id FROM team_audit_events WHERE target_id = $1 AND action = 'invitation.created'",
      [body.invitation.id],
    );
    expect(audit.rows).toEqual([{ request_id: res.headers['x-request-id'], actor_user_id: admin.userId }]);

    const list = await as(owner, 'GET', `/v1/teams/${teamId}/invitations?limit=100`);
    expect(list.statusCode).toBe(200);
    expect(list.json().data).toContainEqual(body.invitation);
    expect(list.body).not.toContain(body.token);

    const revoke = await as(admin, 'DELETE', `/v1/teams/${teamId}/invitations/${body.invitation.id}`);
    expect(revoke.statusCode, revoke.body).toBe(204);
    // Again: nothing changes.
    expect(
      (await as(admin, 'DELETE', `/v1/teams/${teamId}/invitations/${body.invitation.id}`)).statusCode,
    ).toBe(204);
    const after = (await as(admin, 'GET', `/v1/teams/${teamId}/invitations?limit=100`)).json();
    expect(after.data.find((i: { id: string }) => i.id === body.invitation.id).status).toBe('revoked');
    const unknown = await as(admin, 'DELETE', `/v1/teams/${teamId}/invitations/${randomUUID()}`);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('not_found');
  });

  it('pages the list with a cursor, newest first', async () => {
    const team = await createTeam(owner.userId);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(
        (await invite(owner, `p${i}-${randomUUID()}@example.com`, 'member', team)).json().invitation.id,
      );
    const first = (await as(owner, 'GET', `/v1/teams/${team}/invitations?limit=2`)).json();
    expect(first.data.map((i: { id: string }) => i.id)).toEqual([ids[2], ids[1]]);
    const second = (
      await as(owner, 'GET', `/v1/teams/${team}/invitations?limit=2&cursor=${first.nextCursor}`)
    ).json();
    expect(second).toEqual({ data: [expect.objectContaining({ id: ids[0] })], nextCursor: null });
  });

  it('makes the invited user a member with the invited role; accepting again is idempotent', async () => {
    const invitee = await createUser(h.db);
    const created = (await invite(admin, invitee.email, 'member')).json();
    const res = await accept(invitee, created.token);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ teamId, role: 'member', status: 'joined' });
    expect(await roleOf(teamId, invitee.userId)).toBe('member');
    const again = await accept(invitee, created.token);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ teamId, role: 'member', status: 'already_joined' });
    const list = (await as(admin, 'GET', `/v1/teams/${teamId}/invitations?limit=100`)).json();
    expect(list.data.find((i: { id: string }) => i.id === created.invitation.id).status).toBe('accepted');
    // Used: it can no longer be revoked.
    const revoke = await as(admin, 'DELETE', `/v1/teams/${teamId}/invitations/${created.invitation.id}`);
    expect(revoke.statusCode).toBe(409);
    expect(revoke.json().code).toBe('invitation_accepted');
    const events = await systemDb().query<{ action: string; request_id: string }>(
      `SELECT action, request_id FROM team_audit_events
       WHERE team_id = $1 AND (target_id = $2 OR target_id = $3::text) AND action <> 'invitation.created'
       ORDER BY action`,
      [teamId, created.invitation.id, invitee.userId],
    );
    expect(events.rows).toEqual([
      { action: 'invitation.accepted', request_id: res.headers['x-request-id'] },
      { action: 'member.added', request_id: res.headers['x-request-id'] },
    ]);
  });

  it("refuses someone else's token (404, and it stays usable), unknown and malformed tokens", async () => {
    const invitee = await createUser(h.db);
    const created = (await invite(owner, invitee.email)).json();
    for (const who of [outsider, member]) {
      const res = await accept(who, created.token);
      expect(res.statusCode).toBe(404);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.json().code).toBe('invitation_not_found');
    }
    expect(await roleOf(teamId, outsider.userId)).toBeUndefined();
    const unknown = await accept(invitee, `vinv_${Buffer.alloc(32, 1).toString('base64url')}`);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('invitation_not_found');
    for (const token of ['', 'vk_abc', `${created.token}x`, created.token.slice(0, -1), 42]) {
      const bad = await as(invitee, 'POST', '/v1/invitations/accept', { token });
      expect(bad.statusCode, String(token)).toBe(400);
      expect(bad.json().errors[0].path).toBe('body.token');
      expect(bad.body).not.toContain(created.token);
    }
    expect((await accept(invitee, created.token)).json().status).toBe('joined');
  });

  it('answers 410 for expired, revoked and used invitations', async () => {
    const invitee = await createUser(h.db);
    const expired = (await invite(admin, invitee.email)).json();
    await systemDb().query(
      "UPDATE team_invitations SET expires_at = now() - interval '1 second' WHERE id = $1",
      [expired.invitation.id],
    );
    const revoked = (await invite(admin, invitee.email)).json();
    await as(admin, 'DELETE', `/v1/teams/${teamId}/invitations/${revoked.invitation.id}`);
    const used = (await invite(admin, invitee.email)).json();
    // Used by another account (the address changed hands since): as the database records it.
    await systemDb().query(
      'UPDATE team_invitations SET accepted_at = now(), accepted_by = $2 WHERE id = $1',
      [used.invitation.id, outsider.userId],
    );
    for (const [inv, code] of [
      [expired, 'invitation_expired'],
      [revoked, 'invitation_revoked'],
      [used, 'invitation_used'],
    ] as const) {
      const res = await accept(invitee, inv.token);
      expect(res.statusCode, code).toBe(410);
      expect(res.json()).toMatchObject({ code, title: 'Gone', status: 410 });
    }
    const statuses = (await as(admin, 'GET', `/v1/teams/${teamId}/invitations?limit=100`)).json().data;
    const statusOf = (id: string) => statuses.find((i: { id: string }) => i.id === id).status;
    expect([
      statusOf(expired.invitation.id),
      statusOf(revoked.invitation.id),
      statusOf(used.invitation.id),
    ]).toEqual(['expired', 'revoked', 'accepted']);
    expect(await roleOf(teamId, invitee.userId)).toBeUndefined();
  });

  it('refuses to invite a member (409), a bad email or role (400), and writes nothing', async () => {
    const before = await invitationCount(teamId);
    const taken = await invite(admin, ` ${member.email.toUpperCase()}`);
    expect(taken.statusCode).toBe(409);
    expect(taken.json().code).toBe('already_member');
    expect((await invite(admin, owner.email, 'viewer')).statusCode).toBe(409);
    const cases: [object, string][] = [
      [{ email: 'not-an-email', role: 'member' }, 'body.email'],
      [{ email: 'a@b', role: 'member' }, 'body.email'],
      [{ email: `${'a'.repeat(250)}@example.com`, role: 'member' }, 'body.email'],
      [{ role: 'member' }, 'body.email'],
      [{ email: 'ann@example.com', role: 'owner' }, 'body.role'],
      [{ email: 'ann@example.com', role: 'superuser' }, 'body.role'],
      [{ email: 'ann@example.com' }, 'body.role'],
    ];
    for (const [payload, field] of cases) {
      const res = await as(admin, 'POST', `/v1/teams/${teamId}/invitations`, payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().code).toBe('invalid_request');
      expect(
        res.json().errors.map((e: { path: string }) => e.path),
        JSON.stringify(payload),
      ).toContain(field);
    }
    expect(await invitationCount(teamId)).toBe(before);
  });

  it('lets only admins and the owner invite, list and revoke; outsiders get 404', async () => {
    const pending = (await invite(admin, `x-${randomUUID()}@example.com`, 'admin')).json();
    expect(pending.invitation.role).toBe('admin');
    const before = await invitationCount(teamId);
    for (const who of [member, viewer]) {
      const attempts = [
        await invite(who, `y-${randomUUID()}@example.com`, 'viewer'),
        await as(who, 'GET', `/v1/teams/${teamId}/invitations`),
        await as(who, 'DELETE', `/v1/teams/${teamId}/invitations/${pending.invitation.id}`),
      ];
      for (const res of attempts) {
        expect(res.statusCode, res.body).toBe(403);
        expect(res.json(), res.body).toMatchObject({ code: 'forbidden', requiredRole: 'admin' });
      }
    }
    for (const team of [teamId, randomUUID()]) {
      const attempts = [
        await invite(outsider, `z-${randomUUID()}@example.com`, 'viewer', team),
        await as(outsider, 'GET', `/v1/teams/${team}/invitations`),
        await as(outsider, 'DELETE', `/v1/teams/${team}/invitations/${pending.invitation.id}`),
      ];
      for (const res of attempts) {
        expect(res.statusCode, res.body).toBe(404);
        expect(res.json()).toMatchObject({ code: 'not_found', detail: 'Team not found.' });
      }
    }
    expect(await invitationCount(teamId)).toBe(before);
    expect(
      (
        await systemDb().query('SELECT revoked_at FROM team_invitations WHERE id = $1', [
          pending.invitation.id,
        ])
      ).rows,
    ).toEqual([{ revoked_at: null }]);
  });

  it('e-mails the invitation through SMTP_URL; the token read from the message joins the team', async () => {
    const invitee = await createUser(h.db);
    const res = await invite(admin, invitee.email, 'viewer', teamId, mailApp);
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().emailed).toBe(true);
    const message = smtp.inbox.find((m) => m.to.includes(invitee.email));
    expect(message).toBeDefined();
    expect(message!.from).toBe('invites@velro.test');
    const { headers, text } = bodyOf(message!.raw);
    expect(headers).toMatch(/^From: Velro Invitations <invites@velro\.test>$/m);
    expect(headers).toContain(`To: ${invitee.email}`);
    expect(headers).toMatch(/^Subject: .*Lighthouse studio/m);
    expect(text).toContain(admin.email);
    expect(text).toContain('as viewer');
    expect(text).toContain(res.json().invitation.expiresAt.slice(0, 10));
    const url = /https:\/\/\S+/.exec(text)![0];
    expect(url.startsWith(`${PUBLIC_URL}/invitations/accept?token=`)).toBe(true);
    const token = new URL(url).searchParams.get('token')!;
    expect(token).toBe(res.json().token);
    const joined = await accept(invitee, token);
    expect(joined.json()).toEqual({ teamId, role: 'viewer', status: 'joined' });
    expect(await roleOf(teamId, invitee.userId)).toBe('viewer');
  });

  it('answers a retry with the same Idempotency-Key from the first answer: one invitation, one e-mail, no token', async () => {
    const email = `retry-${randomUUID()}@example.com`;
    const send = () =>
      mailApp.inject({
        method: 'POST',
        url: `/v1/teams/${teamId}/invitations`,
        headers: { ...admin.auth, 'idempotency-key': `invite-${email}` },
        payload: { email, role: 'member' },
      });
    const first = await send();
    expect(first.statusCode, first.body).toBe(201);
    const again = await send();
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers['idempotent-secret-redacted']).toBe('true');
    expect(again.json()).toEqual({ ...first.json(), token: null, acceptUrl: null });
    expect(smtp.inbox.filter((m) => m.to.includes(email))).toHaveLength(1);
    const rows = await systemDb().query('SELECT 1 FROM team_invitations WHERE email = $1', [email]);
    expect(rows.rowCount).toBe(1);
  });

  it('keeps at most 100 pending invitations per team (expired, revoked and accepted ones do not count)', async () => {
    const team = await createTeam(owner.userId);
    await systemDb().query(
      `INSERT INTO team_invitations (team_id, email, role, token_hash, invited_by, expires_at)
       SELECT $1, 'bulk-' || i || '@example.com', 'viewer', sha256(gen_random_uuid()::text::bytea), $2,
              now() + interval '1 day'
       FROM generate_series(1, 100) i`,
      [team, owner.userId],
    );
    const full = await invite(owner, `more-${randomUUID()}@example.com`, 'viewer', team);
    expect(full.statusCode).toBe(409);
    expect(full.json().code).toBe('too_many_invitations');
    expect(await invitationCount(team)).toBe(100);
    await systemDb().query(
      "UPDATE team_invitations SET expires_at = now() - interval '1 second' WHERE team_id = $1 AND email = 'bulk-1@example.com'",
      [team],
    );
    expect((await invite(owner, `more-${randomUUID()}@example.com`, 'viewer', team)).statusCode).toBe(201);
  });

  it('still answers 201, quickly, with emailed false when the SMTP server is down or silent; the log has no token', async () => {
    const silentSockets: Socket[] = [];
    const silent: Server = createServer((s) => silentSockets.push(s));
    const silentPort = await freePort();
    await new Promise<void>((resolve) => silent.listen(silentPort, '127.0.0.1', resolve));
    const downPort = await freePort();
    try {
      for (const port of [downPort, silentPort]) {
        const lines: string[] = [];
        const app = await appWith({ SMTP_URL: `smtp://127.0.0.1:${port}`, SMTP_TIMEOUT_MS: '500' }, lines);
        try {
          const started = Date.now();
          const res = await invite(admin, `down-${randomUUID()}@example.com`, 'member', teamId, app);
          const took = Date.now() - started;
          expect(res.statusCode, res.body).toBe(201);
          expect(res.json().emailed).toBe(false);
          expect(took, `port ${port}`).toBeLessThan(3000);
          const warning = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'invitation e-mail not sent');
          expect(warning).toMatchObject({ level: 40, invitationId: res.json().invitation.id });
          expect(warning.reason).toBeTruthy();
          for (const line of lines) expect(line).not.toContain(res.json().token);
        } finally {
          await app.close();
        }
      }
    } finally {
      for (const s of silentSockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
