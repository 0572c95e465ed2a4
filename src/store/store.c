#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "mail/mail_header.h"
#include "store/store_private.h"

/* Opening and closing a user's store, folder names, quota. */

static const struct {
	const char *name;
	const char *role;
} default_folders[] = {
    {"INBOX", NULL},
    {"Sent", STORE_ROLE_SENT},
    {"Drafts", STORE_ROLE_DRAFTS},
    {"Trash", STORE_ROLE_TRASH},
    {"Junk", STORE_ROLE_JUNK},
    {"Archive", STORE_ROLE_ARCHIVE},
};

/* The directory validates user names; map them to a safe directory name
 * anyway: lower case, and nothing but letters, digits, '.', '_', '-', '@'
 * (others as %XX), no leading '.'. */
static char *user_dirname(const char *user, char **error_r)
{
	size_t len = strlen(user);
	if (len == 0 || len > 128) {
		*error_r = xasprintf("user name '%s': must be 1 to 128 bytes", user);
		return NULL;
	}
	char *out = xmalloc(len * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)user[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
			    c == '-' || c == '@' || (c == '.' && o > 0);
		if (keep)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, 4, "%%%02X", c);
	}
	out[o] = '\0';
	return out;
}

int store_folder_name_check(const char *name, char **normalised_r, char **error_r)
{
	size_t len = strlen(name);
	if (len == 0) {
		*error_r = xstrdup("folder name is empty");
		return -1;
	}
	if (len > STORE_FOLDER_NAME_MAX) {
		*error_r = xasprintf("folder name is too long (%zu bytes; at most %d)", len,
				     STORE_FOLDER_NAME_MAX);
		return -1;
	}
	if (!mail_utf8_valid(name, len)) {
		*error_r = xstrdup("folder name is not valid UTF-8");
		return -1;
	}
	unsigned levels = 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f) {
			*error_r = xstrdup("folder name contains a control character");
			return -1;
		}
		if (c == '/')
			levels++;
	}
	if (name[0] == '/' || name[len - 1] == '/') {
		*error_r = xasprintf("folder name '%s' begins or ends with '/'", name);
		return -1;
	}
	if (levels > STORE_FOLDER_DEPTH_MAX) {
		*error_r = xasprintf("folder name has too many levels (at most %d)",
				     STORE_FOLDER_DEPTH_MAX);
		return -1;
	}
	const char *s = name;
	while (*s != '\0') {
		const char *e = strchr(s, '/');
		size_t l = e != NULL ? (size_t)(e - s) : strlen(s);
		if (l == 0) {
			*error_r = xasprintf("folder name '%s' has an empty level ('//')", name);
			return -1;
		}
		if ((l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.')) {
			*error_r =
			    xasprintf("folder name '%s': '.' and '..' are not allowed", name);
			return -1;
		}
		s += l;
		if (*s == '/')
			s++;
	}
	char *norm = xstrdup(name);
	if (strncasecmp(norm, "INBOX", 5) == 0 && (norm[5] == '\0' || norm[5] == '/'))
		memcpy(norm, "INBOX", 5);
	/* the escaped directory name must fit a file name */
	char *esc = store_maildir_escape(norm);
	size_t esc_len = strlen(esc);
	free(esc);
	if (esc_len > 250) {
		free(norm);
		*error_r = xstrdup("folder name is too long once stored (use fewer non-ASCII "
				   "or punctuation characters)");
		return -1;
	}
	*normalised_r = norm;
	return 0;
}

static int ensure_defaults(struct store *store, char **error_r)
{
	sqlite3_stmt *st = store_stmt(store, "SELECT count(*) FROM folders", error_r);
	if (st == NULL)
		return -1;
	int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	store_stmt_done(store, &st);
	if (n > 0)
		return 0;
	for (size_t i = 0; i < sizeof(default_folders) / sizeof(default_folders[0]); i++) {
		int r = store_folder_create(store, default_folders[i].name, default_folders[i].role,
					    error_r);
		if (r < 0)
			return -1;
		if (r == 0) {
			free(*error_r);
			*error_r = NULL;
		}
		if (store_folder_subscribe(store, default_folders[i].name, true, error_r) < 0)
			return -1;
	}
	return 0;
}

int store_open(const char *mail_root, const char *user, uint64_t quota_bytes,
	       struct store **store_r, char **error_r)
{
	char *dname = user_dirname(user, error_r);
	if (dname == NULL)
		return -1;
	if (mkdir(mail_root, 0700) < 0 && errno != EEXIST) {
		*error_r = xasprintf("mail root %s: %s", mail_root, strerror(errno));
		free(dname);
		return -1;
	}
	struct store *store = xcalloc(1, sizeof(*store));
	store->path = xasprintf("%s/%s", mail_root, dname);
	free(dname);
	store->quota_limit = quota_bytes;
	if (gethostname(store->host, sizeof(store->host) - 1) < 0 || store->host[0] == '\0')
		strcpy(store->host, "localhost");
	for (char *h = store->host; *h != '\0'; h++)
		if (*h == '/' || *h == ':' || *h == '.' || *h == ',')
			*h = '_';
	if (store_maildir_create(store->path, error_r) < 0 ||
	    store_index_open(store, error_r) < 0 || ensure_defaults(store, error_r) < 0 ||
	    store_adopt_folders(store, error_r) < 0) {
		store_close(&store);
		return -1;
	}
	/* the files are the truth: bring every folder's index in line. The
	 * list is read first and its statement finished: a reconcile that
	 * writes while the SELECT still holds its read snapshot could not
	 * upgrade it after another process (a delivery) committed, and SQLite
	 * answers that with "database is locked" at once, without waiting */
	sqlite3_stmt *st = store_stmt(store, "SELECT id, name FROM folders", error_r);
	if (st == NULL) {
		store_close(&store);
		return -1;
	}
	int64_t *ids = NULL;
	char **names = NULL;
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		ids = xrealloc(ids, (n + 1) * sizeof(*ids));
		names = xrealloc(names, (n + 1) * sizeof(*names));
		ids[n] = sqlite3_column_int64(st, 0);
		names[n++] = xstrdup((const char *)sqlite3_column_text(st, 1));
	}
	store_stmt_done(store, &st);
	int r = 0;
	for (size_t i = 0; i < n && r >= 0; i++)
		r = store_reconcile_folder(store, ids[i], names[i], false, NULL, NULL, error_r);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(ids);
	if (r < 0) {
		store_close(&store);
		return -1;
	}
	*store_r = store;
	return 1;
}

void store_close(struct store **storep)
{
	struct store *store = *storep;
	if (store == NULL)
		return;
	while (store->open_folders != NULL) {
		struct store_folder *f = store->open_folders;
		f->refs = 1;
		store_folder_close(&f);
	}
	store_watch_detach(store);
	free(store->subs);
	store_index_close(store);
	free(store->path);
	free(store);
	*storep = NULL;
}

const char *store_path(const struct store *store)
{
	return store->path;
}

uint64_t store_quota_used(struct store *store)
{
	char *error = NULL;
	sqlite3_stmt *st =
	    store_stmt(store, "SELECT value FROM meta WHERE key = 'quota_used'", &error);
	if (st == NULL) {
		free(error);
		return 0;
	}
	int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	store_stmt_done(store, &st);
	return v < 0 ? 0 : (uint64_t)v;
}

uint64_t store_quota_limit(struct store *store)
{
	return store->quota_limit;
}

int store_quota_recalculate(struct store *store, uint64_t *used_r, char **error_r)
{
	if (store_index_begin(store, error_r) < 0)
		return -1;
	if (store_exec(store,
		       "UPDATE meta SET value = (SELECT coalesce(sum(size), 0) FROM messages) "
		       "WHERE key = 'quota_used'",
		       error_r) < 0) {
		store_index_rollback(store);
		return -1;
	}
	if (store_index_commit(store, error_r) < 0)
		return -1;
	*used_r = store_quota_used(store);
	return 1;
}
