#ifndef POSTERN_FRONTEND_H
#define POSTERN_FRONTEND_H

/* The client-facing services: TLS, the pre-authentication dialogue of each
 * protocol, the login policy, and the hand-over to the user's back end.
 * Front-end workers hold no mailboxes and no password hashes: credentials
 * go to authd, which answers with a verdict and the user's back end. */

struct worker_service_ops;

extern const struct worker_service_ops pop3_frontend_ops;
extern const struct worker_service_ops imap4_frontend_ops;

#endif
