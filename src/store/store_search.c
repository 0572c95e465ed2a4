#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "mail/mail_header.h"
#include "store/store_private.h"

/* SEARCH over a folder snapshot. Cheap keys (flags, sizes, dates, sets)
 * come from the snapshot; SENT* from the index; BODY and TEXT come from
 * the FTS5 trigram index, or -- without it, or for texts shorter than a
 * trigram -- from the same folded text recomputed from the file. HEADER
 * keys (FROM, SUBJECT, ...) are answered from the decoded header text the
 * index keeps ("name: value" lines, folded), its trigrams narrowing the
 * candidates, or without the index from the message's header block
 * (bounded) read from its file. Every path folds text with store_fold(),
 * so their answers are the same. */

struct store_search *store_search_new(enum store_search_op op)
{
	struct store_search *s = xcalloc(1, sizeof(*s));
	s->op = op;
	return s;
}

void store_search_add(struct store_search *parent, struct store_search *child)
{
	struct store_search **tail = &parent->children;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = child;
}

struct store_search *store_search_text(enum store_search_op op, const char *field, const char *text)
{
	struct store_search *s = store_search_new(op);
	s->field = field != NULL ? xstrdup(field) : NULL;
	s->text = text != NULL ? xstrdup(text) : NULL;
	return s;
}

void store_search_free(struct store_search **sp)
{
	struct store_search *s = *sp;
	while (s != NULL) {
		struct store_search *next = s->next;
		store_search_free(&s->children);
		free(s->field);
		free(s->text);
		free(s->ranges);
		free(s);
		s = next;
	}
	*sp = NULL;
}

/* ---- per-run state ---- */

/* characters of a search text turned into trigram terms (the rest is left
 * to the instr() check) */
#define STORE_FTS_QUERY_CHARS 64

struct fts_hits {
	const struct store_search *node;
	uint32_t *uids;
	size_t count;
};

struct run {
	struct store_folder *f;
	bool use_fts;
	struct fts_hits *hits;
	size_t nhits;
	int64_t *sent_days; /* per snapshot index, loaded on demand */
	/* the current message's lazily read parts */
	size_t cur;
	bool have_header, have_parsed;
	char *header;
	size_t header_len;
	struct store_parsed parsed;
	char *error;
};

static int depth_check(const struct store_search *s, unsigned depth, char **error_r)
{
	if (depth > STORE_SEARCH_DEPTH_MAX) {
		*error_r = xasprintf("search nested too deeply (at most %d levels)",
				     STORE_SEARCH_DEPTH_MAX);
		return -1;
	}
	for (; s != NULL; s = s->next) {
		switch (s->op) {
		case STORE_SEARCH_HEADER:
			if (s->field == NULL || s->text == NULL) {
				*error_r = xstrdup("HEADER search needs a field and a text");
				return -1;
			}
			break;
		case STORE_SEARCH_BODY:
		case STORE_SEARCH_TEXT:
		case STORE_SEARCH_KEYWORD:
		case STORE_SEARCH_UNKEYWORD:
			if (s->text == NULL) {
				*error_r = xstrdup("search key needs a text");
				return -1;
			}
			break;
		case STORE_SEARCH_NOT:
			if (s->children == NULL) {
				*error_r = xstrdup("NOT needs a key");
				return -1;
			}
			break;
		default:
			break;
		}
		if (depth_check(s->children, depth + 1, error_r) < 0)
			return -1;
	}
	return 0;
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static int uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static bool fts_usable(const struct store_search *s)
{
	return (s->op == STORE_SEARCH_BODY || s->op == STORE_SEARCH_TEXT) && s->text != NULL;
}

/* The FTS5 query for a folded text of 3 or more characters: every trigram
 * of it must be there ("abc" AND "bcd" ...), in one column when column is
 * not NULL (body for BODY, header for HEADER keys). The index keeps no positions (detail=column, a
 * sixth of the size), so the candidates are then checked with instr() on the stored text: the
 * answer is the exact substring match the file scan gives. */
static char *fts_query(const char *folded, const char *column)
{
	size_t len = strlen(folded);
	size_t starts[STORE_FTS_QUERY_CHARS + 1];
	size_t n = 0;
	for (size_t i = 0; i < len && n <= STORE_FTS_QUERY_CHARS; i++)
		if (((unsigned char)folded[i] & 0xc0) != 0x80)
			starts[n++] = i;
	size_t limit = n > STORE_FTS_QUERY_CHARS ? STORE_FTS_QUERY_CHARS : n;
	/* a term is at most the whole text with its quotes doubled, + 7 */
	char *q = xmalloc(32 + limit * (2 * len + 7));
	size_t o = 0;
	if (column != NULL)
		o += (size_t)sprintf(q, "%s : (", column);
	for (size_t k = 0; k + 3 <= limit; k++) {
		size_t from = starts[k];
		size_t to = k + 3 < n ? starts[k + 3] : len;
		if (k > 0)
			o += (size_t)sprintf(q + o, " AND ");
		q[o++] = '"';
		for (size_t i = from; i < to; i++) {
			if (folded[i] == '"')
				q[o++] = '"';
			q[o++] = folded[i];
		}
		q[o++] = '"';
	}
	if (column != NULL)
		q[o++] = ')';
	q[o] = '\0';
	return q;
}

/* Whether the index's header text of a message ("name: value" lines,
 * folded) has a field named prefix (folded name + ": ") whose value
 * contains want (folded; "" for any value). */
static bool header_text_match(const char *text, const char *prefix, const char *want)
{
	size_t plen = strlen(prefix);
	for (const char *line = text; line != NULL && *line != '\0';) {
		const char *end = strchr(line, '\n');
		size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
		if (len >= plen && memcmp(line, prefix, plen) == 0) {
			if (*want == '\0')
				return true;
			size_t wlen = strlen(want);
			const char *v = line + plen, *vend = line + len;
			for (; (size_t)(vend - v) >= wlen; v++)
				if (memcmp(v, want, wlen) == 0)
					return true;
		}
		line = end != NULL ? end + 1 : NULL;
	}
	return false;
}

/* Step a full-text statement whose first column is a UID into the hits of
 * node s, keeping only rows whose second column, a message's header text,
 * has the field prefix with want in it when prefix is not NULL. The
 * statement is given back. Returns 0, or -1 with *error_r. */
static int fts_collect(struct run *r, const struct store_search *s, sqlite3_stmt *st,
		       const char *prefix, const char *want, char **error_r)
{
	struct fts_hits h = {.node = s};
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (prefix != NULL) {
			const char *text = (const char *)sqlite3_column_text(st, 1);
			if (text == NULL || !header_text_match(text, prefix, want))
				continue;
		}
		if (h.count == cap) {
			cap = cap * 2 + 64;
			h.uids = xrealloc(h.uids, cap * sizeof(*h.uids));
		}
		h.uids[h.count++] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	store_stmt_done(r->f->store, &st);
	if (rc != SQLITE_DONE) {
		free(h.uids);
		*error_r = store_db_error(r->f->store, "full-text search");
		return -1;
	}
	if (h.count > 1)
		qsort(h.uids, h.count, sizeof(*h.uids), uid_cmp);
	r->hits = xrealloc(r->hits, (r->nhits + 1) * sizeof(*r->hits));
	r->hits[r->nhits++] = h;
	return 0;
}

/* A HEADER key from the index: candidates by trigrams when the text has
 * three or more characters (every message of the folder otherwise), each
 * confirmed on its stored header text. CROSS JOIN keeps the full-text
 * match the outer loop: run once, not once per message of the folder. */
static int fts_header(struct run *r, const struct store_search *s, char **error_r)
{
	char *want = store_fold(s->text);
	char *name = store_fold(s->field);
	char *prefix = xasprintf("%s: ", name);
	free(name);
	char *q = utf8_chars(want) >= 3 ? fts_query(want, "header") : NULL;
	sqlite3_stmt *st =
	    q != NULL
		? store_stmt(
		      r->f->store,
		      "SELECT m.uid, f.header FROM fts f CROSS JOIN messages m ON m.id = f.rowid "
		      "WHERE fts MATCH ?1 AND m.folder_id = ?2",
		      error_r)
		: store_stmt(r->f->store,
			     "SELECT m.uid, f.header FROM messages m JOIN fts f ON f.rowid = m.id "
			     "WHERE m.folder_id = ?2",
			     error_r);
	int ret = -1;
	if (st != NULL) {
		if (q != NULL)
			sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, r->f->id);
		ret = fts_collect(r, s, st, prefix, want, error_r);
	}
	free(q);
	free(prefix);
	free(want);
	return ret;
}

/* A BODY or TEXT key of three or more characters from the index: the
 * trigrams find candidates, instr() on the stored text confirms them.
 * Shorter texts are left to the file scan (no hits). */
static int fts_text(struct run *r, const struct store_search *s, char **error_r)
{
	char *folded = store_fold(s->text);
	if (utf8_chars(folded) < 3) {
		free(folded);
		return 0;
	}
	char *q = fts_query(folded, s->op == STORE_SEARCH_BODY ? "body" : NULL);
	sqlite3_stmt *st = store_stmt(r->f->store,
				      "SELECT uid FROM messages WHERE id IN "
				      "(SELECT rowid FROM fts WHERE fts MATCH ?1 AND "
				      "(instr(body, ?3) > 0 OR (?4 AND instr(header, ?3) > 0))) "
				      "AND folder_id = ?2",
				      error_r);
	int ret = -1;
	if (st != NULL) {
		sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, folded, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, s->op == STORE_SEARCH_TEXT);
		sqlite3_bind_int64(st, 2, r->f->id);
		ret = fts_collect(r, s, st, NULL, NULL, error_r);
	}
	free(q);
	free(folded);
	return ret;
}

static int fts_prepare(struct run *r, const struct store_search *s, char **error_r)
{
	for (; s != NULL; s = s->next) {
		if (s->op == STORE_SEARCH_HEADER && fts_header(r, s, error_r) < 0)
			return -1;
		if (fts_usable(s) && fts_text(r, s, error_r) < 0)
			return -1;
		if (fts_prepare(r, s->children, error_r) < 0)
			return -1;
	}
	return 0;
}

static const struct fts_hits *hits_for(const struct run *r, const struct store_search *s)
{
	for (size_t i = 0; i < r->nhits; i++)
		if (r->hits[i].node == s)
			return &r->hits[i];
	return NULL;
}

static bool hits_contain(const struct fts_hits *h, uint32_t uid)
{
	return h->count > 0 && bsearch(&uid, h->uids, h->count, sizeof(uint32_t), uid_cmp) != NULL;
}

static bool needs_sent(const struct store_search *s)
{
	for (; s != NULL; s = s->next)
		if (s->op == STORE_SEARCH_SENTBEFORE || s->op == STORE_SEARCH_SENTON ||
		    s->op == STORE_SEARCH_SENTSINCE || needs_sent(s->children))
			return true;
	return false;
}

static int load_sent(struct run *r, char **error_r)
{
	struct store_folder *f = r->f;
	r->sent_days = xcalloc(f->count + 1, sizeof(*r->sent_days));
	for (size_t i = 0; i < f->count; i++)
		r->sent_days[i] = INT64_MIN;
	sqlite3_stmt *st = store_stmt(f->store,
				      "SELECT uid, sent_day FROM messages WHERE folder_id = ? "
				      "AND sent_day IS NOT NULL",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, f->id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		long i = store_folder_find(f, (uint32_t)sqlite3_column_int64(st, 0));
		if (i >= 0)
			r->sent_days[i] = sqlite3_column_int64(st, 1);
	}
	store_stmt_done(f->store, &st);
	return 0;
}

static void message_reset(struct run *r, size_t index)
{
	free(r->header);
	r->header = NULL;
	r->header_len = 0;
	if (r->have_parsed)
		store_parsed_clear(&r->parsed);
	r->have_header = r->have_parsed = false;
	r->cur = index;
}

/* The top header block, up to the empty line, at most MIME_MAX_HEADER. */
static void load_header(struct run *r)
{
	if (r->have_header)
		return;
	r->have_header = true;
	char *buf = xmalloc(MIME_MAX_HEADER + 1);
	size_t got = 0;
	char *error = NULL;
	if (store_message_pread(r->f, r->f->msgs[r->cur].uid, 0, buf, MIME_MAX_HEADER, &got,
				&error) <= 0) {
		free(error);
		got = 0;
	}
	buf[got] = '\0';
	r->header = buf;
	r->header_len = got;
}

static void load_parsed(struct run *r)
{
	if (r->have_parsed)
		return;
	r->have_parsed = true;
	memset(&r->parsed, 0, sizeof(r->parsed));
	int fd;
	char *error = NULL;
	if (store_message_open(r->f, r->f->msgs[r->cur].uid, &fd, &error) <= 0) {
		free(error);
		r->parsed.header_text = xstrdup("");
		r->parsed.body_text = xstrdup("");
		return;
	}
	if (store_parse_fd(fd, &r->parsed, &error) < 0) {
		free(error);
		r->parsed.header_text = xstrdup("");
		r->parsed.body_text = xstrdup("");
	}
	close(fd);
}

static bool header_match(struct run *r, const char *field, const char *text)
{
	load_header(r);
	char *want = store_fold(text);
	size_t pos = 0;
	char *name, *value;
	bool found = false;
	while (!found && mail_header_next(r->header, r->header_len, &pos, &name, &value) == 1) {
		if (strcasecmp(name, field) == 0) {
			if (*want == '\0') {
				found = true;
			} else {
				char *dec = mail_decode_words(value);
				char *folded = store_fold(dec);
				found = strstr(folded, want) != NULL;
				free(folded);
				free(dec);
			}
		}
		free(name);
		free(value);
	}
	free(want);
	return found;
}

static bool in_set(const struct store_search *s, uint32_t value, uint32_t star)
{
	for (size_t i = 0; i < s->nranges; i++) {
		uint32_t lo = s->ranges[i].lo == STORE_SEQ_STAR ? star : s->ranges[i].lo;
		uint32_t hi = s->ranges[i].hi == STORE_SEQ_STAR ? star : s->ranges[i].hi;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		if (value >= lo && value <= hi)
			return true;
	}
	return false;
}

static bool kw_set(const char *list, const char *kw)
{
	size_t l = strlen(kw);
	for (const char *s = list; *s != '\0';) {
		const char *e = strchr(s, ' ');
		size_t n = e != NULL ? (size_t)(e - s) : strlen(s);
		if (n == l && strncasecmp(s, kw, l) == 0)
			return true;
		s += n;
		while (*s == ' ')
			s++;
	}
	return false;
}

static bool match(struct run *r, const struct store_search *s);

static bool match_text(struct run *r, const struct store_search *s)
{
	const struct fts_hits *h = r->use_fts ? hits_for(r, s) : NULL;
	uint32_t uid = r->f->msgs[r->cur].uid;
	if (h != NULL)
		return hits_contain(h, uid);
	load_parsed(r);
	char *want = store_fold(s->text);
	bool found = strstr(r->parsed.body_text, want) != NULL;
	if (!found && s->op == STORE_SEARCH_TEXT)
		found = strstr(r->parsed.header_text, want) != NULL;
	free(want);
	return found;
}

static bool match(struct run *r, const struct store_search *s)
{
	const struct store_message *m = &r->f->msgs[r->cur];
	int64_t iday = (int64_t)(m->internal_date >= 0 ? m->internal_date / 86400
						       : (m->internal_date - 86399) / 86400);
	int64_t kday = (int64_t)(s->date >= 0 ? s->date / 86400 : (s->date - 86399) / 86400);
	int64_t sday = r->sent_days != NULL ? r->sent_days[r->cur] : INT64_MIN;
	uint32_t max_uid = r->f->count > 0 ? r->f->msgs[r->f->count - 1].uid : 0;
	switch (s->op) {
	case STORE_SEARCH_ALL:
		return true;
	case STORE_SEARCH_AND:
		for (const struct store_search *c = s->children; c != NULL; c = c->next)
			if (!match(r, c))
				return false;
		return true;
	case STORE_SEARCH_OR:
		for (const struct store_search *c = s->children; c != NULL; c = c->next)
			if (match(r, c))
				return true;
		return false;
	case STORE_SEARCH_NOT:
		return !match(r, s->children);
	case STORE_SEARCH_FLAGS:
		return (m->flags & s->flags) == s->flags;
	case STORE_SEARCH_UNFLAGS:
		return (m->flags & s->flags) == 0;
	case STORE_SEARCH_KEYWORD:
		return kw_set(m->keywords != NULL ? m->keywords : "", s->text);
	case STORE_SEARCH_UNKEYWORD:
		return !kw_set(m->keywords != NULL ? m->keywords : "", s->text);
	case STORE_SEARCH_BEFORE:
		return iday < kday;
	case STORE_SEARCH_ON:
		return iday == kday;
	case STORE_SEARCH_SINCE:
		return iday >= kday;
	case STORE_SEARCH_SENTBEFORE:
		return sday != INT64_MIN && sday < kday;
	case STORE_SEARCH_SENTON:
		return sday != INT64_MIN && sday == kday;
	case STORE_SEARCH_SENTSINCE:
		return sday != INT64_MIN && sday >= kday;
	case STORE_SEARCH_LARGER:
		return m->size > s->number;
	case STORE_SEARCH_SMALLER:
		return m->size < s->number;
	case STORE_SEARCH_HEADER: {
		const struct fts_hits *h = r->use_fts ? hits_for(r, s) : NULL;
		if (h != NULL)
			return hits_contain(h, m->uid);
		return header_match(r, s->field, s->text);
	}
	case STORE_SEARCH_BODY:
	case STORE_SEARCH_TEXT:
		return match_text(r, s);
	case STORE_SEARCH_UID:
		return in_set(s, m->uid, max_uid);
	case STORE_SEARCH_SEQ:
		return in_set(s, (uint32_t)(r->cur + 1), (uint32_t)r->f->count);
	case STORE_SEARCH_MODSEQ:
		return m->modseq >= s->number;
	case STORE_SEARCH_SAVEDBEFORE:
	case STORE_SEARCH_SAVEDON:
	case STORE_SEARCH_SAVEDSINCE: {
		int64_t vday = (int64_t)(m->save_date >= 0 ? m->save_date / 86400
							   : (m->save_date - 86399) / 86400);
		return s->op == STORE_SEARCH_SAVEDBEFORE ? vday < kday
		       : s->op == STORE_SEARCH_SAVEDON	 ? vday == kday
							 : vday >= kday;
	}
	case STORE_SEARCH_GUID:
		return s->text != NULL && strcmp(m->guid, s->text) == 0;
	}
	return false;
}

int store_search_run_slice(struct store_folder *folder, const struct store_search *search,
			   bool use_fts, size_t first, size_t count, uint32_t **uids_r,
			   size_t *count_r, char **error_r)
{
	*uids_r = NULL;
	*count_r = 0;
	if (search == NULL) {
		*error_r = xstrdup("empty search");
		return -1;
	}
	if (depth_check(search, 0, error_r) < 0)
		return -1;
	if (search->next != NULL) {
		*error_r = xstrdup("search root must be one key (use AND)");
		return -1;
	}
	size_t end = first >= folder->count	     ? folder->count
		     : count > folder->count - first ? folder->count
						     : first + count;
	struct run r = {.f = folder, .use_fts = use_fts};
	int ret = -1;
	if (first < end && use_fts && fts_prepare(&r, search, error_r) < 0)
		goto out;
	if (first < end && needs_sent(search) && load_sent(&r, error_r) < 0)
		goto out;
	uint32_t *uids = NULL;
	size_t n = 0;
	for (size_t i = first; i < end; i++) {
		message_reset(&r, i);
		if (match(&r, search)) {
			if (uids == NULL)
				uids = xcalloc(end - first, sizeof(*uids));
			uids[n++] = folder->msgs[i].uid;
		}
	}
	message_reset(&r, 0);
	*uids_r = uids;
	*count_r = n;
	ret = 1;
out:
	for (size_t i = 0; i < r.nhits; i++)
		free(r.hits[i].uids);
	free(r.hits);
	free(r.sent_days);
	return ret;
}

int store_search_run(struct store_folder *folder, const struct store_search *search, bool use_fts,
		     uint32_t **uids_r, size_t *count_r, char **error_r)
{
	return store_search_run_slice(folder, search, use_fts, 0, folder->count, uids_r, count_r,
				      error_r);
}
