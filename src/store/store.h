#ifndef POSTERN_STORE_H
#define POSTERN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The mailbox store of one back end: one folder tree per user under
 * DATADIR/mail/<user>/, message bodies in Maildir++ (the truth), a per-user
 * SQLite index (WAL) with UIDs, flags, keywords, MODSEQ, sizes and the
 * parsed MIME structure.
 *
 * Ownership and threading: a struct store belongs to one process and is
 * used from one thread. Every function here is synchronous and bounded:
 * nothing reads a whole folder or a whole message unless asked.
 *
 * Return convention: -1 error (text in *error_r, malloc'ed, caller frees),
 * 0 not found / not yet, 1 done, unless stated otherwise. */

struct store;
struct store_folder;
struct store_append;

/* ---- opening ---- */

/* Open (creating on first use) the store of user under mail_root
 * (DATADIR/mail). A new store gets INBOX and the special-use folders Sent,
 * Drafts, Trash, Junk and Archive. The user name must already be valid for
 * the directory; it is mapped to a safe folder name here. A store whose
 * index disagrees with its Maildir files is reconciled on open (the files
 * win: unknown files get new UIDs, missing files are expunged, UIDVALIDITY
 * is kept). quota_bytes 0 means unlimited. */
int store_open(const char *mail_root, const char *user, uint64_t quota_bytes,
	       struct store **store_r, char **error_r);
void store_close(struct store **store);

/* Bytes used by the user's messages (all folders), as the quota counts. */
uint64_t store_quota_used(struct store *store);
uint64_t store_quota_limit(struct store *store);

/* ---- delivery and APPEND: stream a message in, then commit ---- */

/* Begin a new message for folder (created on first use only when it is
 * INBOX). size_hint (0 if unknown) lets an over-quota message be refused
 * before its bytes arrive: -1 with *over_quota_r = true. */
int store_append_begin(struct store *store, const char *folder, uint64_t size_hint,
		       struct store_append **append_r, bool *over_quota_r, char **error_r);
/* folder NULL: the folder is chosen later with store_append_set_folder()
 * (an IMAP APPEND's message arrives before its command is complete). */
/* Choose (or change) the folder of an unfinished message. Returns 1, 0
 * when the folder does not exist, -1 on error. */
int store_append_set_folder(struct store_append *append, const char *folder, char **error_r);
/* Bytes written so far. */
uint64_t store_append_size(const struct store_append *append);
/* Add message bytes, exactly as they are to be stored (CRLF line ends). */
int store_append_write(struct store_append *append, const void *data, size_t len, char **error_r);
/* Make the message durable (file fsynced and renamed into cur/, directory
 * fsynced, index row committed) and give its UID. flags: system flags and
 * keywords as IMAP spells them ("\\Seen", "$Forwarded"), may be NULL.
 * internal_date 0 means now. After 1 the message is never lost; on -1
 * nothing of it remains. Over quota: -1 with *over_quota_r = true. The
 * append is freed in every case. */
int store_append_commit(struct store_append **append, const char *const *flags, size_t nflags,
			time_t internal_date, uint32_t *uid_r, bool *over_quota_r, char **error_r);
/* Drop an unfinished message. */
void store_append_abort(struct store_append **append);

/* ---- reading a folder ---- */

struct store_message {
	uint32_t uid;
	uint64_t size; /* exact bytes of the message as served */
	time_t internal_date;
	uint64_t modseq;
	unsigned flags;	      /* STORE_FLAG_* */
	char guid[33];	      /* stable across moves and UIDVALIDITY changes; POP3 UIDL;
				 kept by copies (IMAP EMAILID) */
	time_t save_date;     /* when it entered this folder (IMAP SAVEDATE) */
	const char *keywords; /* space-separated IMAP keywords, "" if none; owned by the
				 folder snapshot */
};

enum store_flag {
	STORE_FLAG_SEEN = 1 << 0,
	STORE_FLAG_ANSWERED = 1 << 1,
	STORE_FLAG_FLAGGED = 1 << 2,
	STORE_FLAG_DELETED = 1 << 3,
	STORE_FLAG_DRAFT = 1 << 4,
	STORE_FLAG_RECENT = 1 << 5,
};
#define STORE_FLAGS_SYSTEM                                                                         \
	(STORE_FLAG_SEEN | STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED | STORE_FLAG_DELETED |         \
	 STORE_FLAG_DRAFT)

/* Open a folder by name ("INBOX" case-insensitively, others exactly).
 * Returns 1, 0 when it does not exist, -1 on error. The folder's message
 * list is a snapshot taken now; store_folder_refresh() brings it up to
 * date (reading only what changed since).
 *
 * Opening a folder that is open already in this store returns the same
 * handle (refreshed), and each opener closes it once: the openers share
 * one message list, so a refresh made for one is seen by every one, and a
 * message of a snapshot may be gone (expunged) or new to a caller that
 * keeps its own list of UIDs, as the IMAP back end's sessions do. */
int store_folder_open(struct store *store, const char *name, struct store_folder **folder_r,
		      char **error_r);
void store_folder_close(struct store_folder **folder);
uint32_t store_folder_uidvalidity(const struct store_folder *folder);
uint32_t store_folder_uidnext(const struct store_folder *folder);
/* Messages in the snapshot, in UID order. */
size_t store_folder_count(const struct store_folder *folder);
const struct store_message *store_folder_message(const struct store_folder *folder, size_t index);
/* Bring the folder's message list up to date (new deliveries, flag
 * changes, other sessions' expunges): only messages with a MODSEQ above
 * the snapshot's and UIDs expunged since are read, and the Maildir
 * directories are re-read only when no inotify watch covers them. */
int store_folder_refresh(struct store_folder *folder, char **error_r);
/* How many messages refreshes have taken out of the snapshot since it was
 * opened: a caller whose list of UIDs was complete at one value has no
 * expunged UID in it while the value stays the same. */
uint64_t store_folder_removed(const struct store_folder *folder);

/* Open a message's bytes for reading: a read-only descriptor positioned at
 * 0, exactly store_message.size bytes long. Returns 1, 0 when the message is
 * gone (expunged meanwhile), -1 on error. */
int store_message_open(struct store_folder *folder, uint32_t uid, int *fd_r, char **error_r);

/* Change flags: add and remove are STORE_FLAG_* masks. Bumps MODSEQ. */
int store_flags_update(struct store_folder *folder, uint32_t uid, unsigned add, unsigned remove,
		       char **error_r);
/* Remove messages for good (files unlinked, index rows deleted, quota
 * released). UIDs are never reused. */
int store_expunge(struct store_folder *folder, const uint32_t *uids, size_t count, char **error_r);

/* ==== additions for the IMAP back end, admin and delivery ==== */

/* Limits of folder names (UTF-8, '/' separates levels). */
#define STORE_FOLDER_NAME_MAX  255
#define STORE_FOLDER_DEPTH_MAX 16
#define STORE_KEYWORD_MAX      64  /* bytes of one keyword */
#define STORE_KEYWORDS_MAX     128 /* keywords on one message */
#define STORE_SEARCH_DEPTH_MAX 32  /* nesting of AND/OR/NOT in a search */
#define STORE_OBJECTID_MAX     40  /* bytes of a MAILBOXID (RFC 8474) */

/* Check a folder name: non-empty UTF-8 of at most STORE_FOLDER_NAME_MAX
 * bytes and STORE_FOLDER_DEPTH_MAX levels, no control bytes, no leading or
 * trailing '/', no empty level ("a//b"), no "." or ".." level. "INBOX" in any
 * letter case (also as the first level) is normalised to "INBOX".
 * Returns 0 with *normalised_r (malloc'ed) or -1 with *error_r saying what
 * is wrong. */
int store_folder_name_check(const char *name, char **normalised_r, char **error_r);

/* Special-use roles (RFC 6154), as IMAP spells them. */
#define STORE_ROLE_SENT	   "\\Sent"
#define STORE_ROLE_DRAFTS  "\\Drafts"
#define STORE_ROLE_TRASH   "\\Trash"
#define STORE_ROLE_JUNK	   "\\Junk"
#define STORE_ROLE_ARCHIVE "\\Archive"

/* Create a folder (missing parent levels are created too, without role).
 * role is NULL or a STORE_ROLE_*. Returns 1, 0 when it exists already
 * (with *error_r), -1 on error (bad name: *error_r says why). */
int store_folder_create(struct store *store, const char *name, const char *role, char **error_r);
/* Delete a folder, its messages and every folder below it. INBOX cannot be
 * deleted. Quota is released. Returns 1, 0 when it does not exist, -1. */
int store_folder_delete(struct store *store, const char *name, char **error_r);
/* Rename a folder and every folder below it (keeping UIDVALIDITY, UIDs
 * and messages). Renaming INBOX is refused (RFC 3501's move-all-messages
 * rename is not offered); a target that exists or is below the source is
 * refused. Returns 1, 0 when the source does not exist, -1. */
int store_folder_rename(struct store *store, const char *from, const char *to, char **error_r);
/* Subscribe (true) or unsubscribe a name; the folder need not exist.
 * Returns 1 or -1. */
int store_folder_subscribe(struct store *store, const char *name, bool subscribed, char **error_r);

struct store_folder_info {
	char *name;
	char *role; /* NULL or STORE_ROLE_* */
	bool subscribed;
	bool exists; /* false for a subscription to a folder that does not exist */
	bool has_children;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	uint32_t messages, unseen, deleted;
	uint64_t bytes;
	uint64_t deleted_bytes; /* of messages flagged \\Deleted */
	/* MAILBOXID (RFC 8474): made at creation, kept by renames; "" for a
	 * subscription to a folder that does not exist */
	char mailbox_id[STORE_OBJECTID_MAX + 1];
};
/* Every folder (and every subscribed name), sorted by name with INBOX
 * first. Counts come from the index (no folder is opened or reconciled).
 * Free with store_folder_list_free(). Returns 1 or -1. */
int store_folder_list(struct store *store, struct store_folder_info **list_r, size_t *count_r,
		      char **error_r);
void store_folder_list_free(struct store_folder_info **list, size_t count);

/* One folder's counts (IMAP STATUS) from the index, without opening or
 * reconciling it. Returns 1 with *info_r filled (release its strings with
 * store_folder_info_clear()), 0 when it does not exist, -1. */
int store_folder_status(struct store *store, const char *name, struct store_folder_info *info_r,
			char **error_r);
void store_folder_info_clear(struct store_folder_info *info);

/* UIDs expunged from the folder with a MODSEQ above modseq (QRESYNC
 * VANISHED), ascending, malloc'ed (NULL when *count_r is 0). Returns 1 or
 * -1. */
int store_folder_expunged_since(struct store_folder *folder, uint64_t modseq, uint32_t **uids_r,
				size_t *count_r, char **error_r);

/* The folder's MAILBOXID (RFC 8474). */
const char *store_folder_mailbox_id(const struct store_folder *folder);
/* The folder's name (normalised), HIGHESTMODSEQ and role. */
const char *store_folder_name(const struct store_folder *folder);
uint64_t store_folder_highestmodseq(const struct store_folder *folder);
/* Snapshot index of uid, or -1 when the snapshot does not hold it. */
long store_folder_find(const struct store_folder *folder, uint32_t uid);

/* Flags and keywords in one change, as IMAP STORE does. mode: 0 replace
 * (flags := add, keywords := keywords), 1 add, -1 remove. keywords are
 * IMAP atoms (no "\\"), at most STORE_KEYWORD_MAX bytes each. Bumps MODSEQ
 * when anything changed; *modseq_r (may be NULL) gets the message's MODSEQ
 * afterwards. Returns 1, 0 when the message is gone, -1. */
int store_flags_change(struct store_folder *folder, uint32_t uid, int mode, unsigned flags,
		       const char *const *keywords, size_t nkeywords, uint64_t *modseq_r,
		       char **error_r);

/* Parse IMAP flag words ("\\Seen", "$Forwarded") into system flags and
 * keywords (pointers into the input). Returns 0 or -1 with *error_r for an
 * unknown system flag ("\\Foo") or a bad keyword. */
int store_flags_parse(const char *const *words, size_t nwords, unsigned *flags_r,
		      const char ***keywords_r, size_t *nkeywords_r, char **error_r);

/* Copy (move = false) or move messages into folder dest (which must exist),
 * in the order given. New UIDs in dest; *dest_uids_r (malloc'ed, *count_r
 * entries) holds them in the order of *src_uids_r (the UIDs that were
 * actually copied: vanished ones are skipped) -- COPYUID data. Flags and
 * keywords go with the messages. A move expunges the sources. Quota is
 * checked first (over quota: -1 with *over_quota_r = true, nothing done).
 * Returns 1 (also when nothing was left to copy), 0 when dest does not
 * exist, -1. */
int store_copy(struct store_folder *src, const uint32_t *uids, size_t count, const char *dest,
	       bool move, uint32_t *dest_uidvalidity_r, uint32_t **src_uids_r,
	       uint32_t **dest_uids_r, size_t *count_r, bool *over_quota_r, char **error_r);

/* ---- reading parts of a message without reading the whole file ---- */

/* Cached IMAP ENVELOPE, BODY and BODYSTRUCTURE texts (malloc'ed). Any
 * pointer may be NULL. Returns 1, 0 when the message is gone, -1. */
int store_message_imap(struct store_folder *folder, uint32_t uid, char **envelope_r, char **body_r,
		       char **bodystructure_r, char **error_r);

enum store_section_part {
	STORE_SECTION_ALL,    /* "" whole message, "1.2" the part's body */
	STORE_SECTION_HEADER, /* a message's header ("", or an rfc822 part's) */
	STORE_SECTION_TEXT,   /* a message's body */
	STORE_SECTION_MIME,   /* a part's MIME header */
};
/* Byte range of a section ("" top message, "2.1" ...) from the cached part
 * table: for ALL on "" the whole message; for ALL on a part its body; for
 * HEADER/TEXT the header/body of the message at section (the top, or a
 * message/rfc822 part); for MIME the part's header. Returns 1 with
 * *offset_r, *size_r, 0 when the message or the section does not exist,
 * -1 on error. */
int store_message_section(struct store_folder *folder, uint32_t uid, const char *section,
			  enum store_section_part what, uint64_t *offset_r, uint64_t *size_r,
			  uint64_t *lines_r, char **error_r);
/* Read up to size bytes at offset of a message into buf (pread; the file is
 * opened and closed here). *got_r is what was read (less at the end).
 * Returns 1, 0 when the message is gone, -1. */
int store_message_pread(struct store_folder *folder, uint32_t uid, uint64_t offset, void *buf,
			size_t size, size_t *got_r, char **error_r);

/* ---- search ---- */

enum store_search_op {
	STORE_SEARCH_ALL,
	STORE_SEARCH_AND,	/* every child */
	STORE_SEARCH_OR,	/* any child */
	STORE_SEARCH_NOT,	/* first child false */
	STORE_SEARCH_FLAGS,	/* all of flags set (SEEN, ANSWERED, ...) */
	STORE_SEARCH_UNFLAGS,	/* none of flags set (UNSEEN, ...) */
	STORE_SEARCH_KEYWORD,	/* text: the keyword is set */
	STORE_SEARCH_UNKEYWORD, /* text: not set */
	STORE_SEARCH_BEFORE,	/* internal date (day, UTC) < date's day */
	STORE_SEARCH_ON,
	STORE_SEARCH_SINCE,	 /* >= */
	STORE_SEARCH_SENTBEFORE, /* Date: header's day as written */
	STORE_SEARCH_SENTON,
	STORE_SEARCH_SENTSINCE,
	STORE_SEARCH_LARGER, /* size > number */
	STORE_SEARCH_SMALLER,
	STORE_SEARCH_HEADER, /* field contains text (decoded, case-insensitive);
				"" text: the field exists */
	STORE_SEARCH_BODY,   /* decoded text parts contain text */
	STORE_SEARCH_TEXT,   /* header or body contains text */
	STORE_SEARCH_UID,    /* UID in set */
	STORE_SEARCH_SEQ,    /* sequence number (1-based snapshot index) in set */
	STORE_SEARCH_MODSEQ, /* MODSEQ >= number */
	STORE_SEARCH_SAVEDBEFORE, /* save date (day, UTC) < date's day */
	STORE_SEARCH_SAVEDON,
	STORE_SEARCH_SAVEDSINCE,
	STORE_SEARCH_GUID, /* text: the message's guid (IMAP EMAILID) */
};

/* A range of a UID or sequence set; STORE_SEQ_STAR stands for '*' (the
 * highest UID / the last message). */
#define STORE_SEQ_STAR UINT32_MAX
struct store_seq_range {
	uint32_t lo, hi;
};

/* A search key tree the IMAP parser builds: FROM x is HEADER "From" x,
 * NEW is AND(RECENT, UNSEEN), etc. Children are linked through next. */
struct store_search {
	enum store_search_op op;
	struct store_search *children;
	struct store_search *next;
	unsigned flags;			/* FLAGS, UNFLAGS */
	char *field;			/* HEADER */
	char *text;			/* HEADER, BODY, TEXT, KEYWORD, UNKEYWORD */
	time_t date;			/* BEFORE...SENTSINCE: any time within the day (UTC) */
	uint64_t number;		/* LARGER, SMALLER, MODSEQ */
	struct store_seq_range *ranges; /* UID, SEQ */
	size_t nranges;
};

/* Helpers to build a tree; strings are copied. Children are appended with
 * store_search_add(). Free the whole tree with store_search_free(). */
struct store_search *store_search_new(enum store_search_op op);
void store_search_add(struct store_search *parent, struct store_search *child);
struct store_search *store_search_text(enum store_search_op op, const char *field,
				       const char *text);
void store_search_free(struct store_search **search);

/* Search the folder's snapshot. use_fts: answer BODY/TEXT from the FTS
 * index (texts of 3 or more characters); false scans the message files
 * (same answers, slower). Returns 1 with *uids_r (malloc'ed, ascending,
 * may be NULL when *count_r is 0), -1 on error (bad tree or nesting deeper
 * than STORE_SEARCH_DEPTH_MAX). */
int store_search_run(struct store_folder *folder, const struct store_search *search, bool use_fts,
		     uint32_t **uids_r, size_t *count_r, char **error_r);

/* The same over the snapshot messages [first, first + count) only, so that
 * a caller on an event loop can search a large folder in slices (the
 * results of consecutive slices concatenate to the whole answer). */
int store_search_run_slice(struct store_folder *folder, const struct store_search *search,
			   bool use_fts, size_t first, size_t count, uint32_t **uids_r,
			   size_t *count_r, char **error_r);

/* ---- change notifications (same process) ---- */

enum store_event_kind {
	STORE_EVENT_APPEND,  /* a new message */
	STORE_EVENT_FLAGS,   /* flags or keywords changed */
	STORE_EVENT_EXPUNGE, /* a message was removed */
	STORE_EVENT_FOLDERS, /* folders created, deleted or renamed */
};
struct store_event {
	enum store_event_kind kind;
	const char *folder;
	uint32_t uid;
	unsigned flags; /* FLAGS: the new system flags */
	uint64_t modseq;
};
typedef void store_event_cb(void *ctx, const struct store_event *event);

/* Register a callback for every change made through this store (by any
 * folder handle) and every change picked up from the files. Returns an id
 * for store_unsubscribe(). Callbacks may open and refresh folders but not
 * unsubscribe others. */
unsigned store_subscribe(struct store *store, store_event_cb *cb, void *ctx);
void store_unsubscribe(struct store *store, unsigned id);

/* ---- changes made by other processes ---- */

/* A watcher tells the stores of one process about changes other processes
 * make to their Maildirs: files other programs add or remove, and changes
 * of other postern processes (the lmtp service delivering, another back
 * end). It holds one inotify instance for every store attached to it
 * (the kernel bounds instances per user id: fs.inotify.max_user_instances,
 * 128 by default) and a watch on new/ and cur/ of each of their folders.
 * A folder it cannot watch -- no inotify instance, max_watches reached, or
 * the kernel refusing more (fs.inotify.max_user_watches) -- is polled
 * instead: store_watcher_poll() compares the folder's directory mtimes
 * and reads its changes from the index, so no change is lost, only
 * reported later.
 *
 * Every change found goes to the subscribers of the store concerned
 * (store_subscribe()): new messages, flag changes and expunges that store
 * has not reported yet (found by MODSEQ in the index), after files unknown
 * to the index were reconciled. Subscribers must not close or detach
 * stores of the watcher from their callbacks.
 *
 * One watcher per process and thread; it does not own the stores. */
struct store_watcher;

/* A watcher that holds at most max_watches inotify watches (two per
 * watched folder; 0: none, every folder is polled). Never fails: without
 * an inotify instance every folder is polled, and
 * store_watcher_fallback() says why. Free with store_watcher_free(),
 * which detaches the stores still attached. */
struct store_watcher *store_watcher_new(unsigned max_watches);
void store_watcher_free(struct store_watcher **watcher);
/* The inotify descriptor, or -1 when there is none. Add it to the event
 * loop and call store_watcher_handle() when it is readable. */
int store_watcher_fd(const struct store_watcher *watcher);
/* Read the inotify events and report the changes to the stores'
 * subscribers. Returns 1, or -1 with *error_r about the first store that
 * failed (naming its Maildir; the others are still handled). */
int store_watcher_handle(struct store_watcher *watcher, char **error_r);
/* Check the polled folders of every attached store and report their
 * changes. Call it on a timer while store_watcher_polling() is true.
 * Returns 1, or -1 with *error_r as above. */
int store_watcher_poll(struct store_watcher *watcher, char **error_r);
/* Whether any attached store has polled folders. */
bool store_watcher_polling(const struct store_watcher *watcher);
/* Why folders are polled (the first reason met), or NULL while every
 * folder has its watches. Owned by the watcher. */
const char *store_watcher_fallback(const struct store_watcher *watcher);
/* inotify watches held (distinct watched directories). */
unsigned store_watcher_watches(const struct store_watcher *watcher);

/* Attach a store to a watcher (detaching it from another one): its
 * folders, and folders created or renamed later, are watched or polled
 * from now on; changes made before are not reported. store_close()
 * detaches. Returns 1, or -1 with *error_r (the store is then not
 * attached). */
int store_watch_attach(struct store *store, struct store_watcher *watcher, char **error_r);
/* Remove the store's watches (the kernel's watch goes with the last store
 * watching that directory) and stop polling its folders. Nothing when the
 * store is not attached. */
void store_watch_detach(struct store *store);
/* Check this store's polled folders now, as store_watcher_poll() does
 * (a client asked for news: NOOP, IDLE). Returns 1 or -1. */
int store_watch_poll(struct store *store, char **error_r);

/* Give back what the store keeps only to be quick (its prepared SQL
 * statements, SQLite's page cache) while nobody uses it for a while (the
 * IMAP back end: every session of the user is in IDLE). The next use
 * prepares and reads again. */
void store_release_memory(struct store *store);

/* ---- maintenance ---- */

/* Recount quota usage from the index (all folders) and store it. Returns 1
 * with *used_r, or -1. */
int store_quota_recalculate(struct store *store, uint64_t *used_r, char **error_r);
/* Reconcile every folder with its files and rebuild every message's cached
 * parsed form and search text from the files. UIDs and UIDVALIDITY are
 * kept. Returns 1 with *messages_r (messages re-read), or -1. */
int store_reindex(struct store *store, uint64_t *messages_r, char **error_r);
/* Reconcile one folder with its files now (also done on open). *added_r
 * and *removed_r (may be NULL) count the changes. Returns 1, 0 when the
 * folder does not exist, -1. */
int store_folder_reconcile(struct store *store, const char *name, unsigned *added_r,
			   unsigned *removed_r, char **error_r);
/* Path of the user's Maildir root (for tools and tests). */
const char *store_path(const struct store *store);
/* Directory of a folder's Maildir (cur/, new/, tmp/ inside), malloc'ed;
 * NULL for a bad name. */
char *store_folder_path(const struct store *store, const char *name);

#endif
