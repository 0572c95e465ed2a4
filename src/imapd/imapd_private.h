#ifndef POSTERN_IMAPD_PRIVATE_H
#define POSTERN_IMAPD_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/metrics.h"
#include "proto/imap/imap_command.h"
#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_writer.h"

struct conn;
struct event;
struct store;
struct store_folder;
struct store_message;
struct store_event;
struct store_watcher;
struct worker;
struct imapd_fetch;

/* Bounds of the back end (docs/LIMITS.md lists them). */
#define IMAPD_MAX_BAD_COMMANDS	   10		/* consecutive BAD answers before BYE */
#define IMAPD_SHUTDOWN_GRACE_MS	   3000		/* sessions' goodbye at shutdown */
#define IMAPD_DEFAULT_APPEND_LIMIT 36700160	/* max-message-size when unset */
#define IMAPD_FETCH_SLICE_MESSAGES 256		/* FETCH messages per event-loop turn */
#define IMAPD_STORE_SLICE_MESSAGES 256		/* STORE messages per event-loop turn */
#define IMAPD_READ_CHUNK	   65536	/* bytes read from a message file at once */
#define IMAPD_HEADER_READ_MAX	   (256 * 1024) /* header bytes read for HEADER.FIELDS */
#define IMAPD_MAX_PENDING_FLAGS	   4096		/* flag changes remembered for one session */
#define IMAPD_MAX_SELECT_KEYWORDS  256		/* keywords listed in FLAGS at SELECT */
#define IMAPD_WATCH_SETTLE_MS	   40		/* quiet time before reading Maildir changes */
#define IMAPD_WATCH_POLL_MS	   1000		/* folders without an inotify watch are checked */
#define IMAPD_WATCHES_DEFAULT	   8192		/* fs.inotify.max_user_watches if unreadable */

struct imapd {
	struct worker *worker;
	struct imapd_session *sessions;
	unsigned nsessions;
	struct imapd_user *users;
	unsigned next_request_id;
	bool shutting_down;
	struct event *shutdown_ev;
	char *mail_root;
	unsigned pre_auth_timeout_ms;
	unsigned auth_timeout_ms;
	unsigned max_command_size;
	uint64_t append_limit;
	bool literal_minus; /* LITERAL- instead of LITERAL+ (RFC 7888) */

	/* changes other processes make to the users' Maildirs: one watcher
	 * (one inotify instance) for every store of the worker, made at the
	 * first login */
	struct store_watcher *watcher;
	struct event *watch_ev;	 /* its inotify descriptor is readable */
	struct event *settle_ev; /* IMAPD_WATCH_SETTLE_MS after that */
	struct event *poll_ev;	 /* every IMAPD_WATCH_POLL_MS while folders are polled */
	bool poll_logged;	 /* the fall-back to polling was logged */
};

/* One user's store, shared by the user's sessions in this worker: changes
 * made by one session reach the others as in-process notifications, and
 * the worker's watcher brings changes made by other processes (lmtp
 * deliveries, the pop3-backend). */
struct imapd_user {
	struct imapd_user *next;
	struct imapd *srv;
	char *name;
	struct store *store;
	unsigned refs;
	unsigned idling; /* sessions in IDLE: all of them, and the store's caches go */
};

enum imapd_state {
	IMAPD_NOT_AUTH,
	IMAPD_VERIFYING, /* authd is checking the ticket or the admin's password */
	IMAPD_AUTH,
	IMAPD_SELECTED,
	IMAPD_LOGOUT,
};

/* What runs across event-loop turns (input is paused meanwhile). */
enum imapd_async {
	IMAPD_ASYNC_NONE,
	IMAPD_ASYNC_FETCH,
	IMAPD_ASYNC_STORE,
	IMAPD_ASYNC_IDLE,
};

struct imapd_session {
	struct imapd *srv;
	struct conn *conn;
	struct imapd_session *prev, *next;
	enum imapd_state state;
	unsigned request_id;
	unsigned bad_commands;
	bool closing;
	char *login_tag; /* the XLOGIN/LOGIN tag while authd answers */

	struct imap_parser *parser;
	struct imap_parse_ctx parse_ctx;
	struct imap_buf out;
	/* the command being run; valid until the parser is fed again */
	struct imap_command *cmd;
	enum imapd_async async;
	struct event *resume_ev;

	char *user;
	char *client;
	struct imapd_user *u;
	unsigned sub_id;

	/* ENABLEd */
	bool condstore;
	bool qresync; /* expunges are told as VANISHED */
	bool utf8;
	/* IMAP4rev2 (RFC 9051): no \Recent or RECENT, SEARCH answers as
	 * ESEARCH, SELECT sends LIST and no UNSEEN, CLOSED always */
	bool rev2;

	/* the selected folder */
	struct store_folder *folder;
	bool readonly;
	uint32_t *view; /* UIDs by sequence number - 1, as the client knows them */
	size_t view_count, view_cap;
	uint32_t recent_from; /* UIDs from here on are \Recent to this session */
	bool dirty;	      /* the folder changed since the last sync */
	/* store_folder_removed() when the view last held no expunged UID */
	uint64_t removed_seen;
	bool own_change;      /* our own flag change: not reported back */
	uint32_t *flag_changed;
	size_t nflag_changed;
	bool flag_overflow;
	struct imap_seqset saved; /* SEARCHRES "$" as UIDs (heap) */
	bool saved_valid;

	struct imapd_fetch *fetch;
	struct imapd_store_run *store_run;
	struct metrics_timer metrics; /* the command in progress */

	/* APPEND messages written to tmp/ files as their literals arrive
	 * (NULL where the store refused one: append_error says why) */
	struct store_append **appends;
	unsigned nappends;
	bool append_streaming; /* the raw input is the last one's bytes */
	bool append_over_quota;
	char *append_error;
};

/* ---- imapd.c ---- */
/* Queue s->out on the connection and clear it. */
void imapd_flush(struct imapd_session *s);
/* An untagged line ("* " + text + CRLF), flushed. */
void imapd_untagged(struct imapd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The command's tagged answer: the untagged updates allowed now go first,
 * then "<tag> <status> [code args] text". Ends the command: input resumes. */
void imapd_done(struct imapd_session *s, enum imap_status status, enum imap_resp_code code,
		const char *code_args, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A BAD answer that counts towards IMAPD_MAX_BAD_COMMANDS. */
void imapd_bad(struct imapd_session *s, const char *text);
/* Close after flushing what is queued. */
void imapd_close(struct imapd_session *s);
/* Make the session run imapd_resume() from the event loop soon. */
void imapd_schedule(struct imapd_session *s);
/* Ask authd; answers come to imapd_login_verified(). Return 0, or -1 when
 * authd is unreachable. */
int imapd_verify_ticket(struct imapd_session *s, const char *user, const char *peer,
			const char *expiry, const char *mac);
int imapd_direct_login(struct imapd_session *s, const char *admin, const char *password,
		       const char *target);
bool imapd_direct_login_allowed(const struct imapd_session *s);
/* Attach the session to user's shared store (opening it on first use).
 * Returns 0 or -1 with *error_r. */
int imapd_user_attach(struct imapd_session *s, const char *user, uint64_t quota, char **error_r);
struct store *imapd_store(const struct imapd_session *s);
/* Read changes other processes made (the worker's watcher) now. */
void imapd_poll_changes(struct imapd_session *s);

/* ---- imapd_auth.c: not authenticated state, CAPABILITY, ID, ENABLE ---- */
/* The line is an XLOGIN command: handled (true) or not. */
bool imapd_xlogin(struct imapd_session *s, char *line, size_t len);
void imapd_login_verified(struct imapd_session *s, bool ok, const char *user,
			  unsigned long long quota, const char *reason);
/* The post-login capability list. */
const char *imapd_capabilities(const struct imapd_session *s);
const char *imapd_capabilities_pre(const struct imapd_session *s);

/* ---- command handlers (one family per file) ---- */
typedef void imapd_cmd_fn(struct imapd_session *s, struct imap_command *cmd);
imapd_cmd_fn imapd_cmd_capability, imapd_cmd_noop, imapd_cmd_logout, imapd_cmd_login, imapd_cmd_id,
    imapd_cmd_enable, imapd_cmd_compress, imapd_cmd_refuse, imapd_cmd_getquota, imapd_cmd_getquotaroot,
    imapd_cmd_setquota;
/* imapd_mailbox.c */
imapd_cmd_fn imapd_cmd_namespace, imapd_cmd_list, imapd_cmd_create, imapd_cmd_delete,
    imapd_cmd_rename, imapd_cmd_subscribe, imapd_cmd_unsubscribe, imapd_cmd_status;
/* imapd_select.c */
imapd_cmd_fn imapd_cmd_select, imapd_cmd_close, imapd_cmd_unselect, imapd_cmd_expunge,
    imapd_cmd_check;
/* imapd_fetch.c */
imapd_cmd_fn imapd_cmd_fetch;
/* imapd_store.c */
imapd_cmd_fn imapd_cmd_store, imapd_cmd_copy;
/* imapd_append.c */
imapd_cmd_fn imapd_cmd_append;
/* A message literal of an APPEND starts (size bytes): open its tmp/ file. */
void imapd_append_stream_begin(struct imapd_session *s, size_t size);
/* Bytes of it. */
void imapd_append_stream_write(struct imapd_session *s, const void *data, size_t len);
/* Drop the files of a command that failed or did not use them. */
void imapd_append_stream_clear(struct imapd_session *s);
/* imapd_search.c */
imapd_cmd_fn imapd_cmd_search;
/* Run a search over the view: the UIDs found, ascending, in *uids_r
 * (malloc'ed). Returns 0, or -1 after answering the command. */
int imapd_search_uids(struct imapd_session *s, const char *charset, struct imap_search_key *keys,
		      uint32_t **uids_r, size_t *count_r);
/* imapd_sort.c */
imapd_cmd_fn imapd_cmd_sort, imapd_cmd_thread;
/* imapd_idle.c */
imapd_cmd_fn imapd_cmd_idle;

/* ---- imapd_select.c: the selected folder and its updates ---- */
/* Forget the selected folder. */
void imapd_unselect(struct imapd_session *s);
/* Send the untagged updates of the selected folder: new messages, flag
 * changes and, when allow_expunge, expunges. */
void imapd_sync(struct imapd_session *s, bool allow_expunge);
/* The store's change callback (subscribed at login). */
void imapd_store_event(void *ctx, const struct store_event *event);
/* Index in the view of uid, or -1. */
long imapd_view_find(const struct imapd_session *s, uint32_t uid);
/* The snapshot message of a view UID, or NULL when it was expunged. */
const struct store_message *imapd_message(const struct imapd_session *s, uint32_t uid);
/* Iterate the view messages a set names: seq numbers (uid false) or UIDs;
 * the set's "*" must be resolved already. */
struct imapd_iter {
	const struct imap_seqset *set;
	bool uid;
	unsigned range;
	size_t next;
	bool in_range;
};
void imapd_iter_init(struct imapd_iter *it, const struct imap_seqset *set, bool uid);
bool imapd_iter_next(const struct imapd_session *s, struct imapd_iter *it, size_t *index_r);
/* Resolve a command's set ("$", "*"): into *set_r (may be the given set,
 * or s->saved). Returns 1, or -1 after a BAD answer (a sequence number past
 * the last message). */
int imapd_resolve_set(struct imapd_session *s, struct imap_seqset *set, bool uid,
		      const struct imap_seqset **set_r, bool *uid_r);
/* "(\Seen \Answered kw)" for a message (with \Recent when it is). */
void imapd_write_flags(struct imapd_session *s, struct imap_buf *buf,
		       const struct store_message *m);
/* "* VANISHED [(EARLIER)] set" of UIDs (ascending), into s->out. */
void imapd_write_vanished(struct imapd_session *s, const uint32_t *uids, size_t n, bool earlier);
/* "* LIST (attributes) "/" name" of one folder into b (nothing when it
 * cannot be read), with ("OLDNAME" (old_name)) when old_name is not NULL. */
void imapd_write_list_of(struct imapd_session *s, struct imap_buf *b, const char *name,
			 const char *old_name);
/* Whether a mailbox name is the selected folder. */
bool imapd_is_selected(const struct imapd_session *s, const char *name);

/* ---- imapd_fetch.c ---- */
void imapd_fetch_resume(struct imapd_session *s);
void imapd_fetch_free(struct imapd_session *s);
/* ---- imapd_store.c ---- */
void imapd_store_resume(struct imapd_session *s);
void imapd_store_free(struct imapd_session *s);
/* ---- imapd_idle.c ---- */
/* A line while IDLE runs. */
void imapd_idle_line(struct imapd_session *s, const char *line, size_t len);
/* The folder changed: idling sessions get the updates now. */
void imapd_idle_notify(struct imapd_session *s);

#endif
