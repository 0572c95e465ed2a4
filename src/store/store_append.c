#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "store/store_private.h"

/* Delivery and APPEND. The bytes go to tmp/ and through the MIME parser at
 * once (so the parsed form costs no second read); commit fsyncs the file,
 * renames it into cur/, fsyncs the directory, and only then takes a UID in
 * the index transaction. A crash before the rename leaves a tmp/ file
 * (never indexed); after it, the file is adopted by reconcile with a new
 * UID; after the commit, the message is there with its UID. */

struct store_append {
	struct store *store;
	int64_t folder_id;
	char *folder;
	char *dir;
	char *tmp_path;
	int fd;
	uint64_t size;
	struct store_textgen *gen;
	bool failed;
};

static bool over_quota(struct store *store, uint64_t add)
{
	return store->quota_limit > 0 && store_quota_used(store) + add > store->quota_limit;
}

int store_append_begin(struct store *store, const char *folder, uint64_t size_hint,
		       struct store_append **append_r, bool *over_quota_r, char **error_r)
{
	*over_quota_r = false;
	char *norm;
	if (folder == NULL) {
		/* the folder comes at commit (store_append_set_folder): the
		 * file waits in INBOX's tmp/, on the same file system */
		norm = NULL;
	} else if (store_folder_name_check(folder, &norm, error_r) < 0) {
		return -1;
	}
	const char *name = norm != NULL ? norm : "INBOX";
	int64_t id;
	int r = store_index_folder_get(store, name, &id, NULL, NULL, NULL, error_r);
	if (r == 0 && strcmp(name, "INBOX") == 0) {
		r = store_folder_create(store, name, NULL, error_r);
		if (r >= 0)
			r = store_index_folder_get(store, name, &id, NULL, NULL, NULL, error_r);
	}
	if (r <= 0) {
		if (r == 0)
			*error_r = xasprintf("folder '%s' does not exist", name);
		free(norm);
		return -1;
	}
	if (over_quota(store, size_hint)) {
		*over_quota_r = true;
		*error_r = xasprintf("over quota: %llu of %llu bytes used, message of %llu bytes",
				     (unsigned long long)store_quota_used(store),
				     (unsigned long long)store->quota_limit,
				     (unsigned long long)size_hint);
		free(norm);
		return -1;
	}
	struct store_append *a = xcalloc(1, sizeof(*a));
	a->store = store;
	a->folder_id = norm != NULL ? id : 0;
	a->folder = norm;
	a->dir = store_maildir_dir(store, name);
	char *base = store_maildir_new_base(store, 0);
	a->tmp_path = xasprintf("%s/tmp/%s", a->dir, base);
	free(base);
	a->fd = open(a->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (a->fd < 0 && errno == ENOENT) {
		/* the folder's directories went missing: make them again */
		if (store_maildir_create(a->dir, error_r) == 0)
			a->fd = open(a->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (a->fd < 0) {
		*error_r = xasprintf("create %s: %s", a->tmp_path, strerror(errno));
		free(a->tmp_path);
		a->tmp_path = NULL;
		store_append_abort(&a);
		return -1;
	}
	a->gen = store_textgen_new();
	*append_r = a;
	return 1;
}

int store_append_write(struct store_append *a, const void *data, size_t len, char **error_r)
{
	if (a->failed) {
		*error_r = xstrdup("message write failed earlier");
		return -1;
	}
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(a->fd, p, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = xasprintf("write %s: %s", a->tmp_path, strerror(errno));
			a->failed = true;
			return -1;
		}
		p += n;
		left -= (size_t)n;
	}
	store_textgen_feed(a->gen, data, len);
	a->size += len;
	return 1;
}

int store_append_set_folder(struct store_append *a, const char *folder, char **error_r)
{
	char *norm;
	if (store_folder_name_check(folder, &norm, error_r) < 0)
		return -1;
	int64_t id;
	int r = store_index_folder_get(a->store, norm, &id, NULL, NULL, NULL, error_r);
	if (r <= 0) {
		free(norm);
		return r;
	}
	/* the tmp/ file stays where it is: commit renames it into this
	 * folder's cur/ */
	char *dir = store_maildir_dir(a->store, norm);
	char *tmp_path = xasprintf("%s/tmp/%s", dir, strrchr(a->tmp_path, '/') + 1);
	if (strcmp(tmp_path, a->tmp_path) != 0 && rename(a->tmp_path, tmp_path) < 0) {
		*error_r = xasprintf("rename %s: %s", a->tmp_path, strerror(errno));
		free(tmp_path);
		free(dir);
		free(norm);
		return -1;
	}
	free(a->tmp_path);
	a->tmp_path = tmp_path;
	free(a->dir);
	a->dir = dir;
	free(a->folder);
	a->folder = norm;
	a->folder_id = id;
	return 1;
}

uint64_t store_append_size(const struct store_append *a)
{
	return a->size;
}

void store_append_abort(struct store_append **ap)
{
	struct store_append *a = *ap;
	if (a == NULL)
		return;
	if (a->fd >= 0)
		close(a->fd);
	if (a->tmp_path != NULL)
		unlink(a->tmp_path);
	store_textgen_free(&a->gen);
	free(a->tmp_path);
	free(a->folder);
	free(a->dir);
	free(a);
	*ap = NULL;
}

static char *keywords_join(const char *const *kw, size_t n)
{
	size_t len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(kw[i]) + 1;
	char *s = xmalloc(len);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t k = 0; k < i && !dup; k++)
			dup = strcasecmp(kw[k], kw[i]) == 0;
		if (dup)
			continue;
		if (o > 0)
			s[o++] = ' ';
		memcpy(s + o, kw[i], strlen(kw[i]));
		o += strlen(kw[i]);
	}
	s[o] = '\0';
	return s;
}

int store_append_commit(struct store_append **ap, const char *const *flag_words, size_t nflags,
			time_t internal_date, uint32_t *uid_r, bool *over_quota_r, char **error_r)
{
	struct store_append *a = *ap;
	struct store *store = a->store;
	struct store_parsed parsed = {0};
	char *fname = NULL, *base = NULL, *cur_path = NULL, *keywords = NULL;
	const char **kw = NULL;
	size_t nkw = 0;
	unsigned flags = 0;
	int ret = -1;
	*over_quota_r = false;

	if (a->failed) {
		*error_r = xstrdup("message write failed earlier");
		goto out;
	}
	if (a->folder_id == 0) {
		*error_r = xstrdup("no folder chosen for the message");
		goto out;
	}
	if (store_flags_parse(flag_words, nflags, &flags, &kw, &nkw, error_r) < 0)
		goto out;
	flags &= STORE_FLAGS_SYSTEM;
	if (internal_date == 0)
		internal_date = time(NULL);
	if (over_quota(store, a->size)) {
		*over_quota_r = true;
		*error_r =
		    xasprintf("over quota: %llu of %llu bytes used, message of %llu bytes",
			      (unsigned long long)store_quota_used(store),
			      (unsigned long long)store->quota_limit, (unsigned long long)a->size);
		goto out;
	}
	if (fsync(a->fd) < 0) {
		*error_r = xasprintf("fsync %s: %s", a->tmp_path, strerror(errno));
		goto out;
	}
	store_textgen_finish(&a->gen, &parsed);

	/* the index's write lock is taken before the file appears in cur/: a
	 * reconcile in another process (it reads cur/ inside its own write
	 * transaction) then either ran before the file existed or runs after
	 * this row is committed, and never adopts the file under a UID of its
	 * own while this append still holds it */
	if (store_index_begin(store, error_r) < 0)
		goto out;
	base = store_maildir_new_base(store, a->size);
	fname = store_maildir_fname(base, flags);
	cur_path = xasprintf("%s/cur/%s", a->dir, fname);
	if (rename(a->tmp_path, cur_path) < 0) {
		*error_r = xasprintf("rename into %s: %s", cur_path, strerror(errno));
		store_index_rollback(store);
		goto out;
	}
	free(a->tmp_path);
	a->tmp_path = NULL;
	/* the file's mtime carries the internal date, for a rebuilt index; set
	 * once out of tmp/, where old files are cleaned away */
	struct timespec times[2] = {{.tv_sec = internal_date}, {.tv_sec = internal_date}};
	futimens(a->fd, times);
	close(a->fd);
	a->fd = -1;
	char *curdir = xasprintf("%s/cur", a->dir);
	int r = store_fsync_dir(curdir, error_r);
	free(curdir);
	if (r < 0) {
		store_index_rollback(store);
		unlink(cur_path);
		goto out;
	}

	uint32_t uid;
	uint64_t modseq;
	char guid[33];
	store_guid_new(guid);
	keywords = keywords_join(kw, nkw);
	if (store_index_next_uid(store, a->folder_id, &uid, &modseq, error_r) < 0 ||
	    store_index_insert_message(store, a->folder_id, uid, modseq, base, fname, a->size,
				       internal_date, flags, keywords, guid, &parsed,
				       error_r) < 0 ||
	    store_index_quota_add(store, (int64_t)a->size, error_r) < 0 ||
	    store_index_commit(store, error_r) < 0) {
		/* nobody else could index the file while the lock was held */
		store_index_rollback(store);
		unlink(cur_path);
		goto out;
	}
	*uid_r = uid;
	ret = 1;
	store_notify(store, STORE_EVENT_APPEND, a->folder, uid, flags, modseq);
out:
	store_parsed_clear(&parsed);
	free(kw);
	free(keywords);
	free(base);
	free(fname);
	free(cur_path);
	store_append_abort(ap);
	return ret;
}
