#ifndef POSTERN_STORE_PRIVATE_H
#define POSTERN_STORE_PRIVATE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mail/mime_parser.h"
#include "store/store.h"

/* Internals shared by the store's files. Layout of a user's store:
 *   <mail_root>/<user>/              INBOX's Maildir (cur/ new/ tmp/)
 *   <mail_root>/<user>/.<a>.<b>/     folder "a/b" (Maildir++); each level
 *                                    escaped: bytes other than letters,
 *                                    digits, ' ', '-', '_' as %XX
 *   <mail_root>/<user>/postern-index.sqlite   the index (WAL)
 * File names: <sec>.M<usec>P<pid>Q<n>R<rand>.<host>,S=<size>:2,<flags>;
 * the part before ":2," (the base) never changes, the flags do. */

#define STORE_INDEX_FILE "postern-index.sqlite"
#define STORE_TEXT_MAX	 (1024 * 1024) /* bytes of search text kept per message */
/* prepared statements a store keeps (the store's own SQL is some 55
 * texts); past it, statements are prepared for one use */
#define STORE_STMT_CACHE_MAX 64

struct store_sub {
	unsigned id;
	store_event_cb *cb;
	void *ctx;
};

/* A statement kept prepared for the life of the store (store_stmt()). */
struct store_stmt_slot {
	const char *sql; /* the caller's text: a string constant, not owned */
	sqlite3_stmt *st;
	bool in_use; /* handed out, not yet given back by store_stmt_done() */
};

struct store {
	char *path; /* the user's Maildir root */
	sqlite3 *db;
	struct store_stmt_slot stmts[STORE_STMT_CACHE_MAX];
	size_t nstmts;
	bool lazy_txn; /* the open transaction is store_index_begin_lazy()'s */
	uint64_t quota_limit;
	struct store_folder *open_folders;
	struct store_sub *subs;
	size_t nsubs;
	unsigned next_sub_id;
	unsigned name_counter;
	/* changes made by other processes (store_watch.c) */
	struct store_watcher *watcher;	       /* NULL: not attached */
	struct store *watch_prev, *watch_next; /* the watcher's attached stores */
	struct store_watch **watches;	       /* owned */
	size_t nwatches;
	char **polled; /* folders without a watch, checked by polling; owned */
	size_t npolled;
	bool watch_dirty; /* has entries for the next store_watcher_handle() */
	struct store_seen *seen;
	size_t nseen;
	char host[64];
};

/* An open folder. One per folder and store: every store_folder_open() of
 * the same folder shares it (refs counts the openers), so the sessions of
 * one user in one process keep one message list between them, and a
 * refresh made for one is seen by all. */
struct store_folder {
	struct store *store;
	struct store_folder *next_open;
	unsigned refs;
	int64_t id;
	char *name;
	char *dir;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	/* every change up to this MODSEQ is in msgs; a refresh reads only
	 * what is newer (highestmodseq may be ahead: our own flag changes
	 * are applied in place at once) */
	uint64_t loaded_modseq;
	uint64_t removed; /* messages taken out of msgs by refreshes */
	char mailbox_id[STORE_OBJECTID_MAX + 1];
	/* by UID; keywords point at owned strings, or at store_no_keywords */
	struct store_message *msgs;
	size_t count, cap;
};
extern const char store_no_keywords[];

/* What this store has reported of a folder: changes with a greater MODSEQ
 * were made by another process (or program) and are reported by
 * store_notify_report(). Kept while the store is attached to a watcher. */
struct store_seen {
	char *folder;
	uint64_t modseq;
	uint32_t uidnext;
};

/* One inotify watch of an attached store: new/ or cur/ of a folder. The
 * kernel gives a directory one watch descriptor per inotify instance, so
 * the entries of every store watching that directory share the wd and are
 * chained through next_same (store_watch.c). */
struct store_watch {
	struct store *store;
	struct store_watch *next_same;
	int wd;
	bool is_new;	    /* new/ (only other programs write there) or cur/ */
	unsigned char todo; /* what the next store_watcher_handle() does */
	char *folder;
};

/* store_index.c */
int store_index_open(struct store *store, char **error_r);
/* Finalize the kept statements and close the index (store->db may be
 * NULL). Every statement from store_stmt() must have been given back. */
void store_index_close(struct store *store);
int store_index_begin(struct store *store, char **error_r);
/* A write transaction whose commit returns before it reaches the disk: it
 * survives a crash of the process at once, and a power failure once a
 * later durable commit or a checkpoint has flushed the WAL. For flag
 * changes, which need no flush of their own (a message is never lost by
 * losing one). Commit or roll back as usual. */
int store_index_begin_lazy(struct store *store, char **error_r);
int store_index_commit(struct store *store, char **error_r);
void store_index_rollback(struct store *store);
char *store_db_error(struct store *store, const char *what);
/* A prepared statement for sql (one SQL statement), ready to bind and
 * step; NULL with *error_r when it does not prepare. sql must be a string
 * constant (or otherwise outlive the store): statements are kept in the
 * store, looked up by that pointer, then by text, and handed out again
 * after store_stmt_done(). Asked for again while the kept one is out
 * (nested use), or once STORE_STMT_CACHE_MAX are kept, it is a statement
 * of its own for this one use. SQL built at run time does not belong here
 * (store_exec(), or bind its values), nor PRAGMAs that act when prepared
 * (synchronous=...: a kept one would not act again). The caller owns the
 * statement until it passes it to store_stmt_done(). */
sqlite3_stmt *store_stmt(struct store *store, const char *sql, char **error_r);
/* Give back a statement from store_stmt() and clear *st (NULL is fine): a
 * kept one is reset and its bindings cleared, any other finalized. Text
 * and blobs read from its columns are invalid afterwards; the database's
 * error message (store_db_error()) still tells the statement's last
 * error. */
void store_stmt_done(struct store *store, sqlite3_stmt **st);
/* Finalize the kept statements (none may be out); store_index_close()
 * does this first. */
void store_stmt_cache_clear(struct store *store);
int store_exec(struct store *store, const char *sql, char **error_r);
/* Run sql (one statement; a string constant, as for store_stmt()) to its
 * end with ?1 = a and ?2 = b, as far as it has parameters. Returns 0, or
 * -1 with *error_r naming what. */
int store_index_run(struct store *store, const char *sql, int64_t a, int64_t b, const char *what,
		    char **error_r);
/* Folder row by normalised name: 1 with fields, 0 none, -1. */
/* The folder's MAILBOXID (RFC 8474) into buf ("" when unknown). */
int store_index_folder_mailbox_id(struct store *store, int64_t id, char *buf, size_t size,
				  char **error_r);
int store_index_folder_get(struct store *store, const char *name, int64_t *id_r,
			   uint32_t *uidvalidity_r, uint32_t *uidnext_r, uint64_t *modseq_r,
			   char **error_r);
int store_index_folder_add(struct store *store, const char *name, const char *role, char **error_r);
/* Take the next UID and MODSEQ of a folder inside a transaction. */
int store_index_next_uid(struct store *store, int64_t folder_id, uint32_t *uid_r,
			 uint64_t *modseq_r, char **error_r);
int store_index_bump_modseq(struct store *store, int64_t folder_id, uint64_t *modseq_r,
			    char **error_r);
int store_index_quota_add(struct store *store, int64_t delta, char **error_r);

/* store_maildir.c */
char *store_maildir_escape(const char *name);
char *store_maildir_unescape(const char *dirname);
char *store_maildir_dir(const struct store *store, const char *name);
int store_maildir_create(const char *dir, char **error_r);
char *store_maildir_new_base(struct store *store, uint64_t size);
/* base + ":2," + flag letters */
char *store_maildir_fname(const char *base, unsigned flags);
/* Split a file name: base (malloc'ed) and flags from the ":2," letters. */
char *store_maildir_parse(const char *fname, unsigned *flags_r, bool *has_info_r);
int store_fsync_dir(const char *dir, char **error_r);
int store_rmtree(const char *path);
void store_fsync_dir_quiet(const char *dir);
/* store_folder.c */
int store_adopt_folders(struct store *store, char **error_r);
/* Set a snapshot message's keywords (a copy; "" or NULL: none). */
void store_snapshot_set_keywords(struct store_message *m, const char *keywords);

/* store_text.c: the parsed form and search text of a message */
struct store_parsed {
	char *envelope, *body, *bodystructure;
	char *header_text; /* decoded header fields, one per line */
	char *body_text;   /* decoded text of text/ parts */
	int64_t sent_day;  /* days since 1970-01-01 from Date:, or INT64_MIN */
	struct store_section *sections;
	size_t nsections;
};
struct store_section {
	char *section;
	bool is_message;
	uint64_t header_start, body_start, end, lines;
};
struct store_textgen;
struct store_textgen *store_textgen_new(void);
void store_textgen_feed(struct store_textgen *gen, const void *data, size_t len);
/* Finish: fill *parsed (free with store_parsed_clear). */
void store_textgen_finish(struct store_textgen **gen, struct store_parsed *parsed);
void store_textgen_free(struct store_textgen **gen);
/* Parse a whole file (read in bounded chunks). Returns 0 or -1. */
int store_parse_fd(int fd, struct store_parsed *parsed, char **error_r);
void store_parsed_clear(struct store_parsed *parsed);
/* Case folding used for search text and queries (both paths alike). */
char *store_fold(const char *s);
int64_t store_date_day(const char *date_header);

/* store_message.c */
int store_index_insert_message(struct store *store, int64_t folder_id, uint32_t uid,
			       uint64_t modseq, const char *base, const char *fname, uint64_t size,
			       time_t internal_date, unsigned flags, const char *keywords,
			       const char *guid, const struct store_parsed *parsed, char **error_r);
void store_guid_new(char guid[33]);

/* store_reconcile.c */
int store_reconcile_folder(struct store *store, int64_t folder_id, const char *name, bool force,
			   unsigned *added_r, unsigned *removed_r, char **error_r);

/* store_notify.c */
void store_notify(struct store *store, enum store_event_kind kind, const char *folder, uint32_t uid,
		  unsigned flags, uint64_t modseq);
/* Remember a folder's MODSEQ and UIDNEXT as reported, unless known. */
void store_notify_track(struct store *store, const char *folder);
/* Forget what was reported of every folder. */
void store_notify_forget(struct store *store);
/* Report to the subscribers what changed in a folder since this store
 * last looked (new messages, flag changes, expunges made by other
 * processes; from the index, by MODSEQ). A folder not tracked yet is
 * tracked from now on. Returns 0, or -1 with *error_r. */
int store_notify_report(struct store *store, const char *folder, char **error_r);

/* store_watch.c */
/* Watch a folder's new/ and cur/ for an attached store (nothing when not
 * attached): a new folder, or the new name of a renamed one. A folder
 * that cannot be watched is polled. */
void store_watch_add_folder(struct store *store, const char *name);
/* True when inotify watches both new/ and cur/ of folder for this store:
 * changes other programs make there reach the store through its watcher,
 * which reconciles the folder. False for a polled folder and for a store
 * that is not attached. */
bool store_watch_covers(const struct store *store, const char *folder);

#endif
