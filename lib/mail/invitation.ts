import type { MailMessage } from './mailer';

export interface InvitationMail {
  to: string;
  teamName: string;
  /** The inviter's e-mail address, as the invitee knows it. */
  invitedBy: string;
  role: string;
  /** The client app's accept page, with the token. */
  acceptUrl: string;
  expiresAt: Date;
}

/** The e-mail that carries an invitation's accept link (plain text: no markup to escape or render). */
export function invitationMessage(m: InvitationMail): MailMessage {
  // The team name is the inviter's text: keep it on one line so it cannot add lines of its own.
  const team = m.teamName.replace(/[\r\n]+/g, ' ').trim();
  return {
    to: m.to,
    subject: `${m.invitedBy} invited you to the team ${team} on Velro`,
    text: [
      `${m.invitedBy} invited you to join the team "${team}" on Velro as ${m.role}.`,
      '',
      'To accept, sign in with this e-mail address and open:',
      m.acceptUrl,
      '',
      `The invitation expires on ${m.expiresAt.toISOString().replace('T', ' ').slice(0, 16)} UTC and works once.`,
      'If you did not expect it, ignore this e-mail.',
      '',
    ].join('\n'),
  };
}
