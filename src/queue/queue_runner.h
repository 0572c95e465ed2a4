#ifndef POSTERN_QUEUE_RUNNER_H
#define POSTERN_QUEUE_RUNNER_H

#include <stdbool.h>

#include "queue/queue.h"
#include "queue/smtp_client.h"

/* Delivery of queue entries on the event loop (the submission service's
 * workers run it).
 *
 * One attempt of an entry: its pending local recipients first, grouped by
 * back end, over LMTP; then (after local_done, see below) the submitter's
 * copy for its Sent folder, if any, over LMTP with its XSENTCOPY
 * authorisation (src/lmtpd/lmtpd.h); then its pending remote recipients
 * over SMTP, all at
 * once to the smarthost when one is set, else grouped by domain to the
 * domain's MX hosts in preference order (the domain's own A/AAAA when it
 * has no MX, RFC 5321 5.1), trying the next host when one cannot be
 * reached or answers with a temporary failure of the whole transaction.
 * Each reply is recorded in the envelope file at once. At the end of the
 * attempt: recipients that failed permanently get one delivery status
 * notification (RFC 3464) to the sender, itself a new entry (sender <>);
 * when none is pending any more the entry is removed; else the next try is
 * set after a back-off (queue-retry-interval doubling per attempt up to
 * queue-max-retry-interval) and, once the entry is older than
 * queue-lifetime, what is still pending fails with 4.4.7 and is reported.
 *
 * Every worker delivers the entries it just accepted itself. One worker at
 * a time (the holder of a flock on queue/runner.lock) also scans the queue
 * every QUEUE_SCAN_INTERVAL_S for entries whose next try is due (and for
 * entries whose submitter died). Per-entry locks (queue.h) keep an entry
 * from being delivered twice at once.
 *
 * MX and host lookups never block the loop (queue_dns.h): a domain whose
 * DNS says it does not exist, has no MX and no address, or has a null MX
 * (RFC 7505) fails at once (550 5.1.2, 556 5.1.10); MX hosts without any
 * address fail too (550 5.4.4); a DNS failure or timeout defers (451
 * 4.4.3). */

#define QUEUE_SCAN_INTERVAL_S 5
/* entries being delivered at once by the scan, at most */
#define QUEUE_MAX_ACTIVE 16
/* MX hosts tried per domain, and addresses per host */
#define QUEUE_MAX_MX	8  /* = QUEUE_DNS_MAX_MX */
#define QUEUE_MAX_ADDRS 16 /* = QUEUE_DNS_MAX_ADDRS */
/* the original message is attached whole to a DSN up to this size; larger
 * ones get their header only */
#define QUEUE_DSN_MAX_ATTACH (1024 * 1024)

struct event_base;
struct queue_runner;

struct queue_runner_settings {
	const char *hostname;  /* our name in EHLO/LHLO and in reports */
	const char *smarthost; /* "" or host[:port] */
	enum smtp_client_tls smarthost_tls;
	const char *smarthost_user; /* AUTH PLAIN at the smarthost, or NULL */
	const char *smarthost_password;
	unsigned retry_s;
	unsigned max_retry_s;
	unsigned lifetime_s;
	const char *resolvers; /* DNS servers, "" for /etc/resolv.conf (queue_dns.h) */
	unsigned mx_port;      /* 25, another port only for tests */
};

/* The local part of an attempt is over: every local recipient has an
 * answer in e (SENT, FAILED, or PENDING with its temporary status). The
 * callback may mark FAILED recipients BOUNCED when it reported them itself
 * (the submitter's reply): no DSN is then written for them. */
typedef void queue_runner_local_done_cb(void *ctx, struct queue_entry *e);

/* Make a runner on dir (DATADIR/queue). Strings of set are copied. */
struct queue_runner *queue_runner_new(struct event_base *base, const char *dir,
				      const struct queue_runner_settings *set);
/* Replace the settings (for attempts started from now on). */
void queue_runner_set_settings(struct queue_runner *r, const struct queue_runner_settings *set);
/* Stop: attempts in progress are dropped (their entries stay as saved, and
 * are tried again by whoever scans next). Clears *r. */
void queue_runner_free(struct queue_runner **r);

/* Try to become the scanning worker now and then every scan interval. */
void queue_runner_scan_start(struct queue_runner *r);

/* Deliver a just committed entry now. The runner takes e and lock_fd (from
 * queue_writer_commit()). local_done (may be NULL) is called once, from the
 * loop, when the local recipients are done; ctx identifies the caller for
 * queue_runner_forget(). */
void queue_runner_deliver(struct queue_runner *r, struct queue_entry *e, int lock_fd,
			  queue_runner_local_done_cb *local_done, void *ctx);
/* The caller of queue_runner_deliver() went away: no callback for ctx. */
void queue_runner_forget(struct queue_runner *r, void *ctx);

/* queue_dsn.c: write the delivery status notification for e's FAILED
 * recipients as a new committed entry addressed to e's sender. Returns 1
 * with *dsn_r and *lock_fd_r (as queue_writer_commit()), 0 when no report
 * is due (null sender, NOTIFY without FAILURE), -1 with *error_r. */
int queue_dsn_create(const char *dir, const struct queue_entry *e, const char *hostname,
		     struct queue_entry **dsn_r, int *lock_fd_r, char **error_r);

/* "550 5.1.1 text" -> "5.1.1"; a reply without one gets "5.0.0" / "4.0.0"
 * from its code. buf has room for 16 bytes. */
const char *queue_status_code(const char *reply, char *buf);

#endif
