import { createTransport } from 'nodemailer';

/** One plain-text e-mail. */
export interface MailMessage {
  to: string;
  subject: string;
  text: string;
}

/** How a send ended. `reason` is safe to log: the error's code and message, never the message's text. */
export type SendOutcome = { sent: true } | { sent: false; reason: string };

/** Sends e-mail, or says it cannot. Never throws, and never takes longer than its timeout. */
export interface Mailer {
  /** Whether e-mail goes out at all (SMTP_URL is set). */
  readonly enabled: boolean;
  send(message: MailMessage): Promise<SendOutcome>;
  close(): void;
}

/** Without SMTP_URL: nothing is sent (the inviter shares the link). */
export const noMailer: Mailer = {
  enabled: false,
  send: async () => ({ sent: false, reason: 'no SMTP_URL configured' }),
  close: () => undefined,
};

export interface SmtpMailerOptions {
  /** `smtp://…` or `smtps://…`, credentials included. */
  url: string;
  from: string;
  /** Bound of one send, from connecting to the server's last reply. */
  timeoutMs: number;
}

/** Why a send failed, for the log: nodemailer's error code and message (the server's reply at most). */
function reasonOf(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? `${e.code}: ` : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return `${code}${message}`.slice(0, 300);
}

/**
 * A mailer over SMTP (nodemailer). A new connection per message (no pool): invitations are rare,
 * and a pooled connection that went stale would only add a failure mode. Every phase has the
 * timeout, and the send as a whole is aborted past it, so a silent server cannot hold a request.
 */
export function smtpMailer(opts: SmtpMailerOptions): Mailer {
  const t = opts.timeoutMs;
  const transport = createTransport(
    { url: opts.url, connectionTimeout: t, greetingTimeout: t, socketTimeout: t, dnsTimeout: t },
    { from: opts.from },
  );
  return {
    enabled: true,
    async send(message) {
      try {
        await transport.sendMail({ ...message, signal: AbortSignal.timeout(t) });
        return { sent: true };
      } catch (err) {
        return { sent: false, reason: reasonOf(err) };
      }
    },
    close: () => transport.close(),
  };
}
