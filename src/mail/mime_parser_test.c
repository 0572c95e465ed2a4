#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "mail/mail_imap.h"
#include "mail/mime_parser.h"

/* Every message is parsed whole, one byte at a time and in chunks of 7:
 * the trees, the BODYSTRUCTUREs and the body bytes handed to the callback
 * must be identical, and the callback bytes must be exactly the leaf
 * parts' [body_start, end) ranges. */

struct collect {
	const char *msg;
	char *bytes;
	size_t len;
	const struct mime_part *last;
	uint64_t part_pos; /* next expected offset within the current part */
	int mismatch;
};

static void on_body(void *ctx, const struct mime_part *part, const void *data, size_t len)
{
	struct collect *c = ctx;
	if (part != c->last) {
		c->last = part;
		c->part_pos = part->body_start;
	}
	/* body_start is known when bytes arrive; end not yet */
	if (memcmp(c->msg + c->part_pos, data, len) != 0)
		c->mismatch++;
	c->part_pos += len;
	c->bytes = xrealloc(c->bytes, c->len + len + 1);
	memcpy(c->bytes + c->len, data, len);
	c->len += len;
}

static void dump(const struct mime_part *p, char **out, size_t *len)
{
	char *line =
	    xasprintf("[%u %d%d%d %s/%s %llu %llu %llu %llu]", p->depth, p->is_message,
		      p->is_multipart, p->is_rfc822, p->type, p->subtype,
		      (unsigned long long)p->header_start, (unsigned long long)p->body_start,
		      (unsigned long long)p->end, (unsigned long long)p->body_lines);
	size_t l = strlen(line);
	*out = xrealloc(*out, *len + l + 1);
	memcpy(*out + *len, line, l + 1);
	*len += l;
	free(line);
	for (const struct mime_part *c = p->children; c != NULL; c = c->next)
		dump(c, out, len);
}

static void leaf_bytes(const struct mime_part *p, const char *msg, char **out, size_t *len)
{
	if (!p->is_multipart && !p->is_rfc822) {
		size_t n = p->end - p->body_start;
		*out = xrealloc(*out, *len + n + 1);
		memcpy(*out + *len, msg + p->body_start, n);
		*len += n;
	}
	for (const struct mime_part *c = p->children; c != NULL; c = c->next)
		leaf_bytes(c, msg, out, len);
}

struct result {
	char *tree, *bs;
	bool damaged;
};

static struct result parse_with(const char *msg, size_t len, size_t chunk)
{
	struct collect c = {.msg = msg};
	struct mime_parser *p = mime_parser_new(on_body, &c);
	for (size_t i = 0; i < len; i += chunk)
		mime_parser_feed(p, msg + i, len - i < chunk ? len - i : chunk);
	struct result r = {0};
	struct mime_part *root = mime_parser_finish(&p, &r.damaged);
	size_t tl = 0;
	dump(root, &r.tree, &tl);
	r.bs = mail_imap_bodystructure(root, true);
	char *want = NULL;
	size_t wl = 0;
	leaf_bytes(root, msg, &want, &wl);
	assert_int_equal(c.mismatch, 0);
	assert_int_equal(c.len, wl);
	if (wl > 0)
		assert_memory_equal(c.bytes, want, wl);
	free(want);
	free(c.bytes);
	mime_part_free(&root);
	return r;
}

static struct result check_splits(const char *msg, size_t len)
{
	struct result whole = parse_with(msg, len, len == 0 ? 1 : len);
	size_t chunks[] = {1, 2, 7, 100};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct result r = parse_with(msg, len, chunks[i]);
		assert_string_equal(r.tree, whole.tree);
		assert_string_equal(r.bs, whole.bs);
		assert_int_equal(r.damaged, whole.damaged);
		free(r.tree);
		free(r.bs);
	}
	return whole;
}

static void free_result(struct result *r)
{
	free(r->tree);
	free(r->bs);
}

static void test_plain(void **state)
{
	const char *m = "From: a@b.c\r\nSubject: hi\r\n\r\nline one\r\nline two\r\n";
	struct result r = check_splits(m, strlen(m));
	assert_false(r.damaged);
	assert_string_equal(r.tree, "[0 100 text/plain 0 28 48 2]");
	assert_string_equal(r.bs, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
				  "20 2 NIL NIL NIL NIL)");
	free_result(&r);
}

static void test_bare_lf_and_no_final_eol(void **state)
{
	const char *m = "Subject: x\n\nabc\ndef";
	struct result r = check_splits(m, strlen(m));
	assert_false(r.damaged);
	assert_string_equal(r.tree, "[0 100 text/plain 0 12 19 2]");
	free_result(&r);
}

static void test_headers_only(void **state)
{
	const char *m = "Subject: x\r\nFrom: y@z\r\n";
	struct result r = check_splits(m, strlen(m));
	assert_string_equal(r.tree, "[0 100 text/plain 0 23 23 0]");
	free_result(&r);
}

static void test_alternative(void **state)
{
	const char *m = "Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
			"\r\n"
			"--b1\r\n"
			"Content-Type: text/plain; charset=utf-8\r\n"
			"\r\n"
			"plain\r\n"
			"--b1\r\n"
			"Content-Type: text/html; charset=utf-8\r\n"
			"Content-Transfer-Encoding: quoted-printable\r\n"
			"\r\n"
			"<b>html</b>\r\n"
			"two\r\n"
			"--b1--\r\n";
	struct result r = check_splits(m, strlen(m));
	assert_false(r.damaged);
	assert_string_equal(
	    r.bs, "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 1 NIL NIL NIL "
		  "NIL)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" "
		  "16 2 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"b1\") NIL NIL NIL)");
	free_result(&r);
}

static void test_mixed_nested(void **state)
{
	FILE *f = fopen(SRCDIR "/testdata/m1.eml", "rb");
	assert_non_null(f);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	struct result r = check_splits(buf, n);
	assert_false(r.damaged);
	/* hand-checked against RFC 3501's grammar and the byte offsets */
	assert_string_equal(
	    r.bs,
	    "(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 2 NIL NIL NIL "
	    "NIL)(\"text\" \"html\" NIL NIL NIL \"7bit\" 9 1 NIL NIL NIL NIL) \"alternative\" "
	    "(\"boundary\" \"YY\") NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 71 "
	    "(NIL \"inner\" ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" "
	    "\"b.c\")) ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL "
	    "NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 1 NIL NIL "
	    "NIL NIL) 5 NIL NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"a.pdf\") NIL NIL "
	    "\"base64\" 8 NIL (\"attachment\" (\"filename\" \"a.pdf\")) NIL NIL) \"mixed\" "
	    "(\"boundary\" \"XX\") NIL NIL NIL)");
	free_result(&r);
}

static void test_signed(void **state)
{
	const char *m = "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n"
			" protocol=\"application/pgp-signature\"; boundary=\"s\"\r\n"
			"\r\n"
			"--s\r\n"
			"Content-Type: text/plain\r\n"
			"\r\n"
			"signed text\r\n"
			"--s\r\n"
			"Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n"
			"\r\n"
			"-----BEGIN PGP SIGNATURE-----\r\n"
			"abc\r\n"
			"-----END PGP SIGNATURE-----\r\n"
			"--s--\r\n";
	struct result r = check_splits(m, strlen(m));
	assert_false(r.damaged);
	assert_non_null(strstr(r.bs, "\"signed\" (\"micalg\" \"pgp-sha256\" \"protocol\" "
				     "\"application/pgp-signature\" \"boundary\" \"s\")"));
	if (strstr(r.bs, "\"7bit\" 63 NIL NIL NIL NIL)") == NULL)
		fail_msg("%s", r.bs);
	free_result(&r);
}

static void test_encrypted_and_8bit_headers(void **state)
{
	const char *m =
	    "From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.de>\r\n"
	    "Subject: Gr\xc3\xbc\xc3\x9f\xc3\xa9 raw UTF-8\r\n"
	    "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n"
	    "\tboundary=\"enc\"\r\n"
	    "\r\n"
	    "--enc\r\n"
	    "Content-Type: application/pgp-encrypted\r\n"
	    "\r\n"
	    "Version: 1\r\n"
	    "--enc\r\n"
	    "Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"
	    "\r\n"
	    "-----BEGIN PGP MESSAGE-----\r\n"
	    "hQEMA\r\n"
	    "-----END PGP MESSAGE-----\r\n"
	    "--enc--\r\n";
	struct result r = check_splits(m, strlen(m));
	assert_false(r.damaged);
	assert_string_equal(
	    r.bs, "((\"application\" \"pgp-encrypted\" NIL NIL NIL \"7bit\" 10 NIL NIL NIL NIL)"
		  "(\"application\" \"octet-stream\" (\"name\" \"encrypted.asc\") NIL NIL \"7bit\" "
		  "61 NIL NIL NIL NIL) \"encrypted\" (\"protocol\" \"application/pgp-encrypted\" "
		  "\"boundary\" \"enc\") NIL NIL NIL)");
	free_result(&r);
	struct mime_part *root = mime_parse_buffer(m, strlen(m), NULL);
	char *env = mail_imap_envelope(root);
	/* 8-bit subject as a literal, encoded words left as they are */
	assert_non_null(strstr(env, "{18}\r\nGr\xc3\xbc\xc3\x9f\xc3\xa9 raw UTF-8 "));
	assert_non_null(strstr(env, "((\"=?UTF-8?Q?J=C3=BCrgen?=\" NIL \"j\" \"example.de\"))"));
	free(env);
	mime_part_free(&root);
}

static void test_broken(void **state)
{
	const char *cases[] = {
	    /* boundary never closed */
	    "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nA: b\r\n\r\nbody",
	    /* boundary never appears */
	    "Content-Type: multipart/mixed; boundary=x\r\n\r\njust text\r\n",
	    /* multipart without a boundary parameter */
	    "Content-Type: multipart/mixed\r\n\r\n--x\r\n",
	    /* part header never ends */
	    "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nA: b\r\n--x--\r\n",
	    /* garbage header and content type */
	    "\x01\x02garbage\r\nContent-Type: ;;;/\r\n\r\n\r\n",
	    /* nothing */
	    "",
	    /* message/rfc822 with nothing in it */
	    "Content-Type: message/rfc822\r\n\r\n",
	    /* bare CR everywhere */
	    "Content-Type: multipart/mixed; boundary=x\r\r\r--x\r\r--x--",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct result r = check_splits(cases[i], strlen(cases[i]));
		/* BODYSTRUCTURE stays well-formed: balanced parentheses */
		int depth = 0;
		bool in_q = false;
		for (const char *s = r.bs; *s; s++) {
			if (*s == '\\' && in_q) {
				s++;
				continue;
			}
			if (*s == '"')
				in_q = !in_q;
			else if (!in_q && *s == '(')
				depth++;
			else if (!in_q && *s == ')')
				depth--;
			assert_true(depth >= 0);
		}
		assert_int_equal(depth, 0);
		free_result(&r);
	}
	struct result r = check_splits(cases[0], strlen(cases[0]));
	assert_true(r.damaged);
	assert_string_equal(r.bs, "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
				  "\"7bit\" 4 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"x\") "
				  "NIL NIL NIL)");
	free_result(&r);
}

static void test_bounds(void **state)
{
	/* nesting deeper than the bound */
	char *m = NULL;
	size_t len = 0;
	for (int i = 0; i < 40; i++) {
		char *piece =
		    xasprintf("Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
		m = xrealloc(m, len + strlen(piece) + 1);
		memcpy(m + len, piece, strlen(piece) + 1);
		len += strlen(piece);
		free(piece);
	}
	struct result r = check_splits(m, len);
	assert_true(r.damaged);
	free(m);
	free_result(&r);

	/* too many parts */
	size_t cap = 64 + (size_t)(MIME_MAX_PARTS + 100) * 12;
	m = xmalloc(cap);
	len = (size_t)sprintf(m, "Content-Type: multipart/mixed; boundary=q\r\n\r\n");
	for (int i = 0; i < MIME_MAX_PARTS + 100; i++)
		len += (size_t)sprintf(m + len, "--q\r\n\r\nx\r\n");
	bool damaged;
	struct mime_part *root = mime_parse_buffer(m, len, &damaged);
	assert_true(damaged);
	assert_true(mime_part_count(root) <= MIME_MAX_PARTS);
	mime_part_free(&root);
	free(m);

	/* a header block over the bound */
	m = xmalloc(MIME_MAX_HEADER * 2 + 100);
	len = 0;
	while (len < MIME_MAX_HEADER * 2)
		len += (size_t)sprintf(m + len, "X-Long: %0100d\r\n", 0);
	len += (size_t)sprintf(m + len, "\r\nbody\r\n");
	root = mime_parse_buffer(m, len, &damaged);
	assert_true(damaged);
	assert_int_equal(root->end - root->body_start, 6);
	mime_part_free(&root);
	free(m);
}

static void test_long_lines(void **state)
{
	/* lines longer than the hold buffer, with CRLF split across feeds */
	size_t n = 5000;
	char *m = xmalloc(n * 3 + 200);
	size_t len =
	    (size_t)sprintf(m, "Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\n");
	for (int k = 0; k < 3; k++) {
		memset(m + len, 'a' + k, n);
		len += n;
		memcpy(m + len, k == 1 ? "\r\r\n" : "\r\n", k == 1 ? 3 : 2);
		len += k == 1 ? 3 : 2;
	}
	len += (size_t)sprintf(m + len, "--z--\r\n");
	struct result r = check_splits(m, len);
	assert_false(r.damaged);
	free_result(&r);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),	 cmocka_unit_test(test_bare_lf_and_no_final_eol),
	    cmocka_unit_test(test_headers_only), cmocka_unit_test(test_alternative),
	    cmocka_unit_test(test_mixed_nested), cmocka_unit_test(test_signed),
	    cmocka_unit_test(test_broken),	 cmocka_unit_test(test_encrypted_and_8bit_headers),
	    cmocka_unit_test(test_bounds),	 cmocka_unit_test(test_long_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
