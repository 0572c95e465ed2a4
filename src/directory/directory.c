#include "directory/directory.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "directory/password.h"
#include "directory/password_scram.h"
#include "directory/sqldb.h"
#include "lib/net_addr.h"
#include "lib/settings.h"
#include "lib/xalloc.h"

struct directory {
	sqlite3 *db;
};

/* Schema steps; directory_migrations[i] takes version i to i + 1. Never edit
 * a released step: append a new one. */
static const char *const directory_migrations[] = {
    /* 1: meta, back ends, users */
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL);"
    "CREATE TABLE backends ("
    "  name TEXT PRIMARY KEY COLLATE NOCASE,"
    "  imap4_address TEXT NOT NULL DEFAULT '',"
    "  pop3_address TEXT NOT NULL DEFAULT '',"
    "  lmtp_address TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE users ("
    "  name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('user', 'shared', 'guest', 'admin')),"
    "  password_hash TEXT,"
    "  pop3_enabled INTEGER NOT NULL DEFAULT 1 CHECK (pop3_enabled IN (0, 1)),"
    "  imap4_enabled INTEGER NOT NULL DEFAULT 1 CHECK (imap4_enabled IN (0, 1)),"
    "  smtp_enabled INTEGER NOT NULL DEFAULT 1 CHECK (smtp_enabled IN (0, 1)),"
    "  backend TEXT NOT NULL REFERENCES backends (name) ON UPDATE CASCADE,"
    "  quota_bytes INTEGER NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),"
    "  send_as TEXT NOT NULL DEFAULT '',"
    "  created INTEGER NOT NULL);"
    "CREATE INDEX users_backend ON users (backend);",
    /* 2: save a copy of submitted mail in Sent: 1 on, 0 off, NULL the
     * submission service's save-sent default */
    "ALTER TABLE users ADD COLUMN save_sent INTEGER CHECK (save_sent IN (0, 1));",
    /* 3: SCRAM-SHA-256 keys beside the crypt hash (password_scram.h) */
    "ALTER TABLE users ADD COLUMN scram_sha256 TEXT;",
};

static const struct sqldb_schema directory_schema = {
    .what = "directory database",
    .application_id = 0x50535444, /* "PSTD" */
    .file_mode = 0600,
    .migrations = directory_migrations,
    .version = sizeof(directory_migrations) / sizeof(directory_migrations[0]),
};

#define DIRECTORY_USER_COLUMNS                                                                     \
	"name, kind, password_hash, pop3_enabled, imap4_enabled, smtp_enabled, backend, "          \
	"quota_bytes, send_as, created, save_sent, scram_sha256"

static const char *const directory_kind_names[] = {
    [DIRECTORY_KIND_USER] = "user",
    [DIRECTORY_KIND_SHARED] = "shared",
    [DIRECTORY_KIND_GUEST] = "guest",
    [DIRECTORY_KIND_ADMIN] = "admin",
};

static char *directory_path(const char *datadir)
{
	return xasprintf("%s/%s", datadir, DIRECTORY_DB_FILE);
}

int directory_open(const char *datadir, bool readonly, struct directory **dir_r, char **error_r)
{
	*dir_r = NULL;
	if (sqldb_datadir_check(datadir, error_r) < 0)
		return -1;
	char *path = directory_path(datadir);
	sqlite3 *db;
	int ret = sqldb_open(path, &directory_schema, readonly ? SQLDB_READONLY : SQLDB_READWRITE,
			     &db, error_r);
	free(path);
	if (ret < 0)
		return -1;
	struct directory *dir = xcalloc(1, sizeof(*dir));
	dir->db = db;
	*dir_r = dir;
	return 0;
}

void directory_close(struct directory **dir)
{
	if (*dir == NULL)
		return;
	sqldb_close(&(*dir)->db);
	free(*dir);
	*dir = NULL;
}

static int directory_meta_set(struct directory *dir, const char *key, const char *value,
			      char **error_r)
{
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", &stmt,
			  error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, value, -1, SQLITE_STATIC);
	int ret = 0;
	if (sqlite3_step(stmt) != SQLITE_DONE) {
		*error_r = sqldb_error(dir->db, "writing meta data");
		ret = -1;
	}
	sqlite3_finalize(stmt);
	return ret;
}

int directory_create(const char *datadir, const char *domain, const char *hostname,
		     struct directory **dir_r, char **error_r)
{
	*dir_r = NULL;
	if (!settings_dns_name_valid(domain)) {
		*error_r = xasprintf("domain '%s' is not a valid DNS name", domain);
		return -1;
	}
	if (!settings_dns_name_valid(hostname)) {
		*error_r = xasprintf("host name '%s' is not a valid DNS name", hostname);
		return -1;
	}
	if (sqldb_datadir_check(datadir, error_r) < 0)
		return -1;
	unsigned char secret[32];
	if (RAND_bytes(secret, sizeof(secret)) != 1) {
		*error_r = xstrdup("the OpenSSL random generator failed");
		return -1;
	}
	char hex[sizeof(secret) * 2 + 1];
	for (size_t i = 0; i < sizeof(secret); i++)
		snprintf(hex + i * 2, 3, "%02x", secret[i]);

	char *path = directory_path(datadir);
	sqlite3 *db;
	if (sqldb_open(path, &directory_schema, SQLDB_CREATE, &db, error_r) < 0) {
		free(path);
		return -1;
	}
	struct directory *dir = xcalloc(1, sizeof(*dir));
	dir->db = db;
	char *created = xasprintf("%lld", (long long)time(NULL));
	int ret = sqldb_begin(db, error_r);
	if (ret == 0)
		ret = directory_meta_set(dir, DIRECTORY_META_DOMAIN, domain, error_r);
	if (ret == 0)
		ret = directory_meta_set(dir, DIRECTORY_META_HOSTNAME, hostname, error_r);
	if (ret == 0)
		ret = directory_meta_set(dir, DIRECTORY_META_INTERNAL_SECRET, hex, error_r);
	if (ret == 0)
		ret = directory_meta_set(dir, DIRECTORY_META_CREATED, created, error_r);
	if (ret == 0)
		ret = sqldb_commit(db, error_r);
	else
		sqldb_rollback(db);
	free(created);
	memset(hex, 0, sizeof(hex));
	memset(secret, 0, sizeof(secret));
	if (ret < 0) {
		directory_close(&dir);
		unlink(path);
		char *side = xasprintf("%s-wal", path);
		unlink(side);
		free(side);
		side = xasprintf("%s-shm", path);
		unlink(side);
		free(side);
		free(path);
		return -1;
	}
	free(path);
	*dir_r = dir;
	return 0;
}

int directory_meta_get(struct directory *dir, const char *key, char **value_r, char **error_r)
{
	*value_r = NULL;
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db, "SELECT value FROM meta WHERE key = ?", &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	int ret;
	int rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		*value_r = sqldb_column_text(stmt, 0, true);
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		*error_r = sqldb_error(dir->db, "reading meta data");
		ret = -1;
	}
	sqlite3_finalize(stmt);
	return ret;
}

/* A printable rendering of a refused name: control and non-ASCII bytes as
 * \xNN, cut after 80 bytes. */
static char *directory_quote(const char *s)
{
	size_t len = strlen(s);
	size_t shown = len > 80 ? 80 : len;
	char *out = xmalloc(shown * 4 + 4);
	size_t o = 0;
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f)
			o += (size_t)sprintf(out + o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	if (shown < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* What is wrong with a user or back-end name, or NULL. buf holds the text
 * when it needs formatting. */
static const char *directory_name_problem(const char *name, bool allow_domain, char *buf,
					  size_t size)
{
	size_t len = strlen(name);
	if (len == 0)
		return "must not be empty";
	if (len > DIRECTORY_USER_NAME_MAX)
		return "is longer than 64 bytes";
	unsigned ats = 0;
	for (const char *p = name; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f)
			return "control characters are not allowed";
		if (c >= 0x80)
			return "non-ASCII characters are not allowed";
		if (c == ' ')
			return "blanks are not allowed";
		if (c == '@' && allow_domain) {
			ats++;
			continue;
		}
		if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
			snprintf(buf, size, "'%c' is not allowed", c);
			return buf;
		}
	}
	if (ats > 1)
		return "only one '@' is allowed";
	const char *at = strchr(name, '@');
	size_t local_len = at == NULL ? len : (size_t)(at - name);
	if (local_len == 0)
		return "the part before '@' is empty";
	if (name[0] == '.' || name[0] == '-')
		return "must not start with '.' or '-'";
	if (strstr(name, "..") != NULL)
		return "'..' is not allowed";
	if (name[local_len - 1] == '.')
		return "must not end with '.' before the domain";
	if (at != NULL && !settings_dns_name_valid(at + 1))
		return "the domain after '@' is not a valid DNS name";
	return NULL;
}

int directory_user_name_check(const char *name, char **error_r)
{
	char buf[64];
	const char *problem = directory_name_problem(name, true, buf, sizeof(buf));
	if (problem == NULL)
		return 0;
	char *q = directory_quote(name);
	*error_r = xasprintf("user name '%s': %s (letters, digits, '.', '_', '-' and one "
			     "'@domain')",
			     q, problem);
	free(q);
	return -1;
}

static int directory_backend_name_check(const char *name, char **error_r)
{
	char buf[64];
	const char *problem = directory_name_problem(name, false, buf, sizeof(buf));
	if (problem == NULL)
		return 0;
	char *q = directory_quote(name);
	*error_r =
	    xasprintf("back-end name '%s': %s (letters, digits, '.', '_' and '-')", q, problem);
	free(q);
	return -1;
}

const char *directory_kind_name(enum directory_user_kind kind)
{
	if ((unsigned)kind >= sizeof(directory_kind_names) / sizeof(directory_kind_names[0]))
		return "?";
	return directory_kind_names[kind];
}

int directory_kind_parse(const char *text, enum directory_user_kind *kind_r, char **error_r)
{
	for (size_t i = 0; i < sizeof(directory_kind_names) / sizeof(directory_kind_names[0]);
	     i++) {
		if (strcasecmp(text, directory_kind_names[i]) == 0) {
			*kind_r = (enum directory_user_kind)i;
			return 0;
		}
	}
	char *q = directory_quote(text);
	*error_r = xasprintf("kind '%s' is unknown (user, shared, guest or admin)", q);
	free(q);
	return -1;
}

const char *directory_save_sent_name(enum directory_save_sent value)
{
	return value == DIRECTORY_SAVE_SENT_ON	  ? "on"
	       : value == DIRECTORY_SAVE_SENT_OFF ? "off"
						  : "default";
}

int directory_save_sent_parse(const char *text, enum directory_save_sent *value_r, char **error_r)
{
	bool on;
	if (strcasecmp(text, "default") == 0) {
		*value_r = DIRECTORY_SAVE_SENT_DEFAULT;
		return 0;
	}
	if (settings_parse_bool(text, &on) == 0) {
		*value_r = on ? DIRECTORY_SAVE_SENT_ON : DIRECTORY_SAVE_SENT_OFF;
		return 0;
	}
	char *q = directory_quote(text);
	*error_r = xasprintf("save-sent: must be on, off or default (got '%s')", q);
	free(q);
	return -1;
}

/* One e-mail address for send-as: local@domain, local part of letters,
 * digits and ._%+-, no leading, trailing or double dot. */
static bool directory_address_valid(const char *addr)
{
	const char *at = strchr(addr, '@');
	if (at == NULL || strchr(at + 1, '@') != NULL || strlen(addr) > 254)
		return false;
	size_t n = (size_t)(at - addr);
	if (n == 0 || n > 64 || addr[0] == '.' || addr[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (!isalnum(c) && strchr("._%+-", c) == NULL)
			return false;
		if (c == '.' && addr[i + 1] == '.')
			return false;
	}
	return settings_dns_name_valid(at + 1);
}

int directory_send_as_normalise(const char *text, char **normalised_r, char **error_r)
{
	unsigned n;
	char **items = settings_list_split(text, &n);
	char *out = xstrdup("");
	for (unsigned i = 0; i < n; i++) {
		char *addr = items[i];
		if (!directory_address_valid(addr)) {
			char *q = directory_quote(addr);
			*error_r = xasprintf("send-as: '%s' is not an e-mail address "
					     "(local-part@domain)",
					     q);
			free(q);
			free(out);
			settings_list_free(&items);
			return -1;
		}
		for (char *p = strchr(addr, '@'); *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		for (unsigned j = 0; j < i; j++) {
			if (strcasecmp(items[j], addr) == 0) {
				*error_r = xasprintf("send-as: '%s' is listed twice", addr);
				free(out);
				settings_list_free(&items);
				return -1;
			}
		}
		char *s = xasprintf("%s%s%s", out, i == 0 ? "" : ", ", addr);
		free(out);
		out = s;
	}
	settings_list_free(&items);
	*normalised_r = out;
	return 0;
}

void directory_user_init(struct directory_user *u, const char *name, enum directory_user_kind kind)
{
	memset(u, 0, sizeof(*u));
	u->name = xstrdup(name);
	u->kind = kind;
	bool on = kind == DIRECTORY_KIND_USER || kind == DIRECTORY_KIND_SHARED;
	u->pop3_enabled = on;
	u->imap4_enabled = on;
	u->smtp_enabled = on;
	u->backend = xstrdup(DIRECTORY_BACKEND_LOCAL);
	u->save_sent = DIRECTORY_SAVE_SENT_DEFAULT;
}

void directory_user_clear(struct directory_user *u)
{
	free(u->name);
	if (u->password_hash != NULL) {
		memset(u->password_hash, 0, strlen(u->password_hash));
		free(u->password_hash);
	}
	if (u->scram_sha256 != NULL) {
		memset(u->scram_sha256, 0, strlen(u->scram_sha256));
		free(u->scram_sha256);
	}
	free(u->backend);
	free(u->send_as);
	memset(u, 0, sizeof(*u));
}

void directory_user_free(struct directory_user **user)
{
	if (*user == NULL)
		return;
	directory_user_clear(*user);
	free(*user);
	*user = NULL;
}

void directory_user_list_free(struct directory_user **users, size_t count)
{
	if (*users == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		directory_user_clear(&(*users)[i]);
	free(*users);
	*users = NULL;
}

static void directory_user_from_row(sqlite3_stmt *stmt, struct directory_user *u)
{
	enum directory_user_kind kind = DIRECTORY_KIND_USER;
	char *ignored = NULL;
	const char *kind_text = (const char *)sqlite3_column_text(stmt, 1);
	if (kind_text != NULL && directory_kind_parse(kind_text, &kind, &ignored) < 0)
		free(ignored);
	u->name = sqldb_column_text(stmt, 0, true);
	u->kind = kind;
	u->password_hash = sqldb_column_text(stmt, 2, false);
	u->pop3_enabled = sqlite3_column_int(stmt, 3) != 0;
	u->imap4_enabled = sqlite3_column_int(stmt, 4) != 0;
	u->smtp_enabled = sqlite3_column_int(stmt, 5) != 0;
	u->backend = sqldb_column_text(stmt, 6, true);
	sqlite3_int64 quota = sqlite3_column_int64(stmt, 7);
	u->quota_bytes = quota < 0 ? 0 : (unsigned long long)quota;
	u->send_as = sqldb_column_text(stmt, 8, true);
	u->created = sqlite3_column_int64(stmt, 9);
	if (sqlite3_column_type(stmt, 10) == SQLITE_NULL)
		u->save_sent = DIRECTORY_SAVE_SENT_DEFAULT;
	else if (sqlite3_column_int(stmt, 10) != 0)
		u->save_sent = DIRECTORY_SAVE_SENT_ON;
	else
		u->save_sent = DIRECTORY_SAVE_SENT_OFF;
	u->scram_sha256 = sqldb_column_text(stmt, 11, false);
}

/* The stored spelling of a user's name: 1 with *name_r, 0 absent, -1. */
static int directory_user_stored_name(struct directory *dir, const char *name, char **name_r,
				      char **error_r)
{
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db, "SELECT name FROM users WHERE name = ?", &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(stmt), ret;
	if (rc == SQLITE_ROW) {
		*name_r = sqldb_column_text(stmt, 0, true);
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		*error_r = sqldb_error(dir->db, "looking up a user");
		ret = -1;
	}
	sqlite3_finalize(stmt);
	return ret;
}

/* 0 when the back end exists, -1 with an error listing the known ones. */
static int directory_backend_require(struct directory *dir, const char *name, char **error_r)
{
	struct directory_backend *b;
	int ret = directory_backend_get(dir, name, &b, error_r);
	if (ret < 0)
		return -1;
	if (ret == 1) {
		directory_backend_free(&b);
		return 0;
	}
	struct directory_backend *list;
	size_t count;
	if (directory_backend_list(dir, &list, &count, error_r) < 0)
		return -1;
	char *names = xstrdup("");
	for (size_t i = 0; i < count; i++) {
		char *s = xasprintf("%s%s%s", names, i == 0 ? "" : ", ", list[i].name);
		free(names);
		names = s;
	}
	directory_backend_list_free(&list, count);
	char *q = directory_quote(name);
	*error_r = xasprintf("back end '%s' does not exist (back ends: %s)", q,
			     count == 0 ? "none" : names);
	free(q);
	free(names);
	return -1;
}

/* Validate the fields of u named in mask; send_as is normalised into
 * *send_as_r when the mask has it. */
static int directory_user_check(const struct directory_user *u, unsigned mask, char **send_as_r,
				char **error_r)
{
	if ((mask & DIRECTORY_FIELD_KIND) != 0 &&
	    (unsigned)u->kind >= sizeof(directory_kind_names) / sizeof(directory_kind_names[0])) {
		*error_r = xstrdup("kind must be user, shared, guest or admin");
		return -1;
	}
	if ((mask & DIRECTORY_FIELD_BACKEND) != 0 &&
	    (u->backend == NULL || directory_backend_name_check(u->backend, error_r) < 0)) {
		if (u->backend == NULL)
			*error_r = xstrdup("a user needs a back end");
		return -1;
	}
	if ((mask & DIRECTORY_FIELD_QUOTA) != 0 && u->quota_bytes > (unsigned long long)INT64_MAX) {
		*error_r = xstrdup("quota is too large");
		return -1;
	}
	if ((mask & DIRECTORY_FIELD_SEND_AS) != 0 &&
	    directory_send_as_normalise(u->send_as == NULL ? "" : u->send_as, send_as_r, error_r) <
		0)
		return -1;
	return 0;
}

int directory_user_add(struct directory *dir, const struct directory_user *u, char **error_r)
{
	const unsigned all = DIRECTORY_FIELD_KIND | DIRECTORY_FIELD_BACKEND |
			     DIRECTORY_FIELD_QUOTA | DIRECTORY_FIELD_SEND_AS;
	if (u->name == NULL || directory_user_name_check(u->name, error_r) < 0) {
		if (u->name == NULL)
			*error_r = xstrdup("a user needs a name");
		return -1;
	}
	if (u->password_hash != NULL && password_hash_check(u->password_hash, error_r) < 0)
		return -1;
	if (u->scram_sha256 != NULL && u->password_hash == NULL) {
		*error_r = xstrdup("SCRAM-SHA-256 keys without a password hash");
		return -1;
	}
	struct password_scram keys;
	if (u->scram_sha256 != NULL && password_scram_parse(u->scram_sha256, &keys, error_r) < 0)
		return -1;
	char *send_as = NULL;
	if (directory_user_check(u, all, &send_as, error_r) < 0)
		return -1;
	if (sqldb_begin(dir->db, error_r) < 0) {
		free(send_as);
		return -1;
	}
	char *existing = NULL;
	int ret = directory_user_stored_name(dir, u->name, &existing, error_r);
	if (ret == 1) {
		*error_r = strcmp(existing, u->name) == 0
			       ? xasprintf("user '%s' already exists", u->name)
			       : xasprintf("user '%s' already exists (as '%s'; names ignore "
					   "letter case)",
					   u->name, existing);
		free(existing);
		free(send_as);
		sqldb_rollback(dir->db);
		return 0;
	}
	if (ret < 0 || directory_backend_require(dir, u->backend, error_r) < 0) {
		free(send_as);
		sqldb_rollback(dir->db);
		return -1;
	}
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db,
			  "INSERT INTO users (" DIRECTORY_USER_COLUMNS ") "
			  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			  &stmt, error_r) < 0) {
		free(send_as);
		sqldb_rollback(dir->db);
		return -1;
	}
	sqlite3_bind_text(stmt, 1, u->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, directory_kind_name(u->kind), -1, SQLITE_STATIC);
	if (u->password_hash != NULL)
		sqlite3_bind_text(stmt, 3, u->password_hash, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 3);
	sqlite3_bind_int(stmt, 4, u->pop3_enabled ? 1 : 0);
	sqlite3_bind_int(stmt, 5, u->imap4_enabled ? 1 : 0);
	sqlite3_bind_int(stmt, 6, u->smtp_enabled ? 1 : 0);
	sqlite3_bind_text(stmt, 7, u->backend, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 8, (sqlite3_int64)u->quota_bytes);
	sqlite3_bind_text(stmt, 9, send_as, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 10, (sqlite3_int64)time(NULL));
	if (u->save_sent != DIRECTORY_SAVE_SENT_DEFAULT)
		sqlite3_bind_int(stmt, 11, u->save_sent == DIRECTORY_SAVE_SENT_ON ? 1 : 0);
	else
		sqlite3_bind_null(stmt, 11);
	if (u->scram_sha256 != NULL)
		sqlite3_bind_text(stmt, 12, u->scram_sha256, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 12);
	ret = 1;
	if (sqlite3_step(stmt) != SQLITE_DONE) {
		*error_r = sqldb_error(dir->db, "adding a user");
		ret = -1;
	}
	sqlite3_finalize(stmt);
	free(send_as);
	if (ret < 0) {
		sqldb_rollback(dir->db);
		return -1;
	}
	return sqldb_commit(dir->db, error_r) < 0 ? -1 : 1;
}

/* Run a statement that changes at most one user row; 1 changed, 0 none. */
static int directory_user_change(struct directory *dir, sqlite3_stmt *stmt, const char *what,
				 char **error_r)
{
	int ret;
	if (sqlite3_step(stmt) != SQLITE_DONE) {
		*error_r = sqldb_error(dir->db, what);
		ret = -1;
	} else {
		ret = sqlite3_changes(dir->db) > 0 ? 1 : 0;
	}
	sqlite3_finalize(stmt);
	return ret;
}

int directory_user_del(struct directory *dir, const char *name, char **error_r)
{
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db, "DELETE FROM users WHERE name = ?", &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	return directory_user_change(dir, stmt, "deleting a user", error_r);
}

int directory_user_get(struct directory *dir, const char *name, struct directory_user **user_r,
		       char **error_r)
{
	*user_r = NULL;
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db, "SELECT " DIRECTORY_USER_COLUMNS " FROM users WHERE name = ?",
			  &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(stmt), ret;
	if (rc == SQLITE_ROW) {
		struct directory_user *u = xcalloc(1, sizeof(*u));
		directory_user_from_row(stmt, u);
		*user_r = u;
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		*error_r = sqldb_error(dir->db, "looking up a user");
		ret = -1;
	}
	sqlite3_finalize(stmt);
	return ret;
}

int directory_user_list(struct directory *dir, struct directory_user **users_r, size_t *count_r,
			char **error_r)
{
	*users_r = NULL;
	*count_r = 0;
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db, "SELECT " DIRECTORY_USER_COLUMNS " FROM users ORDER BY name",
			  &stmt, error_r) < 0)
		return -1;
	struct directory_user *users = NULL;
	size_t count = 0;
	int rc;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		users = xrealloc(users, (count + 1) * sizeof(*users));
		memset(&users[count], 0, sizeof(users[count]));
		directory_user_from_row(stmt, &users[count]);
		count++;
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE) {
		*error_r = sqldb_error(dir->db, "listing users");
		directory_user_list_free(&users, count);
		return -1;
	}
	*users_r = users;
	*count_r = count;
	return 0;
}

int directory_user_set_password(struct directory *dir, const char *name, const char *hash,
				char **error_r)
{
	return directory_user_set_credentials(dir, name, hash, NULL, error_r);
}

int directory_user_set_credentials(struct directory *dir, const char *name, const char *hash,
				   const char *scram, char **error_r)
{
	if (hash != NULL && password_hash_check(hash, error_r) < 0)
		return -1;
	if (scram != NULL && hash == NULL) {
		*error_r = xstrdup("SCRAM-SHA-256 keys without a password hash");
		return -1;
	}
	struct password_scram keys;
	if (scram != NULL && password_scram_parse(scram, &keys, error_r) < 0)
		return -1;
	sqlite3_stmt *stmt;
	/* the keys always change with the hash: keys of an old password
	 * must not go on logging in */
	if (sqldb_prepare(dir->db,
			  "UPDATE users SET password_hash = ?, scram_sha256 = ? WHERE name = ?",
			  &stmt, error_r) < 0)
		return -1;
	if (hash != NULL)
		sqlite3_bind_text(stmt, 1, hash, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 1);
	if (scram != NULL)
		sqlite3_bind_text(stmt, 2, scram, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 2);
	sqlite3_bind_text(stmt, 3, name, -1, SQLITE_STATIC);
	return directory_user_change(dir, stmt, "changing a password", error_r);
}

int directory_user_add_scram(struct directory *dir, const char *name, const char *hash,
			     const char *scram, char **error_r)
{
	struct password_scram keys;
	if (hash == NULL || password_scram_parse(scram, &keys, error_r) < 0) {
		if (hash == NULL)
			*error_r = xstrdup("SCRAM-SHA-256 keys without a password hash");
		return -1;
	}
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db,
			  "UPDATE users SET scram_sha256 = ? WHERE name = ? AND password_hash = ?",
			  &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, scram, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, hash, -1, SQLITE_STATIC);
	return directory_user_change(dir, stmt, "storing SCRAM-SHA-256 keys", error_r);
}

int directory_user_set_fields(struct directory *dir, const char *name, unsigned fields,
			      const struct directory_user *values, char **error_r)
{
	static const struct {
		unsigned field;
		const char *column;
	} columns[] = {
	    {DIRECTORY_FIELD_KIND, "kind"},	      {DIRECTORY_FIELD_POP3, "pop3_enabled"},
	    {DIRECTORY_FIELD_IMAP4, "imap4_enabled"}, {DIRECTORY_FIELD_SMTP, "smtp_enabled"},
	    {DIRECTORY_FIELD_BACKEND, "backend"},     {DIRECTORY_FIELD_QUOTA, "quota_bytes"},
	    {DIRECTORY_FIELD_SEND_AS, "send_as"},     {DIRECTORY_FIELD_SAVE_SENT, "save_sent"},
	};
	char *send_as = NULL;
	if (directory_user_check(values, fields, &send_as, error_r) < 0)
		return -1;
	if (sqldb_begin(dir->db, error_r) < 0) {
		free(send_as);
		return -1;
	}
	char *stored = NULL;
	int ret = directory_user_stored_name(dir, name, &stored, error_r);
	free(stored);
	if (ret <= 0 || ((fields & DIRECTORY_FIELD_BACKEND) != 0 &&
			 directory_backend_require(dir, values->backend, error_r) < 0)) {
		free(send_as);
		sqldb_rollback(dir->db);
		return ret == 0 ? 0 : -1;
	}
	unsigned known = 0;
	for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++)
		known |= columns[i].field;
	if ((fields & known) == 0) {
		/* nothing to change: the user exists, which is all there is to do */
		free(send_as);
		sqldb_rollback(dir->db);
		return 1;
	}
	char *sql = xstrdup("UPDATE users SET ");
	bool first = true;
	for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++) {
		if ((fields & columns[i].field) == 0)
			continue;
		char *s =
		    xasprintf("%s%s%s = ?%zu", sql, first ? "" : ", ", columns[i].column, i + 1);
		free(sql);
		sql = s;
		first = false;
	}
	char *s = xasprintf("%s WHERE name = ?%zu", sql, sizeof(columns) / sizeof(columns[0]) + 1);
	free(sql);
	sql = s;
	sqlite3_stmt *stmt;
	ret = sqldb_prepare(dir->db, sql, &stmt, error_r);
	free(sql);
	if (ret < 0) {
		free(send_as);
		sqldb_rollback(dir->db);
		return -1;
	}
	/* parameters are numbered by column so that unused ones stay unbound */
	if ((fields & DIRECTORY_FIELD_KIND) != 0)
		sqlite3_bind_text(stmt, 1, directory_kind_name(values->kind), -1, SQLITE_STATIC);
	if ((fields & DIRECTORY_FIELD_POP3) != 0)
		sqlite3_bind_int(stmt, 2, values->pop3_enabled ? 1 : 0);
	if ((fields & DIRECTORY_FIELD_IMAP4) != 0)
		sqlite3_bind_int(stmt, 3, values->imap4_enabled ? 1 : 0);
	if ((fields & DIRECTORY_FIELD_SMTP) != 0)
		sqlite3_bind_int(stmt, 4, values->smtp_enabled ? 1 : 0);
	if ((fields & DIRECTORY_FIELD_BACKEND) != 0)
		sqlite3_bind_text(stmt, 5, values->backend, -1, SQLITE_STATIC);
	if ((fields & DIRECTORY_FIELD_QUOTA) != 0)
		sqlite3_bind_int64(stmt, 6, (sqlite3_int64)values->quota_bytes);
	if ((fields & DIRECTORY_FIELD_SEND_AS) != 0)
		sqlite3_bind_text(stmt, 7, send_as, -1, SQLITE_STATIC);
	if ((fields & DIRECTORY_FIELD_SAVE_SENT) != 0) {
		if (values->save_sent == DIRECTORY_SAVE_SENT_DEFAULT)
			sqlite3_bind_null(stmt, 8);
		else
			sqlite3_bind_int(stmt, 8,
					 values->save_sent == DIRECTORY_SAVE_SENT_ON ? 1 : 0);
	}
	sqlite3_bind_text(stmt, 9, name, -1, SQLITE_STATIC);
	ret = directory_user_change(dir, stmt, "changing a user", error_r);
	free(send_as);
	if (ret < 0) {
		sqldb_rollback(dir->db);
		return -1;
	}
	return sqldb_commit(dir->db, error_r) < 0 ? -1 : 1;
}

void directory_backend_free(struct directory_backend **backend)
{
	if (*backend == NULL)
		return;
	free((*backend)->name);
	free((*backend)->imap4_address);
	free((*backend)->pop3_address);
	free((*backend)->lmtp_address);
	free(*backend);
	*backend = NULL;
}

void directory_backend_list_free(struct directory_backend **backends, size_t count)
{
	if (*backends == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*backends)[i].name);
		free((*backends)[i].imap4_address);
		free((*backends)[i].pop3_address);
		free((*backends)[i].lmtp_address);
	}
	free(*backends);
	*backends = NULL;
}

static void directory_backend_from_row(sqlite3_stmt *stmt, struct directory_backend *b)
{
	b->name = sqldb_column_text(stmt, 0, true);
	b->imap4_address = sqldb_column_text(stmt, 1, true);
	b->pop3_address = sqldb_column_text(stmt, 2, true);
	b->lmtp_address = sqldb_column_text(stmt, 3, true);
}

int directory_backend_add(struct directory *dir, const struct directory_backend *b, char **error_r)
{
	if (b->name == NULL || directory_backend_name_check(b->name, error_r) < 0) {
		if (b->name == NULL)
			*error_r = xstrdup("a back end needs a name");
		return -1;
	}
	const char *addrs[] = {b->imap4_address, b->pop3_address, b->lmtp_address};
	const char *labels[] = {"IMAP4 address", "POP3 address", "LMTP address"};
	for (size_t i = 0; i < 3; i++) {
		struct net_addr addr;
		const char *error;
		if (addrs[i] != NULL && addrs[i][0] != '\0' &&
		    net_addr_parse(addrs[i], &addr, &error) < 0) {
			*error_r = xasprintf("back end '%s': %s '%s': %s", b->name, labels[i],
					     addrs[i], error);
			return -1;
		}
	}
	struct directory_backend *existing;
	int ret = directory_backend_get(dir, b->name, &existing, error_r);
	if (ret < 0)
		return -1;
	if (ret == 1) {
		*error_r = xasprintf("back end '%s' already exists", existing->name);
		directory_backend_free(&existing);
		return 0;
	}
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db,
			  "INSERT INTO backends (name, imap4_address, pop3_address, "
			  "lmtp_address) VALUES (?, ?, ?, ?)",
			  &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, b->name, -1, SQLITE_STATIC);
	for (int i = 0; i < 3; i++)
		sqlite3_bind_text(stmt, i + 2, addrs[i] == NULL ? "" : addrs[i], -1, SQLITE_STATIC);
	ret = 1;
	if (sqlite3_step(stmt) != SQLITE_DONE) {
		*error_r = sqldb_error(dir->db, "adding a back end");
		ret = -1;
	}
	sqlite3_finalize(stmt);
	return ret;
}

int directory_backend_del(struct directory *dir, const char *name, char **error_r)
{
	if (strcasecmp(name, DIRECTORY_BACKEND_LOCAL) == 0) {
		*error_r = xasprintf("back end '%s' is this instance's own and cannot be removed",
				     name);
		return -1;
	}
	if (sqldb_begin(dir->db, error_r) < 0)
		return -1;
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db, "SELECT count(*) FROM users WHERE backend = ? COLLATE NOCASE",
			  &stmt, error_r) < 0) {
		sqldb_rollback(dir->db);
		return -1;
	}
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	long long users = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
	sqlite3_finalize(stmt);
	if (users != 0) {
		*error_r = users < 0 ? sqldb_error(dir->db, "counting a back end's users")
				     : xasprintf("back end '%s' still holds the mailboxes of %lld "
						 "user(s); move them first (user set NAME backend=...)",
						 name, users);
		sqldb_rollback(dir->db);
		return -1;
	}
	if (sqldb_prepare(dir->db, "DELETE FROM backends WHERE name = ?", &stmt, error_r) < 0) {
		sqldb_rollback(dir->db);
		return -1;
	}
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	int ret = 1;
	if (sqlite3_step(stmt) != SQLITE_DONE) {
		*error_r = sqldb_error(dir->db, "removing a back end");
		ret = -1;
	} else if (sqlite3_changes(dir->db) == 0) {
		ret = 0;
	}
	sqlite3_finalize(stmt);
	if (ret < 0) {
		sqldb_rollback(dir->db);
		return -1;
	}
	if (sqldb_commit(dir->db, error_r) < 0)
		return -1;
	return ret;
}

int directory_backend_get(struct directory *dir, const char *name,
			  struct directory_backend **backend_r, char **error_r)
{
	*backend_r = NULL;
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db,
			  "SELECT name, imap4_address, pop3_address, lmtp_address "
			  "FROM backends WHERE name = ?",
			  &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(stmt), ret;
	if (rc == SQLITE_ROW) {
		struct directory_backend *b = xcalloc(1, sizeof(*b));
		directory_backend_from_row(stmt, b);
		*backend_r = b;
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		*error_r = sqldb_error(dir->db, "looking up a back end");
		ret = -1;
	}
	sqlite3_finalize(stmt);
	return ret;
}

int directory_backend_list(struct directory *dir, struct directory_backend **backends_r,
			   size_t *count_r, char **error_r)
{
	*backends_r = NULL;
	*count_r = 0;
	sqlite3_stmt *stmt;
	if (sqldb_prepare(dir->db,
			  "SELECT name, imap4_address, pop3_address, lmtp_address "
			  "FROM backends ORDER BY name",
			  &stmt, error_r) < 0)
		return -1;
	struct directory_backend *list = NULL;
	size_t count = 0;
	int rc;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		list = xrealloc(list, (count + 1) * sizeof(*list));
		directory_backend_from_row(stmt, &list[count]);
		count++;
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE) {
		*error_r = sqldb_error(dir->db, "listing back ends");
		directory_backend_list_free(&list, count);
		return -1;
	}
	*backends_r = list;
	*count_r = count;
	return 0;
}
