#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "directory/directory.h"
#include "lib/xalloc.h"
#include "store/store.h"

/* `posternctl mailbox ...`: a user's mailbox store, offline. The user must
 * exist in the directory (their quota comes from there); the store is
 * DATADIR/mail. Import and export stream message by message: memory stays
 * bounded whatever the size of the mbox or Maildir. */

static void admin_mailbox_usage(FILE *out)
{
	fprintf(out,
		"usage: posternctl mailbox list USER\n"
		"       posternctl mailbox import USER FOLDER PATH   (an mbox file or a Maildir)\n"
		"       posternctl mailbox export USER FOLDER PATH   (to an mbox file)\n"
		"       posternctl mailbox quota USER [--recalculate]\n"
		"       posternctl mailbox reindex USER\n"
		"       posternctl mailbox search USER FOLDER TEXT [--scan]\n");
}

static void admin_mailbox_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void admin_mailbox_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("posternctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Open the store of a user who exists in the directory. Returns 0 or 1
 * (the exit code) with a message printed. */
static int open_user_store(const char *datadir, const char *user, struct store **store_r)
{
	struct directory *dir = NULL;
	char *error = NULL;
	if (directory_open(datadir, true, &dir, &error) < 0) {
		admin_mailbox_error("%s", error);
		free(error);
		return 1;
	}
	struct directory_user *u = NULL;
	int r = directory_user_get(dir, user, &u, &error);
	directory_close(&dir);
	if (r <= 0) {
		if (r == 0)
			admin_mailbox_error("no user '%s' in the directory", user);
		else
			admin_mailbox_error("%s", error);
		free(error);
		return 1;
	}
	char *root = xasprintf("%s/mail", datadir);
	r = store_open(root, u->name, u->quota_bytes, store_r, &error);
	free(root);
	directory_user_free(&u);
	if (r != 1) {
		admin_mailbox_error("%s", error);
		free(error);
		return 1;
	}
	return 0;
}

static void human(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

static int admin_mailbox_list(const char *datadir, int argc, char **argv)
{
	if (argc != 2) {
		admin_mailbox_usage(stderr);
		return 2;
	}
	struct store *store;
	if (open_user_store(datadir, argv[1], &store) != 0)
		return 1;
	struct store_folder_info *list;
	size_t n;
	char *error = NULL;
	if (store_folder_list(store, &list, &n, &error) < 0) {
		admin_mailbox_error("%s", error);
		free(error);
		store_close(&store);
		return 1;
	}
	printf("%-30s %-10s %9s %9s %12s\n", "FOLDER", "ROLE", "MESSAGES", "UNSEEN", "SIZE");
	uint64_t total = 0, messages = 0;
	for (size_t i = 0; i < n; i++) {
		if (!list[i].exists)
			continue;
		char size[32];
		human(list[i].bytes, size, sizeof(size));
		printf("%-30s %-10s %9u %9u %12s\n", list[i].name,
		       list[i].role != NULL ? list[i].role + 1 : "-", list[i].messages,
		       list[i].unseen, size);
		total += list[i].bytes;
		messages += list[i].messages;
	}
	char size[32], limit[32];
	human(total, size, sizeof(size));
	if (store_quota_limit(store) > 0)
		human(store_quota_limit(store), limit, sizeof(limit));
	else
		snprintf(limit, sizeof(limit), "unlimited");
	printf("total: %llu messages, %s (quota %s)\n", (unsigned long long)messages, size, limit);
	store_folder_list_free(&list, n);
	store_close(&store);
	return 0;
}

/* ---- import ---- */

struct importer {
	struct store *store;
	const char *folder;
	struct store_append *append;
	uint64_t imported, failed;
	char *error;
};

static int import_begin(struct importer *im, uint64_t size_hint)
{
	bool oq;
	if (store_append_begin(im->store, im->folder, size_hint, &im->append, &oq, &im->error) != 1)
		return -1;
	return 0;
}

/* Write one line, its end made CRLF. */
static int import_line(struct importer *im, const char *line, size_t len)
{
	bool eol = len > 0 && line[len - 1] == '\n';
	if (eol) {
		len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
	}
	if (store_append_write(im->append, line, len, &im->error) != 1)
		return -1;
	if (eol && store_append_write(im->append, "\r\n", 2, &im->error) != 1)
		return -1;
	return 0;
}

static int import_commit(struct importer *im, const char *const *flags, size_t nflags, time_t date)
{
	uint32_t uid;
	bool oq;
	if (store_append_commit(&im->append, flags, nflags, date, &uid, &oq, &im->error) != 1)
		return -1;
	im->imported++;
	return 0;
}

/* "From sender Tue Jul  1 10:52:37 2003" -> time, 0 when unparsable. */
static time_t from_line_date(const char *line)
{
	const char *p = strchr(line + 5, ' ');
	if (p == NULL)
		return 0;
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(p + 1, "%a %b %d %H:%M:%S %Y", &tm);
	if (end == NULL)
		return 0;
	return timegm(&tm);
}

/* Lines are read in pieces of at most PIECE bytes, so a huge line (or a
 * binary file without line ends) never needs more memory than that. A
 * piece ends after '\n' or when full; a CR is never left at the end of a
 * piece without its LF. Returns the length, 0 at the end. */
#define PIECE 65536

static size_t read_piece(FILE *fp, char *buf, bool *eol_r)
{
	size_t n = 0;
	int c;
	*eol_r = false;
	while (n < PIECE && (c = getc_unlocked(fp)) != EOF) {
		buf[n++] = (char)c;
		if (c == '\n') {
			*eol_r = true;
			return n;
		}
	}
	if (n == PIECE && buf[n - 1] == '\r') {
		ungetc('\r', fp);
		n--;
	}
	return n;
}

static int import_mbox(struct importer *im, const char *path)
{
	FILE *fp = fopen(path, "r");
	if (fp == NULL) {
		im->error = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	char *line = xmalloc(PIECE + 1);
	size_t len;
	bool eol, at_start = true;
	bool in_message = false, prev_blank = true, pending_blank = false;
	time_t date = 0;
	int ret = 0;
	while ((len = read_piece(fp, line, &eol)) > 0) {
		line[len] = '\0';
		bool start = at_start;
		at_start = eol;
		if (!start) {
			/* the rest of a long line */
			if (in_message && import_line(im, line, len) < 0) {
				ret = -1;
				break;
			}
			continue;
		}
		if (prev_blank && strncmp(line, "From ", 5) == 0) {
			if (in_message && import_commit(im, NULL, 0, date) < 0) {
				ret = -1;
				break;
			}
			if (import_begin(im, 0) < 0) {
				ret = -1;
				break;
			}
			in_message = true;
			pending_blank = false;
			date = from_line_date(line);
			prev_blank = false;
			/* a From_ line longer than a piece: skip its rest */
			while (!eol && (len = read_piece(fp, line, &eol)) > 0)
				;
			at_start = true;
			continue;
		}
		if (!in_message) {
			prev_blank = line[0] == '\n' || strcmp(line, "\r\n") == 0;
			continue;
		}
		bool blank = line[0] == '\n' || strcmp(line, "\r\n") == 0;
		/* the blank line before the next From_ line is the separator: hold it */
		if (pending_blank && import_line(im, "\n", 1) < 0) {
			ret = -1;
			break;
		}
		pending_blank = false;
		if (blank) {
			pending_blank = true;
			prev_blank = true;
			continue;
		}
		prev_blank = false;
		/* mboxrd: ">From " and ">>From " lose one '>' */
		const char *l = line;
		size_t n = len;
		size_t k = 0;
		while (k < n && l[k] == '>')
			k++;
		if (k > 0 && strncmp(l + k, "From ", 5) == 0) {
			l++;
			n--;
		}
		if (import_line(im, l, n) < 0) {
			ret = -1;
			break;
		}
	}
	if (ret == 0 && in_message && import_commit(im, NULL, 0, date) < 0)
		ret = -1;
	if (im->append != NULL)
		store_append_abort(&im->append);
	free(line);
	fclose(fp);
	return ret;
}

static int import_maildir_file(struct importer *im, const char *path, const char *name)
{
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return 0;
	struct stat st;
	fstat(fileno(fp), &st);
	const char *flags[5];
	size_t nflags = 0;
	const char *info = strstr(name, ":2,");
	if (info != NULL)
		for (const char *s = info + 3; *s != '\0'; s++) {
			const char *f = *s == 'S'   ? "\\Seen"
					: *s == 'R' ? "\\Answered"
					: *s == 'F' ? "\\Flagged"
					: *s == 'T' ? "\\Deleted"
					: *s == 'D' ? "\\Draft"
						    : NULL;
			if (f != NULL && nflags < 5)
				flags[nflags++] = f;
		}
	int ret = import_begin(im, (uint64_t)st.st_size);
	char *line = xmalloc(PIECE);
	size_t len;
	bool eol;
	while (ret == 0 && (len = read_piece(fp, line, &eol)) > 0)
		ret = import_line(im, line, len);
	free(line);
	fclose(fp);
	if (ret == 0)
		ret = import_commit(im, flags, nflags, st.st_mtime);
	if (im->append != NULL)
		store_append_abort(&im->append);
	return ret;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int import_maildir(struct importer *im, const char *path)
{
	static const char *const subs[] = {"cur", "new"};
	for (size_t s = 0; s < 2; s++) {
		char *dir = xasprintf("%s/%s", path, subs[s]);
		DIR *d = opendir(dir);
		if (d == NULL) {
			free(dir);
			continue;
		}
		char **names = NULL;
		size_t n = 0;
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			names = xrealloc(names, (n + 1) * sizeof(*names));
			names[n++] = xstrdup(de->d_name);
		}
		closedir(d);
		if (n > 1) /* an empty folder has no array to sort */
			qsort(names, n, sizeof(*names), name_cmp);
		int ret = 0;
		for (size_t i = 0; i < n; i++) {
			char *file = xasprintf("%s/%s", dir, names[i]);
			if (ret == 0)
				ret = import_maildir_file(im, file, names[i]);
			free(file);
			free(names[i]);
		}
		free(names);
		free(dir);
		if (ret < 0)
			return -1;
	}
	return 0;
}

static int admin_mailbox_import(const char *datadir, int argc, char **argv)
{
	if (argc != 4) {
		admin_mailbox_usage(stderr);
		return 2;
	}
	struct stat st;
	if (stat(argv[3], &st) < 0) {
		admin_mailbox_error("%s: %s", argv[3], strerror(errno));
		return 1;
	}
	char *cur = xasprintf("%s/cur", argv[3]);
	bool maildir = S_ISDIR(st.st_mode) && access(cur, F_OK) == 0;
	free(cur);
	if (S_ISDIR(st.st_mode) && !maildir) {
		admin_mailbox_error("%s: a directory but not a Maildir (no cur/)", argv[3]);
		return 1;
	}
	struct store *store;
	if (open_user_store(datadir, argv[1], &store) != 0)
		return 1;
	char *error = NULL;
	int r = store_folder_create(store, argv[2], NULL, &error);
	if (r < 0) {
		admin_mailbox_error("folder '%s': %s", argv[2], error);
		free(error);
		store_close(&store);
		return 1;
	}
	free(error);
	struct importer im = {.store = store, .folder = argv[2]};
	r = maildir ? import_maildir(&im, argv[3]) : import_mbox(&im, argv[3]);
	printf("imported %llu messages into %s\n", (unsigned long long)im.imported, argv[2]);
	if (r < 0) {
		admin_mailbox_error("import stopped: %s", im.error != NULL ? im.error : "error");
		free(im.error);
	}
	store_close(&store);
	return r < 0 ? 1 : 0;
}

/* ---- export ---- */

static int export_message(struct store_folder *f, const struct store_message *m, FILE *out,
			  char **error_r)
{
	int fd;
	int r = store_message_open(f, m->uid, &fd, error_r);
	if (r <= 0)
		return r;
	FILE *in = fdopen(fd, "r");
	if (in == NULL) {
		*error_r = xasprintf("read message %u: %s", m->uid, strerror(errno));
		close(fd);
		return -1;
	}
	char date[64];
	struct tm tm;
	gmtime_r(&m->internal_date, &tm);
	strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
	fprintf(out, "From MAILER-DAEMON %s\n", date);
	char *line = xmalloc(PIECE);
	size_t len;
	bool eol, at_start = true;
	while ((len = read_piece(in, line, &eol)) > 0) {
		size_t n = len;
		if (eol) {
			n--;
			if (n > 0 && line[n - 1] == '\r')
				n--;
		}
		/* mboxrd: quote ">*From " at a line start with one more '>' */
		size_t k = 0;
		while (at_start && k < n && line[k] == '>')
			k++;
		if (at_start && n - k >= 5 && strncmp(line + k, "From ", 5) == 0)
			fputc('>', out);
		fwrite(line, 1, n, out);
		if (eol)
			fputc('\n', out);
		at_start = eol;
	}
	if (!at_start)
		fputc('\n', out);
	fputc('\n', out);
	free(line);
	fclose(in);
	if (ferror(out)) {
		*error_r = xasprintf("write: %s", strerror(errno));
		return -1;
	}
	return 1;
}

static int admin_mailbox_export(const char *datadir, int argc, char **argv)
{
	if (argc != 4) {
		admin_mailbox_usage(stderr);
		return 2;
	}
	struct store *store;
	if (open_user_store(datadir, argv[1], &store) != 0)
		return 1;
	struct store_folder *f;
	char *error = NULL;
	int r = store_folder_open(store, argv[2], &f, &error);
	if (r <= 0) {
		if (r == 0)
			admin_mailbox_error("no folder '%s'", argv[2]);
		else
			admin_mailbox_error("%s", error);
		free(error);
		store_close(&store);
		return 1;
	}
	FILE *out = strcmp(argv[3], "-") == 0 ? stdout : fopen(argv[3], "w");
	if (out == NULL) {
		admin_mailbox_error("%s: %s", argv[3], strerror(errno));
		store_close(&store);
		return 1;
	}
	size_t done = 0;
	int ret = 0;
	for (size_t i = 0; i < store_folder_count(f); i++) {
		r = export_message(f, store_folder_message(f, i), out, &error);
		if (r < 0) {
			admin_mailbox_error("%s", error);
			free(error);
			ret = 1;
			break;
		}
		done += (size_t)r;
	}
	if (out != stdout && fclose(out) != 0) {
		admin_mailbox_error("%s: %s", argv[3], strerror(errno));
		ret = 1;
	}
	if (out != stdout)
		printf("exported %zu messages from %s\n", done, argv[2]);
	store_folder_close(&f);
	store_close(&store);
	return ret;
}

static int admin_mailbox_quota(const char *datadir, int argc, char **argv)
{
	bool recalc = argc == 3 && strcmp(argv[2], "--recalculate") == 0;
	if (argc != 2 && !recalc) {
		admin_mailbox_usage(stderr);
		return 2;
	}
	struct store *store;
	if (open_user_store(datadir, argv[1], &store) != 0)
		return 1;
	uint64_t used = store_quota_used(store);
	char *error = NULL;
	if (recalc) {
		uint64_t before = used;
		if (store_quota_recalculate(store, &used, &error) < 0) {
			admin_mailbox_error("%s", error);
			free(error);
			store_close(&store);
			return 1;
		}
		if (before != used)
			printf("corrected: %llu -> %llu bytes\n", (unsigned long long)before,
			       (unsigned long long)used);
	}
	uint64_t limit = store_quota_limit(store);
	if (limit > 0)
		printf("used %llu of %llu bytes (%.1f%%)\n", (unsigned long long)used,
		       (unsigned long long)limit, 100.0 * (double)used / (double)limit);
	else
		printf("used %llu bytes (unlimited)\n", (unsigned long long)used);
	store_close(&store);
	return 0;
}

static int admin_mailbox_reindex(const char *datadir, int argc, char **argv)
{
	if (argc != 2) {
		admin_mailbox_usage(stderr);
		return 2;
	}
	struct store *store;
	if (open_user_store(datadir, argv[1], &store) != 0)
		return 1;
	uint64_t n;
	char *error = NULL;
	if (store_reindex(store, &n, &error) < 0) {
		admin_mailbox_error("%s", error);
		free(error);
		store_close(&store);
		return 1;
	}
	printf("reindexed %llu messages\n", (unsigned long long)n);
	store_close(&store);
	return 0;
}

/* `mailbox search USER FOLDER TEXT [--scan]`: the messages whose header
 * or body contains TEXT (as IMAP SEARCH TEXT), through the full-text index
 * or, with --scan, by reading every message. Prints the UIDs and the time
 * taken, for administrators (Search-Mailbox) and for benchmarks. */
static int admin_mailbox_search(const char *datadir, int argc, char **argv)
{
	bool scan = argc == 5 && strcmp(argv[4], "--scan") == 0;
	if (argc != 4 && !scan) {
		admin_mailbox_usage(stderr);
		return 2;
	}
	struct store *store;
	if (open_user_store(datadir, argv[1], &store) != 0)
		return 1;
	struct store_folder *folder = NULL;
	char *error = NULL;
	int r = store_folder_open(store, argv[2], &folder, &error);
	if (r <= 0) {
		admin_mailbox_error("%s", r == 0 ? "no such folder" : error);
		free(error);
		store_close(&store);
		return 1;
	}
	struct store_search *search = store_search_text(STORE_SEARCH_TEXT, NULL, argv[3]);
	uint32_t *uids = NULL;
	size_t count = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = store_search_run(folder, search, !scan, &uids, &count, &error);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	store_search_free(&search);
	int result = 0;
	if (r < 0) {
		admin_mailbox_error("%s", error);
		free(error);
		result = 1;
	} else {
		for (size_t i = 0; i < count; i++)
			printf("%s%u", i ? " " : "", uids[i]);
		printf("%s%zu of %zu messages match (%s, %.1f ms)\n", count ? "\n" : "", count,
		       store_folder_count(folder), scan ? "scan" : "full-text index",
		       (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	}
	free(uids);
	store_folder_close(&folder);
	store_close(&store);
	return result;
}

int admin_mailbox_main(const char *datadir, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(const char *datadir, int argc, char **argv);
	} commands[] = {
	    {"list", admin_mailbox_list},	{"import", admin_mailbox_import},
	    {"export", admin_mailbox_export},	{"quota", admin_mailbox_quota},
	    {"reindex", admin_mailbox_reindex}, {"search", admin_mailbox_search},
	};
	if (argc < 2) {
		admin_mailbox_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		admin_mailbox_usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(datadir, argc - 1, argv + 1);
	admin_mailbox_error("mailbox: unknown command '%s'", argv[1]);
	admin_mailbox_usage(stderr);
	return 2;
}
