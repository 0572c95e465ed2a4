#ifndef POSTERN_POP3D_H
#define POSTERN_POP3D_H

/* The pop3-backend service: POP3 (RFC 1939, RFC 2449) on the mailbox
 * store, for front ends only. A session starts with the front end's
 * XLOGIN, carrying the user, the client's address and a one-time ticket
 * from authd; the back end has authd check the ticket and then serves the
 * user's INBOX. */

struct worker_service_ops;
extern const struct worker_service_ops pop3_backend_ops;

#endif
