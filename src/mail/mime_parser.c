#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "mail/mail_header.h"
#include "mail/mime_parser.h"

/* The parser works line by line. Of each line it keeps at most HOLD bytes,
 * enough to recognise a boundary line; a longer line cannot be one and is
 * passed on as it arrives. Header blocks are copied (bounded) and parsed
 * when their empty line is seen. The line end before a boundary line
 * belongs to the boundary, so a body line's end is handed to the body
 * callback only once the next line is known not to be a boundary. */

#define HOLD (MIME_MAX_BOUNDARY + 64)

struct mime_parser {
	struct mime_part *root, *cur;
	bool in_header;
	bool structure_off; /* part bound hit: no more boundaries are recognised */
	bool damaged;
	size_t nparts;
	uint64_t offset, lf_count;

	/* the current line */
	uint64_t line_start, lf_at_line_start;
	char hold[HOLD];
	size_t hold_len;
	uint64_t line_len;
	bool line_flushed;     /* too long to be a boundary: passed on already */
	bool held_cr;	       /* a flushed line's last byte, CR, not yet passed on */
	unsigned char tail[2]; /* the last two bytes of the line so far */

	/* the previous line */
	unsigned prev_eol;
	bool prev_nonempty;
	char pending_eol[2];
	unsigned pending_eol_len;

	char *hdr;
	size_t hdr_len;

	mime_body_cb *cb;
	void *ctx;
};

static struct mime_part *part_new(struct mime_parser *p, struct mime_part *parent, uint64_t start,
				  bool is_message)
{
	struct mime_part *part = xcalloc(1, sizeof(*part));
	part->parent = parent;
	part->header_start = start;
	part->body_start = start;
	part->end = start;
	part->is_message = is_message;
	part->depth = parent == NULL ? 0 : parent->depth + 1;
	if (parent != NULL) {
		struct mime_part **tail = &parent->children;
		while (*tail != NULL)
			tail = &(*tail)->next;
		*tail = part;
	}
	p->nparts++;
	return part;
}

struct mime_parser *mime_parser_new(mime_body_cb *body_cb, void *ctx)
{
	struct mime_parser *p = xcalloc(1, sizeof(*p));
	p->cb = body_cb;
	p->ctx = ctx;
	p->hdr = xmalloc(MIME_MAX_HEADER);
	p->root = part_new(p, NULL, 0, true);
	p->cur = p->root;
	p->in_header = true;
	return p;
}

static bool is_leaf_body(const struct mime_parser *p)
{
	return !p->in_header && !p->cur->is_multipart && !p->cur->is_rfc822 && p->cb != NULL;
}

static void emit(struct mime_parser *p, const void *data, size_t len)
{
	if (len > 0)
		p->cb(p->ctx, p->cur, data, len);
}

static void emit_pending_eol(struct mime_parser *p)
{
	if (p->pending_eol_len > 0 && is_leaf_body(p))
		emit(p, p->pending_eol, p->pending_eol_len);
	p->pending_eol_len = 0;
}

static char *dup_clean(const char *s)
{
	return s == NULL ? NULL : xstrdup(s);
}

/* Parse the header block collected for the current part and decide its
 * structure. */
static void header_done(struct mime_parser *p)
{
	struct mime_part *part = p->cur;
	size_t pos = 0;
	char *name, *value;
	bool have_type = false;
	static const char *const env_names[MIME_ENV_COUNT] = {
	    "Date", "Subject", "From", "Sender",      "Reply-To",
	    "To",   "Cc",      "Bcc",  "In-Reply-To", "Message-ID"};

	while (mail_header_next(p->hdr, p->hdr_len, &pos, &name, &value) == 1) {
		char **slot = NULL;
		if (strcasecmp(name, "Content-Type") == 0 && !have_type) {
			have_type = true;
			mail_content_type_parse(value, &part->type, &part->subtype, &part->params,
						&part->nparams);
			if (part->type == NULL)
				p->damaged = true;
		} else if (strcasecmp(name, "Content-Transfer-Encoding") == 0) {
			slot = &part->encoding;
		} else if (strcasecmp(name, "Content-ID") == 0) {
			slot = &part->id;
		} else if (strcasecmp(name, "Content-Description") == 0) {
			slot = &part->description;
		} else if (strcasecmp(name, "Content-MD5") == 0) {
			slot = &part->md5;
		} else if (strcasecmp(name, "Content-Language") == 0) {
			slot = &part->language;
		} else if (strcasecmp(name, "Content-Location") == 0) {
			slot = &part->location;
		} else if (strcasecmp(name, "Content-Disposition") == 0) {
			if (part->disposition == NULL) {
				char *dt;
				struct mime_param *dp;
				size_t ndp;
				mail_disposition_parse(value, &dt, &dp, &ndp);
				if (dt != NULL) {
					part->disposition = dt;
					part->disp_params = dp;
					part->ndisp_params = ndp;
				} else {
					mail_params_free(&dp, ndp);
				}
			}
		} else if (part->is_message) {
			for (int i = 0; i < MIME_ENV_COUNT; i++)
				if (strcasecmp(name, env_names[i]) == 0) {
					slot = &part->env[i];
					break;
				}
		}
		if (slot != NULL && *slot == NULL) {
			*slot = value;
			value = NULL;
		}
		free(name);
		free(value);
	}
	p->hdr_len = 0;

	if (part->type == NULL || part->subtype == NULL) {
		free(part->type);
		free(part->subtype);
		mail_params_free(&part->params, part->nparams);
		part->nparams = 0;
		const struct mime_part *parent = part->parent;
		if (part->is_message && parent != NULL)
			parent = parent->parent;
		if (parent != NULL && parent->is_multipart && parent->subtype != NULL &&
		    strcasecmp(parent->subtype, "digest") == 0) {
			part->type = xstrdup("message");
			part->subtype = xstrdup("rfc822");
		} else {
			part->type = xstrdup("text");
			part->subtype = xstrdup("plain");
			part->params = xcalloc(1, sizeof(*part->params));
			part->params[0].name = xstrdup("charset");
			part->params[0].value = xstrdup("us-ascii");
			part->nparams = 1;
		}
	}
	if (strcasecmp(part->type, "multipart") == 0) {
		const char *b = mime_param_get(part->params, part->nparams, "boundary");
		if (b == NULL || *b == '\0' || strlen(b) > MIME_MAX_BOUNDARY ||
		    part->depth >= MIME_MAX_DEPTH)
			p->damaged = true;
		else if (!p->structure_off) {
			part->is_multipart = true;
			part->boundary = dup_clean(b);
		}
	} else if (strcasecmp(part->type, "message") == 0 &&
		   strcasecmp(part->subtype, "rfc822") == 0) {
		bool encoded =
		    part->encoding != NULL && (strcasecmp(part->encoding, "base64") == 0 ||
					       strcasecmp(part->encoding, "quoted-printable") == 0);
		if (part->depth >= MIME_MAX_DEPTH)
			p->damaged = true;
		else if (!encoded && !p->structure_off)
			part->is_rfc822 = true;
	}
}

static void close_part(struct mime_parser *p, struct mime_part *part, uint64_t end,
		       uint64_t lf_before, bool last_nonempty)
{
	if (p->in_header && part == p->cur) {
		header_done(p);
		part->body_start = end > part->header_start ? end : part->header_start;
		part->lf_at_body_start = lf_before;
		p->in_header = false;
		p->damaged = true;
	}
	if (end <= part->body_start) {
		part->end = part->body_start;
		part->body_lines = 0;
	} else {
		part->end = end;
		part->body_lines = lf_before - part->lf_at_body_start + (last_nonempty ? 1 : 0);
	}
	if (part->is_multipart && !part->closed)
		p->damaged = true;
}

/* The multipart whose boundary this line is, innermost first. */
static struct mime_part *match_boundary(struct mime_parser *p, const char *s, size_t len,
					bool *close_r)
{
	for (struct mime_part *m = p->cur; m != NULL; m = m->parent) {
		if (!m->is_multipart || m->closed)
			continue;
		size_t bl = strlen(m->boundary);
		if (len < bl || memcmp(s, m->boundary, bl) != 0)
			continue;
		const char *rest = s + bl;
		size_t rlen = len - bl;
		bool close = false;
		if (rlen >= 2 && rest[0] == '-' && rest[1] == '-') {
			close = true;
			rest += 2;
			rlen -= 2;
		}
		size_t i = 0;
		while (i < rlen && (rest[i] == ' ' || rest[i] == '\t' || rest[i] == '\r'))
			i++;
		if (i != rlen)
			continue;
		*close_r = close;
		return m;
	}
	return NULL;
}

static void start_body(struct mime_parser *p, uint64_t body_start)
{
	struct mime_part *part = p->cur;
	header_done(p);
	part->body_start = body_start;
	part->lf_at_body_start = p->lf_count;
	p->in_header = false;
	p->pending_eol_len = 0;
	if (part->is_rfc822) {
		if (p->nparts >= MIME_MAX_PARTS) {
			part->is_rfc822 = false;
			p->damaged = true;
			return;
		}
		p->cur = part_new(p, part, body_start, true);
		p->in_header = true;
	}
}

/* A whole line is in: its length is p->line_len, its end eol_len bytes. */
static void end_line(struct mime_parser *p, unsigned eol_len)
{
	uint64_t content_len = p->line_len - eol_len;
	struct mime_part *m = NULL;
	bool close = false;

	if (!p->line_flushed && !p->structure_off && content_len >= 2 && p->hold[0] == '-' &&
	    p->hold[1] == '-')
		m = match_boundary(p, p->hold + 2, content_len - 2, &close);
	if (m != NULL) {
		uint64_t e = p->line_start - p->prev_eol;
		uint64_t lf_before = p->lf_at_line_start - (p->prev_eol > 0 ? 1 : 0);
		bool nonempty = p->prev_nonempty;
		while (p->cur != m) {
			close_part(p, p->cur, e, lf_before, nonempty);
			if (p->cur->end > e) {
				/* a header ended by the line end the boundary would
				 * take: the parents keep it too, so they hold the child */
				e = p->cur->end;
				lf_before = p->lf_at_line_start;
				nonempty = false;
			}
			p->cur = p->cur->parent;
			p->in_header = false;
		}
		p->in_header = false;
		p->pending_eol_len = 0;
		if (close) {
			m->closed = true;
		} else if (p->nparts >= MIME_MAX_PARTS) {
			p->structure_off = true;
			p->damaged = true;
		} else {
			p->cur = part_new(p, m, p->line_start + p->line_len, false);
			p->in_header = true;
		}
	} else if (p->in_header) {
		if (content_len == 0)
			start_body(p, p->line_start + p->line_len);
	} else if (is_leaf_body(p)) {
		emit_pending_eol(p);
		if (!p->line_flushed)
			emit(p, p->hold, content_len);
		else if (p->held_cr && eol_len == 0)
			emit(p, "\r", 1);
		memcpy(p->pending_eol, &"\r\n"[eol_len == 1 ? 1 : 0], eol_len);
		p->pending_eol_len = eol_len;
	}
	p->prev_eol = eol_len;
	p->prev_nonempty = content_len > 0;
	p->line_start += p->line_len;
	p->lf_at_line_start = p->lf_count;
	p->line_len = 0;
	p->hold_len = 0;
	p->line_flushed = false;
	p->held_cr = false;
	p->tail[0] = p->tail[1] = 0;
}

/* seg is part of one line: it holds no LF, or ends with the line's LF. */
static void add_bytes(struct mime_parser *p, const unsigned char *seg, size_t len)
{
	if (p->in_header) {
		size_t room = MIME_MAX_HEADER - p->hdr_len;
		size_t n = len < room ? len : room;
		memcpy(p->hdr + p->hdr_len, seg, n);
		p->hdr_len += n;
		if (n < len)
			p->damaged = true;
	}
	size_t room = HOLD - p->hold_len;
	size_t take = len < room ? len : room;
	memcpy(p->hold + p->hold_len, seg, take);
	p->hold_len += take;

	bool ends_line = seg[len - 1] == '\n';
	if (take < len && !p->line_flushed) {
		/* too long for a boundary: pass the held bytes on */
		p->line_flushed = true;
		if (is_leaf_body(p)) {
			size_t n = p->hold_len;
			emit_pending_eol(p);
			if (p->hold[n - 1] == '\r') {
				n--;
				p->held_cr = true;
			}
			emit(p, p->hold, n);
		}
	}
	if (p->line_flushed && is_leaf_body(p)) {
		const unsigned char *d = seg + take;
		size_t n = len - take;
		if (n > 0 && p->held_cr) {
			if (d[0] != '\n')
				emit(p, "\r", 1);
			p->held_cr = false;
		}
		if (n > 0 && ends_line)
			n--; /* the LF */
		if (n > 0 && ends_line && d[n - 1] == '\r')
			n--;
		else if (n > 0 && !ends_line && d[n - 1] == '\r') {
			n--;
			p->held_cr = true;
		}
		emit(p, d, n);
	}
	for (size_t i = len > 2 ? len - 2 : 0; i < len; i++) {
		p->tail[0] = p->tail[1];
		p->tail[1] = seg[i];
	}
	p->line_len += len;
	p->offset += len;
}

void mime_parser_feed(struct mime_parser *p, const void *data, size_t len)
{
	const unsigned char *d = data;
	while (len > 0) {
		const unsigned char *nl = memchr(d, '\n', len);
		size_t seg = nl != NULL ? (size_t)(nl - d) + 1 : len;
		add_bytes(p, d, seg);
		if (nl != NULL) {
			p->lf_count++;
			end_line(p, p->line_len >= 2 && p->tail[0] == '\r' ? 2 : 1);
		}
		d += seg;
		len -= seg;
	}
}

struct mime_part *mime_parser_finish(struct mime_parser **parser, bool *damaged_r)
{
	struct mime_parser *p = *parser;
	bool last_nonempty = false;
	if (p->line_len > 0) {
		last_nonempty = true;
		end_line(p, 0);
	} else if (!p->in_header) {
		emit_pending_eol(p);
	}
	/* a message of headers only is fine; an unfinished part header is not */
	if (p->in_header && p->cur->parent != NULL)
		p->damaged = true;
	for (struct mime_part *part = p->cur; part != NULL; part = part->parent) {
		if (p->in_header && part == p->cur) {
			header_done(p);
			part->body_start = p->offset;
			part->lf_at_body_start = p->lf_count;
			p->in_header = false;
		}
		close_part(p, part, p->offset, p->lf_count, last_nonempty);
	}
	if (damaged_r != NULL)
		*damaged_r = p->damaged;
	struct mime_part *root = p->root;
	p->root = NULL;
	mime_parser_free(parser);
	return root;
}

void mime_parser_free(struct mime_parser **parser)
{
	struct mime_parser *p = *parser;
	if (p == NULL)
		return;
	mime_part_free(&p->root);
	free(p->hdr);
	free(p);
	*parser = NULL;
}

struct mime_part *mime_parse_buffer(const void *data, size_t len, bool *damaged_r)
{
	struct mime_parser *p = mime_parser_new(NULL, NULL);
	mime_parser_feed(p, data, len);
	return mime_parser_finish(&p, damaged_r);
}

void mime_part_free(struct mime_part **partp)
{
	struct mime_part *part = *partp;
	if (part == NULL)
		return;
	struct mime_part *child = part->children;
	while (child != NULL) {
		struct mime_part *next = child->next;
		mime_part_free(&child);
		child = next;
	}
	free(part->type);
	free(part->subtype);
	mail_params_free(&part->params, part->nparams);
	mail_params_free(&part->disp_params, part->ndisp_params);
	free(part->encoding);
	free(part->id);
	free(part->description);
	free(part->md5);
	free(part->language);
	free(part->location);
	free(part->disposition);
	free(part->boundary);
	for (int i = 0; i < MIME_ENV_COUNT; i++)
		free(part->env[i]);
	free(part);
	*partp = NULL;
}

const char *mime_param_get(const struct mime_param *params, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++)
		if (strcasecmp(params[i].name, name) == 0)
			return params[i].value;
	return NULL;
}

size_t mime_part_count(const struct mime_part *root)
{
	size_t n = 1;
	for (const struct mime_part *c = root->children; c != NULL; c = c->next)
		n += mime_part_count(c);
	return n;
}
