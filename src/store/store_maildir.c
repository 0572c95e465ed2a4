#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "lib/xalloc.h"
#include "store/store_private.h"

/* Maildir++ names and the file-system steps that make a message durable. */

static bool keep_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == ' ';
}

char *store_maildir_escape(const char *name)
{
	size_t len = strlen(name);
	char *out = xmalloc(len * 3 + 2);
	size_t o = 0;
	out[o++] = '.';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '/')
			out[o++] = '.';
		else if (keep_char(c))
			out[o++] = (char)c;
		else
			o += (size_t)sprintf(out + o, "%%%02X", c);
	}
	out[o] = '\0';
	return out;
}

char *store_maildir_unescape(const char *dirname)
{
	if (dirname[0] != '.')
		return NULL;
	const char *s = dirname + 1;
	char *out = xmalloc(strlen(s) + 1);
	size_t o = 0;
	for (; *s != '\0'; s++) {
		unsigned v;
		if (*s == '.') {
			out[o++] = '/';
		} else if (*s == '%' && sscanf(s + 1, "%2X", &v) == 1 && s[1] != '\0' &&
			   s[2] != '\0') {
			out[o++] = (char)v;
			s += 2;
		} else {
			out[o++] = *s;
		}
	}
	out[o] = '\0';
	return out;
}

char *store_maildir_dir(const struct store *store, const char *name)
{
	if (strcmp(name, "INBOX") == 0)
		return xstrdup(store->path);
	char *esc = store_maildir_escape(name);
	char *dir = xasprintf("%s/%s", store->path, esc);
	free(esc);
	return dir;
}

char *store_folder_path(const struct store *store, const char *name)
{
	char *norm, *error = NULL;
	if (store_folder_name_check(name, &norm, &error) < 0) {
		free(error);
		return NULL;
	}
	char *dir = store_maildir_dir(store, norm);
	free(norm);
	return dir;
}

/* 1 when path was made now, 0 when it existed, -1 on error */
static int mkdir_one(const char *path, char **error_r)
{
	if (mkdir(path, 0700) == 0)
		return 1;
	if (errno == EEXIST)
		return 0;
	*error_r = xasprintf("mkdir %s: %s", path, strerror(errno));
	return -1;
}

/* Folders this process made durable already: every store open checks its
 * folders, and fsyncing directories that did not change costs a disk
 * flush each time (the lmtp service opens the store once per delivery). A
 * folder another process made is fsynced once here too, in case that
 * process died before it could. */
#define MAILDIR_DURABLE_MAX 256
static char *maildir_durable[MAILDIR_DURABLE_MAX];
static unsigned maildir_durable_next;

static bool maildir_known_durable(const char *dir)
{
	for (unsigned i = 0; i < MAILDIR_DURABLE_MAX; i++)
		if (maildir_durable[i] != NULL && strcmp(maildir_durable[i], dir) == 0)
			return true;
	return false;
}

static void maildir_mark_durable(const char *dir)
{
	unsigned i = maildir_durable_next++ % MAILDIR_DURABLE_MAX;
	free(maildir_durable[i]);
	maildir_durable[i] = xstrdup(dir);
}

int store_maildir_create(const char *dir, char **error_r)
{
	int made = mkdir_one(dir, error_r);
	if (made < 0)
		return -1;
	static const char *const subs[] = {"tmp", "new", "cur"};
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", dir, subs[i]);
		int r = mkdir_one(p, error_r);
		free(p);
		if (r < 0)
			return -1;
		made |= r;
	}
	/* Maildir++ marks a folder with this empty file */
	char *mark = xasprintf("%s/maildirfolder", dir);
	int fd = open(mark, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	free(mark);
	if (fd >= 0) {
		close(fd);
		made = 1;
	}
	if (made == 0 && maildir_known_durable(dir))
		return 0;
	char *parent = xstrdup(dir);
	char *slash = strrchr(parent, '/');
	if (slash != NULL) {
		*slash = '\0';
		store_fsync_dir_quiet(parent);
	}
	free(parent);
	if (store_fsync_dir(dir, error_r) < 0)
		return -1;
	maildir_mark_durable(dir);
	return 0;
}

char *store_maildir_new_base(struct store *store, uint64_t size)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	unsigned char rnd[6];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	return xasprintf("%lld.M%06ldP%ldQ%uR%02x%02x%02x%02x%02x%02x.%s,S=%llu",
			 (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
			 ++store->name_counter, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5],
			 store->host, (unsigned long long)size);
}

/* Maildir flag letters, in the ASCII order the format asks for. */
static const struct {
	char letter;
	unsigned flag;
} letters[] = {
    {'D', STORE_FLAG_DRAFT}, {'F', STORE_FLAG_FLAGGED}, {'R', STORE_FLAG_ANSWERED},
    {'S', STORE_FLAG_SEEN},  {'T', STORE_FLAG_DELETED},
};

char *store_maildir_fname(const char *base, unsigned flags)
{
	char f[8];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(letters) / sizeof(letters[0]); i++)
		if (flags & letters[i].flag)
			f[n++] = letters[i].letter;
	f[n] = '\0';
	return xasprintf("%s:2,%s", base, f);
}

char *store_maildir_parse(const char *fname, unsigned *flags_r, bool *has_info_r)
{
	const char *info = strstr(fname, ":2,");
	unsigned flags = 0;
	if (info != NULL) {
		for (const char *s = info + 3; *s != '\0'; s++)
			for (size_t i = 0; i < sizeof(letters) / sizeof(letters[0]); i++)
				if (*s == letters[i].letter)
					flags |= letters[i].flag;
	}
	*flags_r = flags;
	if (has_info_r != NULL)
		*has_info_r = info != NULL;
	const char *colon = strchr(fname, ':');
	return colon != NULL ? xstrndup(fname, (size_t)(colon - fname)) : xstrdup(fname);
}

int store_fsync_dir(const char *dir, char **error_r)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = xasprintf("open %s: %s", dir, strerror(errno));
		return -1;
	}
	int r = fsync(fd);
	int e = errno;
	close(fd);
	if (r < 0) {
		*error_r = xasprintf("fsync %s: %s", dir, strerror(e));
		return -1;
	}
	return 0;
}

void store_fsync_dir_quiet(const char *dir)
{
	char *error = NULL;
	if (store_fsync_dir(dir, &error) < 0)
		free(error);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int store_rmtree(const char *path)
{
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
