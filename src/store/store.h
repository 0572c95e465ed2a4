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
/* Add message bytes, exactly as they are to be stored (CRLF line ends). */
int store_append_write(struct store_append *append, const void *data, size_t len,
		       char **error_r);
/* Make the message durable (file fsynced and renamed into cur/, directory
 * fsynced, index row committed) and give its UID. flags: system flags and
 * keywords as IMAP spells them ("\\Seen", "$Forwarded"), may be NULL.
 * internal_date 0 means now. After 1 the message is never lost; on -1
 * nothing of it remains. Over quota: -1 with *over_quota_r = true. The
 * append is freed in every case. */
int store_append_commit(struct store_append **append, const char *const *flags, size_t nflags,
			time_t internal_date, uint32_t *uid_r, bool *over_quota_r,
			char **error_r);
/* Drop an unfinished message. */
void store_append_abort(struct store_append **append);

/* ---- reading a folder ---- */

struct store_message {
	uint32_t uid;
	uint64_t size;	     /* exact bytes of the message as served */
	time_t internal_date;
	uint64_t modseq;
	unsigned flags;	     /* STORE_FLAG_* */
	char guid[33];	     /* stable across moves and UIDVALIDITY changes; POP3 UIDL */
};

enum store_flag {
	STORE_FLAG_SEEN = 1 << 0,
	STORE_FLAG_ANSWERED = 1 << 1,
	STORE_FLAG_FLAGGED = 1 << 2,
	STORE_FLAG_DELETED = 1 << 3,
	STORE_FLAG_DRAFT = 1 << 4,
	STORE_FLAG_RECENT = 1 << 5,
};

/* Open a folder by name ("INBOX" case-insensitively, others exactly).
 * Returns 1, 0 when it does not exist, -1 on error. The folder's message
 * list is a snapshot taken now; store_folder_refresh() takes a new one. */
int store_folder_open(struct store *store, const char *name, struct store_folder **folder_r,
		      char **error_r);
void store_folder_close(struct store_folder **folder);
uint32_t store_folder_uidvalidity(const struct store_folder *folder);
uint32_t store_folder_uidnext(const struct store_folder *folder);
/* Messages in the snapshot, in UID order. */
size_t store_folder_count(const struct store_folder *folder);
const struct store_message *store_folder_message(const struct store_folder *folder,
						 size_t index);
/* Re-read the folder's message list (new deliveries, other sessions'
 * expunges). */
int store_folder_refresh(struct store_folder *folder, char **error_r);

/* Open a message's bytes for reading: a read-only descriptor positioned at
 * 0, exactly store_message.size bytes long. Returns 1, 0 when the message is
 * gone (expunged meanwhile), -1 on error. */
int store_message_open(struct store_folder *folder, uint32_t uid, int *fd_r, char **error_r);

/* Change flags: add and remove are STORE_FLAG_* masks. Bumps MODSEQ. */
int store_flags_update(struct store_folder *folder, uint32_t uid, unsigned add, unsigned remove,
		       char **error_r);
/* Remove messages for good (files unlinked, index rows deleted, quota
 * released). UIDs are never reused. */
int store_expunge(struct store_folder *folder, const uint32_t *uids, size_t count,
		  char **error_r);

#endif
