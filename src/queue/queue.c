#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "lib/xalloc.h"

#define QUEUE_WRITE_BUF (64 * 1024)

struct queue_writer {
	char *dir;
	char id[QUEUE_ID_LEN + 1];
	char *tmp_path;
	int fd;
	uint64_t size;
	size_t used;
	unsigned char buf[QUEUE_WRITE_BUF];
};

/* ---- helpers ---- */

static int queue_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

static int queue_write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int queue_dir_open(const char *datadir, char **dir_r, char **error_r)
{
	char *dir = xasprintf("%s/%s", datadir, QUEUE_DIR_NAME);
	char *tmp = xasprintf("%s/tmp", dir);
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(tmp, 0700) < 0 && errno != EEXIST)) {
		*error_r = xasprintf("cannot create %s: %s", tmp, strerror(errno));
		free(dir);
		free(tmp);
		return -1;
	}
	free(tmp);
	*dir_r = dir;
	return 0;
}

void queue_new_id(char *buf)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	unsigned long long us = (unsigned long long)tv.tv_sec * 1000000ULL + (unsigned)tv.tv_usec;
	unsigned char rnd[4] = {0};
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		unsigned r = (unsigned)rand();
		memcpy(rnd, &r, sizeof(rnd));
	}
	snprintf(buf, QUEUE_ID_LEN + 1, "%012llX%02X%02X%02X%02X%04X", us & 0xffffffffffffULL,
		 rnd[0], rnd[1], rnd[2], rnd[3], (unsigned)getpid() & 0xffff);
}

static bool queue_id_valid(const char *id)
{
	if (strlen(id) != QUEUE_ID_LEN)
		return false;
	for (const char *p = id; *p != '\0'; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'F')))
			return false;
	return true;
}

char *queue_message_path(const char *dir, const char *id)
{
	return xasprintf("%s/%s.msg", dir, id);
}

const char *queue_rcpt_state_name(enum queue_rcpt_state state)
{
	switch (state) {
	case QUEUE_RCPT_PENDING:
		return "pending";
	case QUEUE_RCPT_SENT:
		return "sent";
	case QUEUE_RCPT_FAILED:
		return "failed";
	case QUEUE_RCPT_BOUNCED:
		return "bounced";
	}
	return "?";
}

const char *queue_route_name(enum queue_route route)
{
	return route == QUEUE_ROUTE_LOCAL  ? "local"
	       : route == QUEUE_ROUTE_SENT ? "sent-copy"
					   : "remote";
}

/* ---- the writer ---- */

int queue_writer_begin(const char *dir, struct queue_writer **w_r, char **error_r)
{
	struct queue_writer *w = xcalloc(1, sizeof(*w));
	w->dir = xstrdup(dir);
	queue_new_id(w->id);
	w->tmp_path = xasprintf("%s/tmp/%s.msg", dir, w->id);
	w->fd = open(w->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	/* the entry's lock is held from its first byte (see queue.h) */
	if (w->fd >= 0 && flock(w->fd, LOCK_EX | LOCK_NB) < 0) {
		close(w->fd);
		unlink(w->tmp_path);
		w->fd = -1;
	}
	if (w->fd < 0) {
		*error_r = xasprintf("cannot create %s: %s", w->tmp_path, strerror(errno));
		free(w->tmp_path);
		free(w->dir);
		free(w);
		return -1;
	}
	*w_r = w;
	return 0;
}

static int queue_writer_flush(struct queue_writer *w, char **error_r)
{
	if (w->used == 0)
		return 0;
	if (queue_write_all(w->fd, w->buf, w->used) < 0) {
		*error_r = xasprintf("cannot write %s: %s", w->tmp_path, strerror(errno));
		return -1;
	}
	w->used = 0;
	return 0;
}

int queue_writer_write(struct queue_writer *w, const void *data, size_t len, char **error_r)
{
	const unsigned char *p = data;
	w->size += len;
	while (len > 0) {
		size_t room = sizeof(w->buf) - w->used;
		size_t n = len < room ? len : room;
		memcpy(w->buf + w->used, p, n);
		w->used += n;
		p += n;
		len -= n;
		if (w->used == sizeof(w->buf) && queue_writer_flush(w, error_r) < 0)
			return -1;
	}
	return 0;
}

uint64_t queue_writer_size(const struct queue_writer *w)
{
	return w->size;
}

const char *queue_writer_id(const struct queue_writer *w)
{
	return w->id;
}

static void queue_writer_free(struct queue_writer **w)
{
	if (*w == NULL)
		return;
	if ((*w)->fd >= 0)
		close((*w)->fd);
	free((*w)->tmp_path);
	free((*w)->dir);
	free(*w);
	*w = NULL;
}

void queue_writer_abort(struct queue_writer **w)
{
	if (*w == NULL)
		return;
	unlink((*w)->tmp_path);
	queue_writer_free(w);
}

int queue_writer_commit(struct queue_writer **wp, struct queue_entry *e, int *lock_fd_r,
			char **error_r)
{
	struct queue_writer *w = *wp;
	if (queue_writer_flush(w, error_r) < 0)
		goto fail;
	if (fsync(w->fd) < 0) {
		*error_r = xasprintf("cannot fsync %s: %s", w->tmp_path, strerror(errno));
		goto fail;
	}
	memcpy(e->id, w->id, sizeof(e->id));
	e->size = w->size;
	char *msg = queue_message_path(w->dir, w->id);
	if (rename(w->tmp_path, msg) < 0) {
		*error_r = xasprintf("cannot rename %s: %s", w->tmp_path, strerror(errno));
		free(msg);
		goto fail;
	}
	if (queue_entry_save(w->dir, e, error_r) < 0) {
		unlink(msg);
		free(msg);
		queue_writer_free(wp);
		return -1;
	}
	free(msg);
	if (lock_fd_r != NULL) {
		*lock_fd_r = w->fd;
		w->fd = -1;
	}
	queue_writer_free(wp);
	return 0;
fail:
	queue_writer_abort(wp);
	return -1;
}

/* ---- envelope files ---- */

/* Percent-encode: blanks, controls, '%', '=' and non-ASCII bytes; "" is
 * written as "=" so that every field is one word. */
static void queue_put(FILE *f, const char *value)
{
	if (value == NULL || *value == '\0') {
		fputc('=', f);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
		if (*p <= ' ' || *p >= 0x7f || *p == '%' || *p == '=')
			fprintf(f, "%%%02X", *p);
		else
			fputc(*p, f);
	}
}

static int queue_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode one field; NULL when malformed. */
static char *queue_get(const char *word)
{
	if (strcmp(word, "=") == 0)
		return xstrdup("");
	size_t len = strlen(word);
	char *out = xmalloc(len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (word[i] != '%') {
			out[o++] = word[i];
			continue;
		}
		int hi = i + 2 < len ? queue_hex(word[i + 1]) : -1;
		int lo = hi >= 0 ? queue_hex(word[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	return out;
}

int queue_entry_save(const char *dir, const struct queue_entry *e, char **error_r)
{
	char *tmp = xasprintf("%s/tmp/%s.env", dir, e->id);
	char *path = xasprintf("%s/%s.env", dir, e->id);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
	if (f == NULL) {
		*error_r = xasprintf("cannot create %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	fprintf(f, "version 1\nsender ");
	queue_put(f, e->sender);
	fprintf(f, "\nuser ");
	queue_put(f, e->user);
	fprintf(f, "\nsender-lmtp ");
	queue_put(f, e->sender_lmtp);
	fprintf(f, "\nenvid ");
	queue_put(f, e->envid);
	fprintf(f,
		"\nret %d\nsmtputf8 %d\neightbit %d\ncreated %lld\nnext-try %lld\n"
		"attempts %u\nsize %llu\n",
		(int)e->ret, e->smtputf8 ? 1 : 0, e->eightbit ? 1 : 0, e->created, e->next_try,
		e->attempts, (unsigned long long)e->size);
	if (e->copy_auth != NULL && e->copy_auth[0] != '\0') {
		fprintf(f, "copy-offset %llu\ncopy-auth ", (unsigned long long)e->copy_offset);
		queue_put(f, e->copy_auth);
		fputc('\n', f);
	}
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];
		fprintf(f, "rcpt %s %s %u ", queue_rcpt_state_name(r->state),
			queue_route_name(r->route), r->notify);
		queue_put(f, r->address);
		fputc(' ', f);
		queue_put(f, r->lmtp);
		fputc(' ', f);
		queue_put(f, r->orcpt);
		fputc(' ', f);
		queue_put(f, r->status);
		fputc(' ', f);
		queue_put(f, r->remote);
		fputc('\n', f);
	}
	fprintf(f, "end\n");
	if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) < 0) {
		*error_r = xasprintf("cannot write %s: %s", tmp, strerror(errno));
		fclose(f);
		unlink(tmp);
		goto fail;
	}
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		*error_r = xasprintf("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		goto fail;
	}
	if (queue_fsync_dir(dir) < 0) {
		*error_r = xasprintf("cannot fsync %s: %s", dir, strerror(errno));
		goto fail;
	}
	free(tmp);
	free(path);
	return 0;
fail:
	free(tmp);
	free(path);
	return -1;
}

struct queue_rcpt *queue_entry_add_rcpt(struct queue_entry *e, const char *address,
					enum queue_route route, const char *lmtp, unsigned notify,
					const char *orcpt)
{
	e->rcpts = xrealloc(e->rcpts, (e->nrcpts + 1) * sizeof(*e->rcpts));
	struct queue_rcpt *r = &e->rcpts[e->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->address = xstrdup(address != NULL ? address : "");
	r->route = route;
	r->lmtp = xstrdup(lmtp != NULL ? lmtp : "");
	r->notify = notify;
	r->orcpt = xstrdup(orcpt != NULL ? orcpt : "");
	r->status = xstrdup("");
	r->remote = xstrdup("");
	r->state = QUEUE_RCPT_PENDING;
	return r;
}

void queue_set_str(char **field, const char *value)
{
	char *copy = xstrdup(value != NULL ? value : "");
	free(*field);
	*field = copy;
}

static int queue_parse_state(const char *s, enum queue_rcpt_state *state_r)
{
	for (int i = QUEUE_RCPT_PENDING; i <= QUEUE_RCPT_BOUNCED; i++) {
		if (strcmp(s, queue_rcpt_state_name((enum queue_rcpt_state)i)) == 0) {
			*state_r = (enum queue_rcpt_state)i;
			return 0;
		}
	}
	return -1;
}

/* One "rcpt" line's words after the key. */
static int queue_parse_rcpt(struct queue_entry *e, char **words, size_t n)
{
	enum queue_rcpt_state state;
	if (n != 8 || queue_parse_state(words[0], &state) < 0 || e->nrcpts >= QUEUE_MAX_RCPTS)
		return -1;
	enum queue_route route;
	if (strcmp(words[1], "local") == 0)
		route = QUEUE_ROUTE_LOCAL;
	else if (strcmp(words[1], "remote") == 0)
		route = QUEUE_ROUTE_REMOTE;
	else if (strcmp(words[1], "sent-copy") == 0)
		route = QUEUE_ROUTE_SENT;
	else
		return -1;
	char *fields[5];
	int ok = 1;
	for (size_t i = 0; i < 5; i++) {
		fields[i] = queue_get(words[3 + i]);
		if (fields[i] == NULL)
			ok = 0;
	}
	if (ok && fields[0][0] != '\0') {
		struct queue_rcpt *r =
		    queue_entry_add_rcpt(e, fields[0], route, fields[1],
					 (unsigned)strtoul(words[2], NULL, 10), fields[2]);
		r->state = state;
		queue_set_str(&r->status, fields[3]);
		queue_set_str(&r->remote, fields[4]);
	} else {
		ok = 0;
	}
	for (size_t i = 0; i < 5; i++)
		free(fields[i]);
	return ok ? 0 : -1;
}

static int queue_parse_line(struct queue_entry *e, char *line, bool *end_r)
{
	char *words[10];
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
		if (n == 10)
			return -1;
		words[n++] = t;
	}
	if (n == 0)
		return -1;
	const char *k = words[0];
	if (strcmp(k, "end") == 0 && n == 1) {
		*end_r = true;
		return 0;
	}
	if (strcmp(k, "rcpt") == 0)
		return queue_parse_rcpt(e, words + 1, n - 1);
	if (n != 2)
		return -1;
	const char *v = words[1];
	char **str = strcmp(k, "sender") == 0	     ? &e->sender
		     : strcmp(k, "user") == 0	     ? &e->user
		     : strcmp(k, "sender-lmtp") == 0 ? &e->sender_lmtp
		     : strcmp(k, "envid") == 0	     ? &e->envid
		     : strcmp(k, "copy-auth") == 0   ? &e->copy_auth
						     : NULL;
	if (str != NULL) {
		char *d = queue_get(v);
		if (d == NULL)
			return -1;
		free(*str);
		*str = d;
		return 0;
	}
	long long num = strtoll(v, NULL, 10);
	if (strcmp(k, "version") == 0)
		return num == 1 ? 0 : -1;
	if (strcmp(k, "ret") == 0)
		e->ret = num == 1 ? QUEUE_RET_FULL : num == 2 ? QUEUE_RET_HDRS : QUEUE_RET_DEFAULT;
	else if (strcmp(k, "smtputf8") == 0)
		e->smtputf8 = num != 0;
	else if (strcmp(k, "eightbit") == 0)
		e->eightbit = num != 0;
	else if (strcmp(k, "created") == 0)
		e->created = num;
	else if (strcmp(k, "next-try") == 0)
		e->next_try = num;
	else if (strcmp(k, "attempts") == 0)
		e->attempts = (unsigned)num;
	else if (strcmp(k, "size") == 0)
		e->size = (uint64_t)strtoull(v, NULL, 10);
	else if (strcmp(k, "copy-offset") == 0)
		e->copy_offset = (uint64_t)strtoull(v, NULL, 10);
	/* unknown keys are from a newer version: ignored */
	return 0;
}

int queue_entry_load(const char *dir, const char *id, struct queue_entry **e_r, char **error_r)
{
	if (!queue_id_valid(id))
		return 0;
	char *path = xasprintf("%s/%s.env", dir, id);
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		int err = errno;
		if (err == ENOENT) {
			free(path);
			return 0;
		}
		*error_r = xasprintf("cannot open %s: %s", path, strerror(err));
		free(path);
		return -1;
	}
	struct queue_entry *e = xcalloc(1, sizeof(*e));
	memcpy(e->id, id, QUEUE_ID_LEN + 1);
	e->sender = xstrdup("");
	e->user = xstrdup("");
	e->sender_lmtp = xstrdup("");
	e->envid = xstrdup("");
	char line[QUEUE_MAX_ENV_LINE];
	bool end = false;
	size_t total = 0;
	int ret = 1;
	while (!end && fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		total += len;
		if (len == 0 || line[len - 1] != '\n' || total > QUEUE_MAX_ENV_SIZE) {
			ret = -1;
			break;
		}
		line[len - 1] = '\0';
		if (queue_parse_line(e, line, &end) < 0) {
			ret = -1;
			break;
		}
	}
	fclose(f);
	if (ret == 1 && !end)
		ret = -1;
	if (ret < 0) {
		*error_r = xasprintf("%s: malformed envelope file", path);
		queue_entry_free(&e);
	}
	free(path);
	*e_r = e;
	return ret;
}

int queue_entry_remove(const char *dir, const char *id, char **error_r)
{
	char *env = xasprintf("%s/%s.env", dir, id);
	char *msg = queue_message_path(dir, id);
	int ret = 0;
	if (unlink(env) < 0 && errno != ENOENT) {
		*error_r = xasprintf("cannot remove %s: %s", env, strerror(errno));
		ret = -1;
	} else {
		unlink(msg);
		queue_fsync_dir(dir);
	}
	free(env);
	free(msg);
	return ret;
}

void queue_entry_free(struct queue_entry **ep)
{
	struct queue_entry *e = *ep;
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->nrcpts; i++) {
		free(e->rcpts[i].address);
		free(e->rcpts[i].lmtp);
		free(e->rcpts[i].orcpt);
		free(e->rcpts[i].status);
		free(e->rcpts[i].remote);
	}
	free(e->rcpts);
	free(e->sender);
	free(e->user);
	free(e->sender_lmtp);
	free(e->envid);
	free(e->copy_auth);
	free(e);
	*ep = NULL;
}

/* ---- locks and listing ---- */

int queue_entry_lock(const char *dir, const char *id, bool wait, int *fd_r, char **error_r)
{
	if (!queue_id_valid(id))
		return 0;
	char *path = queue_message_path(dir, id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		if (err != ENOENT)
			*error_r = xasprintf("cannot open %s: %s", path, strerror(err));
		free(path);
		return err == ENOENT ? 0 : -1;
	}
	free(path);
	while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		int err = errno;
		close(fd);
		if (err == EWOULDBLOCK)
			return 0;
		*error_r = xasprintf("cannot lock entry %s: %s", id, strerror(err));
		return -1;
	}
	/* removed while we waited: the envelope is gone */
	char *env = xasprintf("%s/%s.env", dir, id);
	bool exists = access(env, F_OK) == 0;
	free(env);
	if (!exists) {
		close(fd);
		return 0;
	}
	*fd_r = fd;
	return 1;
}

void queue_entry_unlock(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int queue_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int queue_list(const char *dir, char ***ids_r, size_t *count_r, char **error_r)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT) {
			*ids_r = NULL;
			*count_r = 0;
			return 0;
		}
		*error_r = xasprintf("cannot read %s: %s", dir, strerror(errno));
		return -1;
	}
	char **ids = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len != QUEUE_ID_LEN + 4 || strcmp(de->d_name + QUEUE_ID_LEN, ".env") != 0)
			continue;
		char *id = xstrndup(de->d_name, QUEUE_ID_LEN);
		if (!queue_id_valid(id)) {
			free(id);
			continue;
		}
		ids = xrealloc(ids, (n + 1) * sizeof(*ids));
		ids[n++] = id;
	}
	closedir(d);
	if (n > 1)
		qsort(ids, n, sizeof(*ids), queue_cmp);
	*ids_r = ids;
	*count_r = n;
	return 0;
}

void queue_ids_free(char ***ids, size_t count)
{
	if (*ids == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*ids)[i]);
	free(*ids);
	*ids = NULL;
}

static unsigned queue_cleanup_in(const char *dir, bool tmp, time_t now)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	unsigned removed = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 5)
			continue;
		bool is_msg = strcmp(de->d_name + len - 4, ".msg") == 0;
		if (!tmp && !is_msg)
			continue;
		char *path = xasprintf("%s/%s", dir, de->d_name);
		struct stat st;
		bool old = stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
			   now - st.st_mtime > QUEUE_ORPHAN_AGE_S;
		if (old && !tmp) {
			char *env = xasprintf("%s/%.*s.env", dir, (int)(len - 4), de->d_name);
			old = access(env, F_OK) != 0;
			free(env);
		}
		if (old && unlink(path) == 0)
			removed++;
		free(path);
	}
	closedir(d);
	return removed;
}

unsigned queue_cleanup(const char *dir)
{
	time_t now = time(NULL);
	char *tmp = xasprintf("%s/tmp", dir);
	unsigned n = queue_cleanup_in(tmp, true, now) + queue_cleanup_in(dir, false, now);
	free(tmp);
	return n;
}
