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
 * header lines. */

struct worker_service_ops;

extern const struct worker_service_ops lmtp_service_ops;

#endif
