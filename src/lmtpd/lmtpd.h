#ifndef POSTERN_LMTPD_H
#define POSTERN_LMTPD_H

/* The lmtp service (RFC 2033): delivery into the mailbox store of this back
 * end, for the submission service and for any MTA (Postfix's
 * mailbox_transport = lmtp:unix:DATADIR/lmtp.sock).
 *
 * Recipients are checked with authd (IPC_USER_LOOKUP): unknown users get
 * 550 5.1.1. The domain of a recipient is not checked: the worker has no
 * directory access, and the MTA in front routes only the instance's domains
 * here. A "+detail" sub-address delivers to its user (alice+tag@ to alice).
 * After DATA (or BDAT LAST) every accepted recipient gets its own reply, in
 * RCPT order; 250 only once store_append_commit() made the message durable
 * in the user's INBOX. Each stored copy starts with Return-Path and Received
 * header lines.
 *
 * XSENTCOPY (postern's own LHLO keyword and RCPT parameter,
 * "RCPT TO:<alice@example.com> XSENTCOPY=DIGEST.MAC"): the submission
 * service files the copy of a message alice submitted in her Sent folder
 * (SPECIAL-USE \Sent, made when missing) as it was submitted: without
 * trace fields, flagged \Seen. The parameter does not name a folder and
 * nobody can choose one: DIGEST is the SHA-256 of the copy's bytes and MAC
 * authd's HMAC over the user and that digest (authd_ticket.h), which only
 * the submission service can obtain, for the user who logged in there. The
 * lmtp service has authd check the MAC at RCPT (550 5.7.1 when it is not
 * authd's) and the bytes against DIGEST at the end of the data (554 5.7.1
 * when they differ, nothing stored). */

struct worker_service_ops;

extern const struct worker_service_ops lmtp_service_ops;

#endif
