import type { VelroClient } from './client';
import { UsageError, type Out } from './usage';

export const TEAMS_USAGE = `  velro teams                               your teams and your role in each
  velro teams create NAME
  velro teams members TEAM
  velro teams invite TEAM EMAIL [--role admin|member|viewer]   prints the accept link (shown once)
  velro teams accept TOKEN
  velro teams role TEAM USER ROLE
  velro teams limit TEAM USER CREDITS|none   monthly spend limit of a member
  velro teams remove TEAM USER
  velro teams credits TEAM
  velro teams usage TEAM [--month YYYY-MM]
  velro teams key TEAM NAME                  a team API key (shown once)`;

interface Team {
  id: string;
  name: string;
  role: string;
}
interface Member {
  userId: string;
  email: string;
  role: string;
  monthlySpendLimit: number | null;
}
interface Usage {
  month: string;
  data: { userId: string; model: string; count: number; reserved: number; spent: number; refunded: number }[];
}

function need(value: string | undefined, what: string): string {
  if (!value) throw new UsageError(`teams: missing ${what}`);
  return value;
}

/** `velro teams SUBCOMMAND …`. */
export async function teams(
  client: VelroClient,
  args: string[],
  opts: { role?: string; month?: string },
  out: Out,
): Promise<void> {
  const [sub = 'list', ...rest] = args;
  const team = () => encodeURIComponent(need(rest[0], 'TEAM (a team id)'));
  const user = () => encodeURIComponent(need(rest[1], 'USER (a user id)'));
  switch (sub) {
    case 'list': {
      const { data } = await client.request<{ data: Team[] }>('GET', '/v1/teams');
      out(data.map((t) => `${t.id}  ${t.role.padEnd(7)} ${t.name}`).join('\n') || '(none)', data);
      return;
    }
    case 'create': {
      const t = await client.request<Team>('POST', '/v1/teams', { name: need(rest.join(' '), 'NAME') });
      out(`${t.id}  ${t.role}  ${t.name}`, t);
      return;
    }
    case 'members': {
      const { data } = await client.request<{ data: Member[] }>('GET', `/v1/teams/${team()}/members`);
      out(
        data
          .map((m) => `${m.userId}  ${m.role.padEnd(7)} ${m.email}  limit ${m.monthlySpendLimit ?? 'none'}`)
          .join('\n'),
        data,
      );
      return;
    }
    case 'invite': {
      const inv = await client.request<{ acceptUrl: string; token: string; emailed: boolean }>(
        'POST',
        `/v1/teams/${team()}/invitations`,
        { email: need(rest[1], 'EMAIL'), role: opts.role ?? 'member' },
      );
      out(`${inv.emailed ? 'e-mailed; ' : ''}share this link (shown once): ${inv.acceptUrl}`, inv);
      return;
    }
    case 'accept': {
      const r = await client.request<{ teamId: string; role: string; status: string }>(
        'POST',
        '/v1/invitations/accept',
        { token: need(rest[0], 'TOKEN') },
      );
      out(`${r.status} team ${r.teamId} as ${r.role}`, r);
      return;
    }
    case 'role':
    case 'limit': {
      const value = need(rest[2], sub === 'role' ? 'ROLE' : 'CREDITS (a number, or none)');
      let body: Record<string, unknown> = { role: value };
      if (sub === 'limit') {
        const limit = value === 'none' ? null : Number(value);
        if (limit !== null && !Number.isSafeInteger(limit))
          throw new UsageError('teams limit: CREDITS must be a whole number or none');
        body = { monthlySpendLimit: limit };
      }
      const m = await client.request<Member>('PATCH', `/v1/teams/${team()}/members/${user()}`, body);
      out(`${m.userId}  ${m.role}  limit ${m.monthlySpendLimit ?? 'none'}`, m);
      return;
    }
    case 'remove': {
      await client.request('DELETE', `/v1/teams/${team()}/members/${user()}`);
      out(`removed ${rest[1]}`, { removed: rest[1] });
      return;
    }
    case 'credits': {
      const c = await client.request<{ available: number; reserved: number; spent: number }>(
        'GET',
        `/v1/teams/${team()}/credits`,
      );
      out(`available ${c.available}  reserved ${c.reserved}  spent ${c.spent}`, c);
      return;
    }
    case 'usage': {
      const q = opts.month ? `?month=${encodeURIComponent(opts.month)}` : '';
      const u = await client.request<Usage>('GET', `/v1/teams/${team()}/usage${q}`);
      out(
        [
          `usage ${u.month}`,
          ...u.data.map(
            (r) =>
              `${r.userId}  ${r.model.padEnd(22)} ${String(r.count).padStart(4)}×  reserved ${r.reserved}  spent ${r.spent}  refunded ${r.refunded}`,
          ),
        ].join('\n'),
        u,
      );
      return;
    }
    case 'key': {
      const k = await client.request<{ key: string; apiKey: { id: string } }>(
        'POST',
        `/v1/teams/${team()}/api-keys`,
        { name: need(rest.slice(1).join(' '), 'NAME') },
      );
      out(`team key (shown once): ${k.key}`, k);
      return;
    }
    default:
      throw new UsageError(`unknown teams command "${sub}"`);
  }
}
