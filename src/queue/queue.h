#ifndef POSTERN_QUEUE_H
#define POSTERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The outbound queue on disk: DATADIR/queue/. No event loop here, so that
 * posternctl can use it too (src/queue/queue_runner.h delivers).
 *
 * One entry is two files named by its id:
 *   ID.msg  the message, exactly as it will be sent (CRLF line ends, the
 *           submission service's Received/Message-ID/Date already added);
 *           never changed once committed;
 *   ID.env  the envelope and the delivery state of every recipient, as
 *           "key value" lines (values percent-encoded). Replaced as a whole
 *           on every change: written to tmp/, fsynced, renamed over the old
 *           one, so a crash leaves either the old or the new state.
 * An entry exists once ID.env exists. Commit order: ID.msg is written in
 * tmp/ and fsynced, then renamed, then ID.env is written and renamed, then
 * the directory is fsynced: nothing is acknowledged before all of that.
 * An ID.msg without ID.env (a crash during commit) was never acknowledged
 * and is removed by queue_cleanup().
 *
 * Whoever works on an entry (a delivery attempt, posternctl flush/delete)
 * holds an exclusive flock() on its ID.msg (queue_entry_lock()), so one
 * entry is never delivered by two processes at once.
 *
 * The one unavoidable window: a recipient accepted by the next hop is
 * recorded right after its reply; a crash between the two sends that
 * recipient's copy again on the next attempt (at least once, like every
 * MTA), never less.
 *
 * Return convention: -1 error (*error_r malloc'ed), 0 not found / not done,
 * 1 done, unless said otherwise. */

#define QUEUE_DIR_NAME "queue"
/* 12 hex digits of microseconds, 8 of randomness, 4 of the pid */
#define QUEUE_ID_LEN 24
/* orphaned ID.msg and tmp/ files older than this are removed */
#define QUEUE_ORPHAN_AGE_S 3600
/* bounds of what a loaded envelope may hold */
#define QUEUE_MAX_RCPTS	   10000
#define QUEUE_MAX_ENV_LINE 4096
#define QUEUE_MAX_ENV_SIZE (4 * 1024 * 1024)

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING, /* not delivered yet */
	QUEUE_RCPT_SENT,    /* the next hop accepted it */
	QUEUE_RCPT_FAILED,  /* permanent failure or expired: a DSN is due */
	QUEUE_RCPT_BOUNCED, /* failed and reported (or no report wanted) */
};

enum queue_route {
	QUEUE_ROUTE_LOCAL,  /* LMTP to the back end at lmtp */
	QUEUE_ROUTE_REMOTE, /* SMTP to the smarthost or the domain's MX hosts */
	/* the submitter's copy for its Sent folder: LMTP to the back end at
	 * lmtp, the message from copy_offset on (without the trace field the
	 * submission service added), named with copy_auth (authd_ticket.h) */
	QUEUE_ROUTE_SENT,
};

/* DSN NOTIFY bits (RFC 3461), 0 when not given (failure reports only) */
#define QUEUE_NOTIFY_NEVER   (1u << 0)
#define QUEUE_NOTIFY_SUCCESS (1u << 1)
#define QUEUE_NOTIFY_FAILURE (1u << 2)
#define QUEUE_NOTIFY_DELAY   (1u << 3)

enum queue_ret { QUEUE_RET_DEFAULT, QUEUE_RET_FULL, QUEUE_RET_HDRS };

struct queue_rcpt {
	char *address; /* "local@domain" as given in RCPT TO */
	enum queue_rcpt_state state;
	enum queue_route route;
	char *lmtp; /* local: the back end's lmtp address (net_addr form) */
	unsigned notify;
	char *orcpt;  /* "rfc822;..." as given, or "" */
	char *status; /* the last reply about it: "550 5.1.1 text", or "" */
	char *remote; /* the host that gave that reply, or "" */
};

struct queue_entry {
	char id[QUEUE_ID_LEN + 1];
	char *sender;	   /* reverse path, "" for <> (a DSN) */
	char *user;	   /* the submitting user, "" for a DSN */
	char *sender_lmtp; /* the submitting user's lmtp address, for reports */
	char *envid;	   /* ENVID xtext, or "" */
	enum queue_ret ret;
	bool smtputf8;
	bool eightbit;
	long long created;  /* unix time */
	long long next_try; /* unix time of the next attempt, 0: now */
	unsigned attempts;
	uint64_t size;	      /* bytes of ID.msg */
	uint64_t copy_offset; /* where the Sent copy starts in ID.msg */
	char *copy_auth;      /* "DIGEST.MAC" for the Sent copy, or NULL / "" */
	struct queue_rcpt *rcpts;
	size_t nrcpts;
};

/* A message being written. */
struct queue_writer;

/* DATADIR/queue, created (with tmp/) when missing. Returns 0 with *dir_r
 * (malloc'ed), or -1. */
int queue_dir_open(const char *datadir, char **dir_r, char **error_r);

/* Fill buf (QUEUE_ID_LEN + 1 bytes) with a new unique id. */
void queue_new_id(char *buf);

/* Begin a message in dir/tmp/. Returns 0 with *w_r, or -1. */
int queue_writer_begin(const char *dir, struct queue_writer **w_r, char **error_r);
/* Append bytes. Returns 0, or -1 (the writer stays usable only for abort). */
int queue_writer_write(struct queue_writer *w, const void *data, size_t len, char **error_r);
/* Bytes written so far. */
uint64_t queue_writer_size(const struct queue_writer *w);
/* The id the entry will have. */
const char *queue_writer_id(const struct queue_writer *w);
/* Make the message durable and create the entry with envelope e (its id and
 * size are set here). Frees the writer and clears *w. Returns 0 once both
 * files are on disk, or -1 (nothing is left behind). The entry's lock is
 * held from queue_writer_begin() on: with lock_fd_r it stays held and
 * *lock_fd_r is the message opened for reading (release with
 * queue_entry_unlock()); with NULL it is released. */
int queue_writer_commit(struct queue_writer **w, struct queue_entry *e, int *lock_fd_r,
			char **error_r);
/* Drop an uncommitted message; clears *w (NULL is fine). */
void queue_writer_abort(struct queue_writer **w);

/* Replace e's envelope file (write, fsync, rename). Returns 0 or -1. */
int queue_entry_save(const char *dir, const struct queue_entry *e, char **error_r);
/* Load an entry. Returns 1 with *e_r, 0 when it does not exist, -1 on a
 * read error or a malformed file. */
int queue_entry_load(const char *dir, const char *id, struct queue_entry **e_r, char **error_r);
/* Remove an entry: the envelope first, then the message. Returns 0 or -1. */
int queue_entry_remove(const char *dir, const char *id, char **error_r);
/* Free an entry and clear *e. */
void queue_entry_free(struct queue_entry **e);
/* Add a recipient (strings copied; NULL is ""). Returns it. */
struct queue_rcpt *queue_entry_add_rcpt(struct queue_entry *e, const char *address,
					enum queue_route route, const char *lmtp, unsigned notify,
					const char *orcpt);
/* Replace a string field of an entry or recipient (copies value). */
void queue_set_str(char **field, const char *value);

/* Take the entry's lock (flock on ID.msg). wait: block until free.
 * Returns 1 with *fd_r (close it, or queue_entry_unlock, to release), 0
 * when another process holds it (only without wait) or the entry is gone,
 * -1 on error. */
int queue_entry_lock(const char *dir, const char *id, bool wait, int *fd_r, char **error_r);
void queue_entry_unlock(int *fd);

/* The ids of every entry, sorted (oldest first). Returns 0 with a
 * malloc'ed array of malloc'ed strings (free with queue_ids_free()), or -1. */
int queue_list(const char *dir, char ***ids_r, size_t *count_r, char **error_r);
void queue_ids_free(char ***ids, size_t count);

/* dir/ID.msg (malloc'ed). */
char *queue_message_path(const char *dir, const char *id);

/* Remove orphans: ID.msg without ID.env and tmp/ files, older than
 * QUEUE_ORPHAN_AGE_S. Returns the number removed. */
unsigned queue_cleanup(const char *dir);

/* "pending", "sent", "failed", "bounced" / "local", "remote", "sent-copy". */
const char *queue_rcpt_state_name(enum queue_rcpt_state state);
const char *queue_route_name(enum queue_route route);

#endif
