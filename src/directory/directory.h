#ifndef POSTERN_DIRECTORY_H
#define POSTERN_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>

/* The directory: who exists, their password hashes, per-user switches and
 * the back end that holds each mailbox; the back-end server list; and the
 * instance's meta data (domain, host name, internal secret).
 *
 * Embedded driver: DATADIR/directory.db (SQLite, mode 0600; see sqldb.h for
 * the open rules). Only authd and posternctl open it.
 *
 * Return convention: -1 error (message in *error_r, malloc'ed, the caller
 * frees), 0 not found / not done, 1 done, unless a function says otherwise. */

#define DIRECTORY_DB_FILE	"directory.db"
#define DIRECTORY_USER_NAME_MAX 64
#define DIRECTORY_BACKEND_LOCAL "local"

/* Meta keys */
#define DIRECTORY_META_DOMAIN	       "domain"
#define DIRECTORY_META_HOSTNAME	       "hostname"
#define DIRECTORY_META_INTERNAL_SECRET "internal_secret" /* 64 hex digits */
#define DIRECTORY_META_CREATED	       "created"	 /* unix time of init */

struct directory;

enum directory_user_kind {
	DIRECTORY_KIND_USER,
	DIRECTORY_KIND_SHARED,
	DIRECTORY_KIND_GUEST,
	DIRECTORY_KIND_ADMIN,
};

/* Whether a copy of each message the user submits is saved in the user's
 * Sent folder; DEFAULT follows the submission service's save-sent setting. */
enum directory_save_sent {
	DIRECTORY_SAVE_SENT_DEFAULT,
	DIRECTORY_SAVE_SENT_OFF,
	DIRECTORY_SAVE_SENT_ON,
};

struct directory_user {
	char *name; /* as written when added; lookups ignore ASCII case */
	enum directory_user_kind kind;
	char *password_hash; /* crypt(3) form; NULL when none (every login refused) */
	bool pop3_enabled;
	bool imap4_enabled;
	bool smtp_enabled;
	char *backend;			/* name of a directory back end */
	unsigned long long quota_bytes; /* 0: unlimited */
	char *send_as;			/* normalised "a@example.com, b@example.com" or "" */
	long long created;		/* unix time */
	enum directory_save_sent save_sent;
	/* SCRAM-SHA-256 keys derived from the same password as the hash, in
	 * the form of password_scram.h; NULL when none (a hash imported
	 * without them: they are derived at the next password login) */
	char *scram_sha256;
};

/* Fields of directory_user_set_fields(), or'ed together. */
enum directory_user_field {
	DIRECTORY_FIELD_KIND = 1 << 0,
	DIRECTORY_FIELD_POP3 = 1 << 1,
	DIRECTORY_FIELD_IMAP4 = 1 << 2,
	DIRECTORY_FIELD_SMTP = 1 << 3,
	DIRECTORY_FIELD_BACKEND = 1 << 4,
	DIRECTORY_FIELD_QUOTA = 1 << 5,
	DIRECTORY_FIELD_SEND_AS = 1 << 6,
	DIRECTORY_FIELD_SAVE_SENT = 1 << 7,
};

/* "default", "off", "on"; parse also takes on/off/true/false/yes/no/1/0.
 * parse returns 0 or -1 with *error_r. */
const char *directory_save_sent_name(enum directory_save_sent value);
int directory_save_sent_parse(const char *text, enum directory_save_sent *value_r, char **error_r);

/* A back-end server: where the front ends reach a mailbox's IMAP4 and POP3
 * back ends and where the submission service delivers over LMTP. Addresses
 * are in net_addr form ("127.0.0.1:1143", "[::1]:1143", "unix:/path"), or ""
 * when that service is not offered. */
struct directory_backend {
	char *name;
	char *imap4_address;
	char *pop3_address;
	char *lmtp_address;
};

/* Open DATADIR/directory.db. readonly opens it SQLITE_OPEN_READONLY.
 * Returns 0 with *dir_r, or -1 with *error_r naming the path and what is
 * wrong (missing data dir or file, not SQLite, not a directory database,
 * schema newer than this code); nothing is created or changed then. */
int directory_open(const char *datadir, bool readonly, struct directory **dir_r, char **error_r);

/* Create DATADIR/directory.db (it must not exist) with the meta data: domain,
 * hostname, a new internal secret (32 random bytes from the OpenSSL RNG, hex)
 * and the creation time. No back end and no user yet. domain and hostname
 * must be DNS names. Returns 0 with *dir_r open read-write, or -1 with
 * *error_r and no file left behind. */
int directory_create(const char *datadir, const char *domain, const char *hostname,
		     struct directory **dir_r, char **error_r);

/* Close and clear *dir (NULL is fine). */
void directory_close(struct directory **dir);

/* Meta value by key. Returns 1 with *value_r (malloc'ed), 0 when the key is
 * absent, -1 on error. */
int directory_meta_get(struct directory *dir, const char *key, char **value_r, char **error_r);

/* Check a user name: 1..64 bytes of letters, digits, '.', '_', '-', with an
 * optional "@domain" part (a DNS name); no leading '.' or '-', no "..", no
 * '/', '\\', blanks, control or non-ASCII bytes. Returns 0, or -1 with
 * *error_r saying what is wrong and what is accepted, e.g.
 * "user name 'a/b': '/' is not allowed (letters, digits, '.', '_', '-' and
 * one '@domain')". */
int directory_user_name_check(const char *name, char **error_r);

/* Kind names: "user", "shared", "guest", "admin". parse returns 0 with
 * *kind_r, or -1 with *error_r listing the kinds. */
const char *directory_kind_name(enum directory_user_kind kind);
int directory_kind_parse(const char *text, enum directory_user_kind *kind_r, char **error_r);

/* Check and normalise a send-as list: e-mail addresses separated by commas
 * or blanks, normalised to "a@example.com, b@example.com" (domain lower
 * case); "" is an empty list. Returns 0 with *normalised_r (malloc'ed) or -1
 * with *error_r naming the bad address. */
int directory_send_as_normalise(const char *text, char **normalised_r, char **error_r);

/* Initialise u with the defaults for a new user of this kind: switches on
 * for user and shared, off for guest and admin (policy refuses those kinds
 * whatever the switches say), back end "local", unlimited quota, no
 * send-as, no password. Strings are NULL except name and backend, which
 * are copies. Free with directory_user_clear(). */
void directory_user_init(struct directory_user *u, const char *name, enum directory_user_kind kind);

/* Add a user. Every field is validated first (name, kind, existing back end,
 * password hash form when not NULL, send-as). u->created is ignored (set to
 * now). Returns 1 when added, 0 when the name is taken in any letter case
 * (*error_r says so), -1 on any other error. */
int directory_user_add(struct directory *dir, const struct directory_user *u, char **error_r);

/* Delete a user. Returns 1 when deleted, 0 when no such user, -1 on error. */
int directory_user_del(struct directory *dir, const char *name, char **error_r);

/* Look up a user by name, ignoring ASCII case. Returns 1 with *user_r
 * (allocated; free with directory_user_free()), 0 when no such user (no
 * error text), -1 on error. */
int directory_user_get(struct directory *dir, const char *name, struct directory_user **user_r,
		       char **error_r);

/* Every user, sorted by name ignoring case. Returns 0 with *users_r (an
 * array of *count_r; free with directory_user_list_free()), or -1. */
int directory_user_list(struct directory *dir, struct directory_user **users_r, size_t *count_r,
			char **error_r);

/* Replace a user's password hash (NULL removes the password) and remove the
 * SCRAM keys, which belonged to the old password. The hash is validated
 * with password_hash_check(). Returns 1, 0 when no such user, -1. */
int directory_user_set_password(struct directory *dir, const char *name, const char *hash,
				char **error_r);
/* The same, with the SCRAM-SHA-256 keys of the same password (NULL: none;
 * keys need a hash). Both are validated first. */
int directory_user_set_credentials(struct directory *dir, const char *name, const char *hash,
				   const char *scram, char **error_r);
/* Store SCRAM-SHA-256 keys for a user whose password hash is still hash
 * (the one the password was just verified against: a change made meanwhile
 * wins). Returns 1, 0 when no such user or the hash changed, -1. */
int directory_user_add_scram(struct directory *dir, const char *name, const char *hash,
			     const char *scram, char **error_r);

/* Change the fields named in the mask (enum directory_user_field) to the
 * values in values, all in one transaction after validating them all.
 * Returns 1, 0 when no such user, -1 on error (nothing changed). */
int directory_user_set_fields(struct directory *dir, const char *name, unsigned fields,
			      const struct directory_user *values, char **error_r);

/* Free the strings of u, keep the struct. */
void directory_user_clear(struct directory_user *u);
/* Free a user from directory_user_get() and clear the pointer. */
void directory_user_free(struct directory_user **user);
/* Free a list from directory_user_list() and clear the pointer. */
void directory_user_list_free(struct directory_user **users, size_t count);

/* Add a back end. The name follows the user name rules without '@'; each
 * non-empty address must parse as a net_addr. Returns 1 when added, 0 when
 * the name is taken, -1 on error. */
int directory_backend_add(struct directory *dir, const struct directory_backend *b, char **error_r);

/* Remove a back end that holds no user's mailbox (the local one stays).
 * Returns 1 removed, 0 unknown, -1 on error (also when users are on it). */
int directory_backend_del(struct directory *dir, const char *name, char **error_r);

/* Look up a back end by name (ignoring ASCII case). Returns 1 with *backend_r
 * (free with directory_backend_free()), 0 when unknown, -1 on error. */
int directory_backend_get(struct directory *dir, const char *name,
			  struct directory_backend **backend_r, char **error_r);

/* Every back end, sorted by name. Returns 0 with an array of *count_r (free
 * with directory_backend_list_free()), or -1. */
int directory_backend_list(struct directory *dir, struct directory_backend **backends_r,
			   size_t *count_r, char **error_r);

/* Free a back end from directory_backend_get() and clear the pointer. */
void directory_backend_free(struct directory_backend **backend);
/* Free a list from directory_backend_list() and clear the pointer. */
void directory_backend_list_free(struct directory_backend **backends, size_t count);

#endif
