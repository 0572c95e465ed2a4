#ifndef POSTERN_AUTHD_H
#define POSTERN_AUTHD_H

/* authd: the only process that opens the directory and the password hashes.
 * Workers ask it over typed messages (lib/ipc.h):
 *
 *   IPC_AUTH_REQUEST  id, service, user, password, peer (client address),
 *                     secured (yes|no), tarpit (yes|no: no for trusted
 *                     networks), failure-delay (seconds), and from back
 *                     ends only: act-as (an administrator's direct login as
 *                     that user; ok carries the target's user and quota)
 *   IPC_AUTH_REPLY    id, result, and
 *       result=ok        user (canonical name), kind, backend,
 *                        backend-address (for service=submission: the back
 *                        end's lmtp address), ticket-expiry, ticket-mac: the
 *                        one-time ticket the front end shows the back end;
 *                        domain (the instance's mail domain, from the
 *                        directory meta) and send-as (the user's extra
 *                        sender addresses, "a@x, b@y" or ""): the
 *                        submission service's sender policy
 *       result=fail      wrong password or unknown user (one answer for
 *                        both), sent after the failure delay and the
 *                        source address's tarpit delay
 *       result=refused   code (client-facing reason code), reason (log text):
 *                        the account may not use this protocol
 *       result=tempfail  reason: the directory could not be read
 *
 *       result=continue  (SCRAM only) exchange (a handle), challenge (the
 *                        next server message, raw): send it and go on
 *
 *   IPC_SCRAM_FIRST   the fields of IPC_AUTH_REQUEST except user and
 *                     password, and message: the client-first message
 *                     (decoded). Answered with continue and the
 *                     server-first message: the user's salt and iteration
 *                     count, or for an unknown user or one without SCRAM
 *                     keys a salt derived from the internal secret and the
 *                     name (stable, so asking twice tells nothing) and the
 *                     default count. The nonce is the client's and 24
 *                     random bytes of authd's.
 *   IPC_SCRAM_FINAL   the same, exchange, and message: the client-final
 *                     message. A right proof is answered with continue and
 *                     the server-final message ("v=" the server
 *                     signature); anything else (wrong proof, no keys,
 *                     unknown user, wrong nonce or channel binding data, an
 *                     exchange finished, expired or another worker's) with
 *                     fail after the failure delay and the tarpit, as a
 *                     wrong password. refused (guest, admin, switch off)
 *                     comes only after a right proof, as with PLAIN.
 *   IPC_SCRAM_CONFIRM the same and exchange: the client checked the
 *                     server signature (its empty response). Answered as
 *                     IPC_AUTH_REQUEST is on success: ok with the back end
 *                     and the ticket.
 *
 * A password login (IPC_AUTH_REQUEST) of a user without SCRAM keys, or with
 * keys of fewer iterations than postern makes, stores new keys derived
 * from the password it just verified (directory.db is open read-write).
 *
 *   IPC_USER_LOOKUP   id, user                    (back ends: delivery)
 *   IPC_USER_REPLY    id, result=ok|unknown|tempfail, and with ok:
 *                     user (canonical), kind, backend, quota (bytes, 0 none),
 *                     lmtp-address (the back end's lmtp address in net_addr
 *                     form, "" when it has none: where the submission
 *                     service delivers the user's mail)
 *
 *   IPC_TICKET_VERIFY id, user, peer, expiry, mac (back ends: a front end's
 *                     login). Answered with IPC_USER_REPLY; result=fail when
 *                     the ticket is forged, expired or used before.
 *
 * From the http service only (its channels; anything else drops them):
 *   IPC_AUTH_REQUEST with service=http: guests and the anonymous/guest
 *                     names are refused, administrators allowed, the
 *                     protocol switches do not apply; fields
 *                     session-timeout and session-lifetime (seconds);
 *                     result=ok starts a web session: session (the id),
 *                     csrf (its form token), user, kind
 *   IPC_SESSION_CHECK id, session -> IPC_SESSION_REPLY id, result=ok|none|
 *                     tempfail, domain, hostname (always), and with ok:
 *                     user, kind, csrf, pop3, imap4, smtp (on|off). The
 *                     user is read from the directory each time: a
 *                     deleted user's or a new guest's session ends.
 *   IPC_SESSION_END   id, session: sign-out (answered result=none)
 *   IPC_USER_LIST     id, session (an administrator's), query, exact
 *                     (yes: the name itself), limit (at most 200) ->
 *                     IPC_USER_LIST_REPLY id, result=ok|denied|tempfail,
 *                     total (matches), one field user="NAME KIND POP3
 *                     IMAP4 SMTP BACKEND QUOTA" per mailbox shown
 *   IPC_USER_SET      id, session (an administrator's), user, and any of
 *                     pop3, imap4, smtp = on|off -> IPC_USER_REPLY id,
 *                     result=ok|unknown|denied|fail, with ok: user, kind,
 *                     pop3, imap4, smtp as now stored
 *
 * Back-end login tickets: mac = HMAC-SHA256(internal secret,
 * "postern-backend-login" NUL user NUL peer NUL expiry), hex. They live
 * 60 s and are accepted once, so a ticket seen on the wire between front
 * and back end cannot be replayed; the secret never leaves authd.
 *
 * Failures are counted per source address (IPv6 by /64), never per
 * account, so an attacker cannot lock the real user out: each further
 * failure from the same source within the window doubles the delay, up to a
 * cap. */

/* Run authd; never returns. channel_fd is the channel to the master. */
void authd_main(const char *datadir, int channel_fd) __attribute__((noreturn));

#endif
