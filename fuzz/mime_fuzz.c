/* libFuzzer target for the MIME parser and the IMAP renderings
 * (src/mail/).
 *
 * Input: the first byte seeds the split pattern; the rest is a message.
 * It is parsed whole and in pseudo-random pieces: the trees' offsets,
 * BODYSTRUCTUREs and ENVELOPEs must be equal, offsets must be ordered and
 * inside the message, the bounds must hold, and the body callback must
 * receive exactly the leaf parts' bytes. The header helpers (RFC 2047,
 * RFC 2231, addresses) run on every header value too. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mail_address.h"
#include "mail/mail_decode.h"
#include "mail/mail_header.h"
#include "mail/mail_imap.h"
#include "mail/mime_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

struct sink {
	const uint8_t *msg;
	size_t total;
	uint64_t pos;
	const struct mime_part *last;
};

static void on_body(void *ctx, const struct mime_part *part, const void *d, size_t len)
{
	struct sink *s = ctx;
	if (part != s->last) {
		s->last = part;
		s->pos = part->body_start;
	}
	check(s->pos + len <= s->total);
	check(memcmp(s->msg + s->pos, d, len) == 0);
	s->pos += len;
	s->total += 0;
}

static uint64_t leaf_bytes(const struct mime_part *p)
{
	uint64_t n = 0;
	if (!p->is_multipart && !p->is_rfc822)
		n += p->end - p->body_start;
	for (const struct mime_part *c = p->children; c != NULL; c = c->next)
		n += leaf_bytes(c);
	return n;
}

static void walk(const struct mime_part *p, size_t size, unsigned depth)
{
	check(p->header_start <= p->body_start);
	check(p->body_start <= p->end);
	check(p->end <= size);
	check(depth <= MIME_MAX_DEPTH + 1);
	for (const struct mime_part *c = p->children; c != NULL; c = c->next) {
		check(c->header_start >= p->body_start);
		check(c->end <= p->end);
		walk(c, size, depth + 1);
	}
}

struct counted {
	uint64_t bytes;
};

static void count_cb(void *ctx, const struct mime_part *part, const void *d, size_t len)
{
	((struct counted *)ctx)->bytes += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint32_t seed = data[0];
	const uint8_t *msg = data + 1;
	size_t len = size - 1;

	struct sink sink = {.msg = msg, .total = len};
	struct mime_parser *p = mime_parser_new(on_body, &sink);
	mime_parser_feed(p, msg, len);
	bool damaged1;
	struct mime_part *a = mime_parser_finish(&p, &damaged1);

	struct counted cnt = {0};
	p = mime_parser_new(count_cb, &cnt);
	size_t pos = 0;
	while (pos < len) {
		seed = seed * 1103515245u + 12345u;
		size_t n = 1 + (seed >> 16) % 97;
		if (n > len - pos)
			n = len - pos;
		mime_parser_feed(p, msg + pos, n);
		pos += n;
	}
	bool damaged2;
	struct mime_part *b = mime_parser_finish(&p, &damaged2);
	check(damaged1 == damaged2);
	check(mime_part_count(a) == mime_part_count(b));
	check(mime_part_count(a) <= MIME_MAX_PARTS + 1);
	walk(a, len, 0);
	check(cnt.bytes == leaf_bytes(b));

	char *bs1 = mail_imap_bodystructure(a, true), *bs2 = mail_imap_bodystructure(b, true);
	char *e1 = mail_imap_envelope(a), *e2 = mail_imap_envelope(b);
	char *body = mail_imap_bodystructure(a, false);
	check(strcmp(bs1, bs2) == 0);
	check(strcmp(e1, e2) == 0);

	/* the header helpers on the top header's values */
	size_t hpos = 0;
	char *name, *value;
	size_t hlen = (size_t)a->body_start;
	while (mail_header_next((const char *)msg, hlen, &hpos, &name, &value) == 1) {
		char *dec = mail_decode_words(value);
		check(mail_utf8_valid(dec, strlen(dec)));
		struct mail_address *list = mail_address_parse(value);
		mail_address_free(&list);
		char *t, *st;
		struct mime_param *params;
		size_t np;
		mail_content_type_parse(value, &t, &st, &params, &np);
		char *fn = mail_param_decode(params, np, "name");
		free(fn);
		mail_params_free(&params, np);
		free(t);
		free(st);
		free(dec);
		free(name);
		free(value);
	}
	size_t dl;
	free(mail_base64_decode(msg, len, &dl));
	free(mail_qp_decode(msg, len, false, &dl));

	free(bs1);
	free(bs2);
	free(e1);
	free(e2);
	free(body);
	mime_part_free(&a);
	mime_part_free(&b);
	return 0;
}
