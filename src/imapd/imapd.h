#ifndef POSTERN_IMAPD_H
#define POSTERN_IMAPD_H

/* The imap4-backend service: IMAP4rev1 (RFC 3501) and its extensions on
 * the mailbox store, for front ends only. A session starts with the front
 * end's "X XLOGIN user client-address expiry ticket"; the back end has
 * authd check the ticket, opens the user's store (shared by every session
 * of that user in this worker) and answers "X OK [CAPABILITY ...]". */

struct worker_service_ops;
extern const struct worker_service_ops imap4_backend_ops;

#endif
