#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "mail/mail_decode.h"
#include "mail/mail_header.h"
#include "mail/mail_imap.h"
#include "store/store_private.h"

/* The parsed form of a message, computed once while its bytes stream in
 * (delivery, APPEND, reconcile, reindex) and again by the search scan: the
 * IMAP texts, the section table, and the folded search text (decoded
 * header fields; decoded, charset-converted text/ parts). Memory is
 * bounded by MIME_MAX_HEADER and STORE_TEXT_MAX. */

struct tbuf {
	char *d;
	size_t len, cap;
};

static void tb_add(struct tbuf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->d = xrealloc(b->d, b->cap);
	}
	memcpy(b->d + b->len, p, n);
	b->len += n;
	b->d[b->len] = '\0';
}

struct store_textgen {
	struct mime_parser *parser;
	char *top_header; /* the top header block, bounded */
	size_t top_len;
	bool top_done;
	/* the text part being collected */
	const struct mime_part *part;
	bool part_is_text;
	struct mail_decoder dec;
	struct tbuf raw;  /* decoded bytes of the current part, before charset */
	struct tbuf body; /* UTF-8 text of all parts, folded at the end */
};

static void flush_part(struct store_textgen *g)
{
	if (g->part != NULL && g->part_is_text) {
		char tail[8];
		size_t n = mail_decoder_finish(&g->dec, tail);
		tb_add(&g->raw, tail, n);
		const char *cs = mime_param_get(g->part->params, g->part->nparams, "charset");
		size_t ulen;
		char *u =
		    mail_charset_to_utf8(cs, g->raw.d != NULL ? g->raw.d : "", g->raw.len, &ulen);
		size_t room = STORE_TEXT_MAX > g->body.len ? STORE_TEXT_MAX - g->body.len : 0;
		if (ulen > room)
			ulen = room;
		if (g->body.len > 0 && ulen > 0)
			tb_add(&g->body, "\n", 1);
		tb_add(&g->body, u, ulen);
		free(u);
	}
	g->raw.len = 0;
	g->part = NULL;
}

static void on_body(void *ctx, const struct mime_part *part, const void *data, size_t len)
{
	struct store_textgen *g = ctx;
	if (part != g->part) {
		flush_part(g);
		g->part = part;
		g->part_is_text = strcasecmp(part->type, "text") == 0;
		mail_decoder_init(&g->dec, mail_encoding_parse(part->encoding));
	}
	if (!g->part_is_text || g->raw.len >= STORE_TEXT_MAX)
		return;
	if (g->raw.len + len + 8 > g->raw.cap) {
		g->raw.cap = (g->raw.len + len + 8) * 2;
		g->raw.d = xrealloc(g->raw.d, g->raw.cap);
	}
	g->raw.len += mail_decoder_feed(&g->dec, data, len, g->raw.d + g->raw.len);
}

struct store_textgen *store_textgen_new(void)
{
	struct store_textgen *g = xcalloc(1, sizeof(*g));
	g->parser = mime_parser_new(on_body, g);
	g->top_header = xmalloc(MIME_MAX_HEADER + 1);
	return g;
}

void store_textgen_feed(struct store_textgen *g, const void *data, size_t len)
{
	if (!g->top_done) {
		/* keep the top header block for the search text */
		const unsigned char *d = data;
		for (size_t i = 0; i < len && g->top_len < MIME_MAX_HEADER; i++) {
			g->top_header[g->top_len++] = (char)d[i];
			if (d[i] == '\n' && g->top_len >= 2 &&
			    (g->top_header[g->top_len - 2] == '\n' ||
			     (g->top_len >= 3 && g->top_header[g->top_len - 2] == '\r' &&
			      g->top_header[g->top_len - 3] == '\n'))) {
				g->top_done = true;
				break;
			}
			if (g->top_len == 1 && d[i] == '\n')
				g->top_done = true;
		}
		if (g->top_len >= MIME_MAX_HEADER)
			g->top_done = true;
	}
	mime_parser_feed(g->parser, data, len);
}

struct section_ctx {
	struct store_parsed *parsed;
	size_t cap;
};

static void on_section(void *ctx, const char *section, const struct mime_part *part,
		       bool is_message)
{
	struct section_ctx *c = ctx;
	struct store_parsed *p = c->parsed;
	if (p->nsections == c->cap) {
		c->cap = c->cap * 2 + 8;
		p->sections = xrealloc(p->sections, c->cap * sizeof(*p->sections));
	}
	struct store_section *s = &p->sections[p->nsections++];
	s->section = xstrdup(section);
	s->is_message = is_message;
	s->header_start = part->header_start;
	s->body_start = part->body_start;
	s->end = part->end;
	s->lines = part->body_lines;
}

static void header_text(const char *block, size_t len, struct tbuf *out)
{
	size_t pos = 0;
	char *name, *value;
	while (mail_header_next(block, len, &pos, &name, &value) == 1) {
		char *dec = mail_decode_words(value);
		/* one line per field: a line break decoded from an encoded
		 * word must not start a field of its own */
		for (char *c = dec; *c != '\0'; c++)
			if (*c == '\r' || *c == '\n')
				*c = ' ';
		tb_add(out, name, strlen(name));
		tb_add(out, ": ", 2);
		tb_add(out, dec, strlen(dec));
		tb_add(out, "\n", 1);
		free(dec);
		free(name);
		free(value);
	}
}

void store_textgen_finish(struct store_textgen **genp, struct store_parsed *parsed)
{
	struct store_textgen *g = *genp;
	memset(parsed, 0, sizeof(*parsed));
	bool damaged;
	struct mime_part *root = mime_parser_finish(&g->parser, &damaged);
	flush_part(g);
	parsed->envelope = mail_imap_envelope(root);
	parsed->bodystructure = mail_imap_bodystructure(root, true);
	parsed->body = mail_imap_bodystructure(root, false);
	parsed->sent_day = store_date_day(root->env[MIME_ENV_DATE]);
	struct section_ctx sc = {.parsed = parsed};
	mail_imap_sections(root, on_section, &sc);
	mime_part_free(&root);

	struct tbuf h = {0};
	header_text(g->top_header, g->top_len, &h);
	parsed->header_text = store_fold(h.d != NULL ? h.d : "");
	parsed->body_text = store_fold(g->body.d != NULL ? g->body.d : "");
	free(h.d);
	store_textgen_free(genp);
}

void store_textgen_free(struct store_textgen **genp)
{
	struct store_textgen *g = *genp;
	if (g == NULL)
		return;
	mime_parser_free(&g->parser);
	free(g->top_header);
	free(g->raw.d);
	free(g->body.d);
	free(g);
	*genp = NULL;
}

int store_parse_fd(int fd, struct store_parsed *parsed, char **error_r)
{
	struct store_textgen *g = store_textgen_new();
	char buf[65536];
	off_t off = 0;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = xasprintf("read: %s", strerror(errno));
			store_textgen_free(&g);
			return -1;
		}
		if (n == 0)
			break;
		store_textgen_feed(g, buf, (size_t)n);
		off += n;
	}
	store_textgen_finish(&g, parsed);
	return 0;
}

void store_parsed_clear(struct store_parsed *p)
{
	free(p->envelope);
	free(p->body);
	free(p->bodystructure);
	free(p->header_text);
	free(p->body_text);
	for (size_t i = 0; i < p->nsections; i++)
		free(p->sections[i].section);
	free(p->sections);
	memset(p, 0, sizeof(*p));
}

/* Lower-case folding of UTF-8: ASCII, Latin-1, Latin Extended-A pairs,
 * Greek and Cyrillic capitals. Invalid bytes pass unchanged. */
static uint32_t fold_cp(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if (c < 0x80)
		return c;
	if ((c >= 0xc0 && c <= 0xde && c != 0xd7))
		return c + 32;
	if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 &&
	    c != 0x17f) {
		/* pairs: even upper, odd lower, except 0x139-0x148 and 0x179-0x17e */
		bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e);
		if (odd_upper ? (c & 1) : !(c & 1))
			return c + 1;
		return c;
	}
	if (c >= 0x391 && c <= 0x3ab && c != 0x3a2)
		return c + 32;
	if (c >= 0x410 && c <= 0x42f)
		return c + 32;
	if (c >= 0x400 && c <= 0x40f)
		return c + 80;
	return c;
}

char *store_fold(const char *s)
{
	size_t len = strlen(s);
	char *out = xmalloc(len * 2 + 1);
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned char c = p[i];
		uint32_t cp;
		size_t n;
		if (c < 0x80) {
			out[o++] = (char)fold_cp(c);
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0 && i + 1 < len && (p[i + 1] & 0xc0) == 0x80) {
			cp = ((uint32_t)(c & 0x1f) << 6) | (p[i + 1] & 0x3f);
			n = 2;
		} else {
			out[o++] = (char)c;
			i++;
			continue;
		}
		cp = fold_cp(cp);
		/* every folded code point above stays below 0x800 */
		out[o++] = (char)(0xc0 | (cp >> 6));
		out[o++] = (char)(0x80 | (cp & 0x3f));
		i += n;
	}
	out[o] = '\0';
	return out;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* "Tue, 1 Jul 2003 10:52:37 +0200" -> the day as written (timezone not
 * applied, as SENTON asks). INT64_MIN when unparsable. */
int64_t store_date_day(const char *s)
{
	static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
					     "jul", "aug", "sep", "oct", "nov", "dec"};
	if (s == NULL)
		return INT64_MIN;
	const char *comma = strchr(s, ',');
	if (comma != NULL && comma - s < 12)
		s = comma + 1;
	int day, year;
	char mon[4];
	if (sscanf(s, " %d %3s %d", &day, mon, &year) != 3)
		return INT64_MIN;
	int m = -1;
	for (int i = 0; i < 12; i++)
		if (strcasecmp(mon, months[i]) == 0)
			m = i + 1;
	if (m < 0 || day < 1 || day > 31)
		return INT64_MIN;
	if (year < 50)
		year += 2000;
	else if (year < 1000)
		year += 1900;
	return days_from_civil(year, (unsigned)m, (unsigned)day);
}
