#ifndef POSTERN_SUBMITD_H
#define POSTERN_SUBMITD_H

/* The submission service: authenticated SMTP for mail users (RFC 6409 on
 * RFC 5321), the "client frontend" receive connector. 587 with STARTTLS
 * (RFC 3207) and 465 with implicit TLS (RFC 8314), from the submission
 * service's bindings.
 *
 * A client-facing worker with the front end's policy: it holds no secrets
 * and no mailboxes. Credentials (AUTH PLAIN / LOGIN) go to authd with
 * service=submission, which refuses guests, administrators and users whose
 * smtp switch is off and applies the failure delay and tarpit; login-type
 * decides whether AUTH is offered before TLS. Authentication is required
 * before MAIL (530 5.7.0); the envelope sender and the From header must be
 * the user's address (user@domain) or one of the user's send-as addresses
 * (553 5.7.1).
 *
 * Every accepted message goes into the outbound queue (src/queue/) with
 * its Received header (and Message-ID and Date when missing) added, and is
 * fsynced there before any answer. Recipients in the instance's domain or
 * in local-domains are checked with authd at RCPT (550 5.1.1 when unknown)
 * and delivered over LMTP to their back end's lmtp service; the client gets
 * its 250 once every local recipient's back end answered (a temporary
 * failure leaves the recipient safely queued). Other recipients are
 * relayed from the queue to the smarthost or the domain's MX hosts.
 *
 * Users whose save-sent is on (or "default" with the service's save-sent
 * setting on) also get a copy in their Sent folder: the message from after
 * our Received field on, authorised by authd for its SHA-256 and queued as
 * a recipient of its own (docs/ARCHITECTURE.md, "A copy in Sent"). */

struct worker_service_ops;

extern const struct worker_service_ops submission_service_ops;

#endif
