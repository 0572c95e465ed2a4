#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/smtp/smtp_server.h"

/* A recording caller: replies go to out, events (with the body at its end)
 * to ev. Recipients whose local part starts with "later" are decided
 * asynchronously (the feeder completes them after the input call returns);
 * "nobody" is refused with 550 5.1.1. */
struct rec {
	struct smtp_server *srv;
	char *out, *ev, *body;
	size_t out_len, ev_len, body_len;
	bool lmtp;
	int pending_rcpt; /* a "later" recipient awaits its answer */
	unsigned rcpts;	  /* accepted in this transaction (LMTP replies) */
	bool quit;
	bool starttls_seen;
};

static void add(char **buf, size_t *len, const void *p, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	assert_non_null(*buf);
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
}

static void evf(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void evf(struct rec *r, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	add(&r->ev, &r->ev_len, tmp, (size_t)n);
}

static void cb_write(void *ctx, const void *data, size_t len)
{
	struct rec *r = ctx;
	add(&r->out, &r->out_len, data, len);
}

static int cb_hello(void *ctx, enum smtp_hello_kind kind, const char *domain)
{
	evf(ctx, "HELLO %d %s\n", (int)kind, domain);
	return 1;
}

static int cb_mail(void *ctx, const struct smtp_mail *m)
{
	evf(ctx, "MAIL <%s> size=%llu body=%d utf8=%d ret=%d envid=%s null=%d\n", m->path.address,
	    (unsigned long long)m->size, (int)m->body, m->smtputf8, (int)m->ret,
	    m->envid != NULL ? m->envid : "-", m->path.null);
	((struct rec *)ctx)->rcpts = 0;
	return 1;
}

static int cb_rcpt(void *ctx, const struct smtp_rcpt *rc)
{
	struct rec *r = ctx;
	evf(r, "RCPT <%s> local=%s domain=%s notify=%u orcpt=%s\n", rc->path.address,
	    rc->path.local_part, rc->path.domain, rc->notify, rc->orcpt != NULL ? rc->orcpt : "-");
	if (strncmp(rc->path.local_part, "later", 5) == 0) {
		r->pending_rcpt = 1;
		return 0;
	}
	if (strcmp(rc->path.local_part, "nobody") == 0) {
		smtp_server_reply(r->srv, 550, "5.1.1", "<%s> User unknown", rc->path.address);
		return -1;
	}
	r->rcpts++;
	return 1;
}

static int cb_data_begin(void *ctx, bool chunked)
{
	struct rec *r = ctx;
	evf(r, "DATA_BEGIN %d\n", chunked);
	r->body_len = 0;
	return 1;
}

static void cb_data(void *ctx, const void *data, size_t len)
{
	struct rec *r = ctx;
	add(&r->body, &r->body_len, data, len);
}

static int cb_data_end(void *ctx, const struct smtp_data_result *res)
{
	struct rec *r = ctx;
	evf(r, "DATA_END size=%llu error=%d chunked=%d body=[", (unsigned long long)res->size,
	    (int)res->error, res->chunked);
	add(&r->ev, &r->ev_len, r->body != NULL ? r->body : "", r->body_len);
	evf(r, "]\n");
	r->body_len = 0;
	unsigned n = r->lmtp ? r->rcpts : 1;
	for (unsigned i = 0; i < n; i++)
		smtp_server_reply_data_error(r->srv, res->error, r->lmtp ? "rcpt" : NULL);
	r->rcpts = 0;
	return res->error == SMTP_DATA_OK ? 1 : -1;
}

static void cb_reset(void *ctx)
{
	struct rec *r = ctx;
	evf(r, "RESET\n");
	r->rcpts = 0;
}

static int cb_starttls(void *ctx)
{
	struct rec *r = ctx;
	evf(r, "STARTTLS\n");
	r->starttls_seen = true;
	return 1;
}

static int cb_auth(void *ctx, const char *mech, const char *initial)
{
	struct rec *r = ctx;
	evf(r, "AUTH %s %s\n", mech, initial != NULL ? initial : "-");
	if (initial == NULL) {
		smtp_server_reply(r->srv, 334, NULL, " ");
		smtp_server_auth_lines(r->srv, true);
		return 0;
	}
	return 1;
}

static void cb_auth_line(void *ctx, const char *line)
{
	struct rec *r = ctx;
	evf(r, "AUTHLINE %s\n", line);
	smtp_server_auth_lines(r->srv, false);
	smtp_server_complete(r->srv, strcmp(line, "good") == 0 ? 1 : -1);
}

static void cb_quit(void *ctx)
{
	struct rec *r = ctx;
	evf(r, "QUIT\n");
	r->quit = true;
}

static const struct smtp_server_callbacks rec_callbacks = {
    .write = cb_write,
    .hello = cb_hello,
    .mail = cb_mail,
    .rcpt = cb_rcpt,
    .data_begin = cb_data_begin,
    .data = cb_data,
    .data_end = cb_data_end,
    .reset = cb_reset,
    .starttls = cb_starttls,
    .auth = cb_auth,
    .auth_line = cb_auth_line,
    .quit = cb_quit,
};

static const char *const lmtp_ext[] = {
    "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SIZE 1000", "CHUNKING", "SMTPUTF8", "DSN",
    NULL};
static const char *const smtp_ext[] = {"PIPELINING", "STARTTLS", "AUTH PLAIN",
				       "SIZE 1000",  "8BITMIME", NULL};

static void rec_init(struct rec *r, bool lmtp)
{
	memset(r, 0, sizeof(*r));
	r->lmtp = lmtp;
	struct smtp_server_settings set = {
	    .protocol = lmtp ? SMTP_PROTOCOL_LMTP : SMTP_PROTOCOL_SMTP,
	    .hostname = "mx.test",
	    .max_line = 100,
	    .max_message_line = 50,
	    .max_message_size = 1000,
	    .max_recipients = 3,
	    .max_bad_commands = 10,
	};
	r->srv = smtp_server_new(&set, &rec_callbacks, r);
	smtp_server_set_extensions(r->srv, lmtp ? lmtp_ext : smtp_ext);
	add(&r->out, &r->out_len, "", 0);
	add(&r->ev, &r->ev_len, "", 0);
}

static void rec_free(struct rec *r)
{
	smtp_server_free(&r->srv);
	assert_null(r->srv);
	free(r->out);
	free(r->ev);
	free(r->body);
}

/* answer a pending "later" recipient as an asynchronous caller would */
static void rec_settle(struct rec *r)
{
	while (r->pending_rcpt && smtp_server_paused(r->srv)) {
		r->pending_rcpt = 0;
		r->rcpts++;
		smtp_server_reply(r->srv, 250, "2.1.5", "later ok");
		smtp_server_complete(r->srv, 1);
	}
}

/* feed raw bytes in chunks of size chunk (0: all at once) */
static void feed_raw(struct rec *r, const char *in, size_t len, size_t chunk)
{
	size_t i = 0;
	while (i < len) {
		size_t n = chunk == 0 || chunk > len - i ? len - i : chunk;
		assert_int_equal(smtp_server_input(r->srv, in + i, n), 0);
		rec_settle(r);
		i += n;
	}
}

/* feed as the lmtp service does with conn: lines while the engine wants
 * lines (CRLF or bare LF stripped), raw chunks otherwise; a paused engine
 * is settled before more input */
static void feed_conn(struct rec *r, const char *in, size_t len, size_t chunk)
{
	char line[4096];
	size_t line_len = 0;
	size_t i = 0;
	while (i < len) {
		rec_settle(r);
		if (smtp_server_wants_raw(r->srv)) {
			assert_int_equal(line_len, 0);
			size_t n = chunk == 0 || chunk > len - i ? len - i : chunk;
			assert_int_equal(smtp_server_input(r->srv, in + i, n), 0);
			i += n;
			continue;
		}
		char c = in[i++];
		if (c != '\n') {
			assert_true(line_len < sizeof(line));
			line[line_len++] = c;
			continue;
		}
		if (line_len > 0 && line[line_len - 1] == '\r')
			line_len--;
		assert_int_equal(smtp_server_line(r->srv, line, line_len), 0);
		line_len = 0;
	}
	rec_settle(r);
}

static void run(struct rec *r, bool lmtp, const char *in)
{
	rec_init(r, lmtp);
	smtp_server_greet(r->srv, "ready");
	feed_raw(r, in, strlen(in), 0);
}

static void assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("'%s' not found in:\n%s", needle, hay);
}

static void assert_lacks(const char *hay, const char *needle)
{
	if (strstr(hay, needle) != NULL)
		fail_msg("'%s' unexpectedly found in:\n%s", needle, hay);
}

/* ---- tests ---- */

static void test_greeting_and_lhlo(void **state)
{
	(void)state;
	struct rec r;
	run(&r, true, "LHLO client.test\r\n");
	assert_string_equal(r.out, "220 mx.test ready\r\n"
				   "250-mx.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
				   "250-8BITMIME\r\n250-SIZE 1000\r\n250-CHUNKING\r\n"
				   "250-SMTPUTF8\r\n250 DSN\r\n");
	assert_string_equal(r.ev, "HELLO 2 client.test\n");
	rec_free(&r);

	run(&r, true,
	    "LHLO [192.0.2.1]\r\nLHLO [IPv6:2001:db8::1]\r\nLHLO\r\nLHLO bad..name\r\n"
	    "HELO x.test\r\nEHLO x.test\r\n");
	assert_contains(r.ev, "HELLO 2 [192.0.2.1]\nHELLO 2 [IPv6:2001:db8::1]\n");
	assert_contains(r.out, "501 5.5.4 LHLO needs arguments\r\n");
	assert_contains(r.out, "501 5.5.4 Invalid domain name");
	/* LMTP has no HELO/EHLO (RFC 2033 4.1) */
	assert_contains(r.out,
			"500 5.5.1 Command unrecognized\r\n500 5.5.1 Command unrecognized\r\n");
	rec_free(&r);

	run(&r, false, "EHLO a.test\r\nHELO b.test\r\nLHLO c.test\r\n");
	assert_contains(r.out,
			"250-mx.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250-AUTH PLAIN\r\n");
	assert_contains(r.out, "250 mx.test\r\n500 5.5.1 Command unrecognized\r\n");
	rec_free(&r);
}

static void test_simple_commands(void **state)
{
	(void)state;
	struct rec r;
	run(&r, true,
	    "NOOP\r\nNOOP anything\r\nRSET\r\nVRFY alice\r\nVRFY\r\nHELP\r\nEXPN list\r\n"
	    "RSET x\r\nQUIT\r\nNOOP\r\n");
	assert_string_equal(r.out,
			    "220 mx.test ready\r\n"
			    "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
			    "252 2.5.0 Cannot VRFY user, but will accept message and attempt "
			    "delivery\r\n"
			    "501 5.5.4 VRFY needs arguments\r\n"
			    "214 2.0.0 LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n"
			    "502 5.5.1 EXPN not available\r\n"
			    "501 5.5.4 RSET takes no arguments\r\n"
			    "221 2.0.0 mx.test Closing connection\r\n");
	assert_true(r.quit);
	assert_true(smtp_server_finished(r.srv));
	/* input after QUIT is ignored */
	assert_int_equal(smtp_server_input(r.srv, "NOOP\r\n", 6), 0);
	assert_int_equal(smtp_server_line(r.srv, "NOOP", 4), 0);
	assert_lacks(r.out + strlen(r.out) - 40, "250");
	rec_free(&r);

	/* lower case verbs, trailing blanks */
	run(&r, true, "lhlo c.test  \r\nnoop\r\nquit \r\n");
	assert_contains(r.out, "250 DSN\r\n250 2.0.0 Ok\r\n221 2.0.0");
	rec_free(&r);
}

static void test_sequence_errors(void **state)
{
	(void)state;
	struct rec r;
	run(&r, true, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
	assert_contains(r.out, "503 5.5.1 Send LHLO first\r\n503 5.5.1 Send LHLO first\r\n"
			       "503 5.5.1 Send LHLO first\r\n");
	rec_free(&r);

	run(&r, true,
	    "LHLO c\r\nRCPT TO:<c@d.test>\r\nDATA\r\nMAIL FROM:<a@b.test>\r\n"
	    "MAIL FROM:<a@b.test>\r\nDATA\r\nRCPT TO:<nobody@d.test>\r\nDATA\r\n");
	assert_contains(r.out, "503 5.5.1 Need MAIL before RCPT\r\n"
			       "503 5.5.1 Need MAIL and RCPT before DATA\r\n"
			       "250 2.1.0 Ok\r\n"
			       "503 5.5.1 Nested MAIL command\r\n"
			       "503 5.5.1 No valid recipients\r\n"
			       "550 5.1.1 <nobody@d.test> User unknown\r\n"
			       "503 5.5.1 No valid recipients\r\n");
	rec_free(&r);

	/* SMTP answers DATA without recipients with 554 (RFC 2920) */
	run(&r, false, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<nobody@d.test>\r\nDATA\r\n");
	assert_contains(r.out, "550 5.1.1 <nobody@d.test> User unknown\r\n"
			       "554 5.5.1 No valid recipients\r\n");
	rec_free(&r);

	/* AUTH and STARTTLS not advertised in LMTP */
	run(&r, true, "LHLO c\r\nSTARTTLS\r\nAUTH PLAIN\r\n");
	assert_contains(r.out,
			"502 5.5.1 STARTTLS not available\r\n502 5.5.1 AUTH not available\r\n");
	rec_free(&r);
}

static void test_path_syntax(void **state)
{
	(void)state;
	struct rec r;
	run(&r, true,
	    "LHLO c\r\n"
	    "MAIL FROM:a@b.test\r\n"
	    "MAIL FROM <a@b.test>\r\n"
	    "MAIL FROM:<a@b.test>x\r\n"
	    "MAIL FROM:<a b@b.test>\r\n"
	    "MAIL FROM:<a@b_c.test>\r\n"
	    "MAIL FROM:<.a@b.test>\r\n"
	    "MAIL FROM:<a..b@b.test>\r\n"
	    "MAIL FROM:<a@-b.test>\r\n"
	    "MAIL FROM:<a>\r\n");
	assert_contains(r.out, "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n"
			       "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n"
			       "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n"
			       "501 5.1.7 Bad address syntax: bad local part syntax\r\n"
			       "501 5.1.7 Bad address syntax: bad domain syntax\r\n"
			       "501 5.1.7 Bad address syntax: bad local part syntax\r\n"
			       "501 5.1.7 Bad address syntax: bad local part syntax\r\n"
			       "501 5.1.7 Bad address syntax: bad domain syntax\r\n"
			       "501 5.1.7 Bad address syntax: missing domain\r\n");
	assert_lacks(r.ev, "MAIL");
	rec_free(&r);

	run(&r, true,
	    "LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<\"john smith\"@x.test>\r\n"
	    "RCPT TO:<\"a\\\"b>c\"@[192.0.2.7]>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<>\r\n"
	    "RCPT TO:<@relay.test,@r2.test:u@x.test>\r\n");
	assert_contains(r.ev,
			"MAIL <> size=0 body=0 utf8=0 ret=0 envid=- null=1\n"
			"RCPT <\"john smith\"@x.test> local=john smith domain=x.test "
			"notify=0 orcpt=-\n"
			"RCPT <\"a\\\"b>c\"@[192.0.2.7]> local=a\"b>c domain=[192.0.2.7] notify=0 "
			"orcpt=-\n"
			"RCPT <postmaster> local=Postmaster domain= notify=0 orcpt=-\n");
	assert_contains(r.out, "501 5.1.3 Empty recipient address\r\n");
	/* max_recipients is 3 in these tests */
	assert_contains(r.out, "452 4.5.3 Too many recipients\r\n");
	rec_free(&r);

	/* length bounds: local part 64, domain 255, path 256 */
	char local64[65], local65[66], label63[64];
	memset(local64, 'l', 64);
	local64[64] = '\0';
	memset(local65, 'l', 65);
	local65[65] = '\0';
	memset(label63, 'd', 63);
	label63[63] = '\0';
	char domain255[300];
	snprintf(domain255, sizeof(domain255), "%s.%s.%s.%.61s", label63, label63, label63,
		 label63);
	assert_int_equal(strlen(domain255), 253);
	char buf[2048];
	const char *error;
	snprintf(buf, sizeof(buf), "%s@x.test", local64);
	assert_int_equal(smtp_mailbox_check(buf, strlen(buf), false, &error), 0);
	snprintf(buf, sizeof(buf), "%s@x.test", local65);
	assert_int_equal(smtp_mailbox_check(buf, strlen(buf), false, &error), -1);
	assert_string_equal(error, "local part longer than 64 bytes");
	/* the domain bound (255) shows in LHLO; in a path the path bound is hit first */
	snprintf(buf, sizeof(buf), "LHLO %s.a\r\nLHLO %s.ab\r\n", domain255, domain255);
	rec_init(&r, true);
	struct smtp_server_settings wide = {.protocol = SMTP_PROTOCOL_LMTP, .max_line = 1000};
	smtp_server_set_settings(r.srv, &wide);
	feed_raw(&r, buf, strlen(buf), 0);
	assert_contains(r.ev, "HELLO 2 ddd");
	assert_contains(r.out, "501 5.5.4 Invalid domain name: domain longer than 255 bytes\r\n");
	rec_free(&r);
	snprintf(buf, sizeof(buf), "a@%s", domain255);
	assert_int_equal(smtp_mailbox_check(buf, strlen(buf), false, &error), -1);
	assert_string_equal(error, "path longer than 256 bytes");
	snprintf(buf, sizeof(buf), "a@%sd.x", label63);
	assert_int_equal(smtp_mailbox_check(buf, strlen(buf), false, &error), -1);
	assert_string_equal(error, "domain label longer than 63 bytes");
	/* a path of 257 bytes with brackets: 64 + 1 + 190 = 255 inside */
	snprintf(buf, sizeof(buf), "%s@%.63s.%.63s.%.61s", local64, label63, label63, label63);
	assert_int_equal(strlen(buf), 254);
	assert_int_equal(smtp_mailbox_check(buf, strlen(buf), false, &error), 0);
	strcat(buf, "e");
	assert_int_equal(smtp_mailbox_check(buf, strlen(buf), false, &error), -1);
	assert_string_equal(error, "path longer than 256 bytes");

	static const char *const good[] = {
	    "a@b",	   "a.b.c@x-y.test",   "!#$%&'*+-/=?^_`{|}~@x.test",
	    "\"\"@x.test", "\"a\\ b\"@x.test", "a@[IPv6:::1]",
	    "a@[tag:xyz]", "a@[10.0.0.1]",     "a@x1.test",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (smtp_mailbox_check(good[i], strlen(good[i]), false, &error) != 0)
			fail_msg("'%s' refused: %s", good[i], error);
	static const char *const bad[] = {
	    "",		 "@x.test",	  "a@",		 "a.@x.test",
	    "a@x..test", "a@x.test.",	  "\"a@x.test",	 "a\"b\"@x.test",
	    "a@[1.2.3]", "a@[IPv6:zz]",	  "a@[tag:]",	 "a@[10.0.0.1",
	    "a@x-.test", "a(b)@x.test",	  "a@x test",	 "\"a\x01\"@x.test",
	    "a@@x.test", "a@[999.0.0.1]", "a@[tag:a b]", "a@[-tag:x]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (smtp_mailbox_check(bad[i], strlen(bad[i]), false, &error) == 0)
			fail_msg("'%s' accepted", bad[i]);
}

static void test_utf8(void **state)
{
	(void)state;
	struct rec r;
	run(&r, true,
	    "LHLO c\r\n"
	    "MAIL FROM:<j\xc3\xb6rg@b.test>\r\n"
	    "MAIL FROM:<j\xc3\xb6rg@b.test> SMTPUTF8 BODY=8BITMIME\r\n"
	    "RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test>\r\n"
	    "RCPT TO:<bad\xc3@x.test>\r\n"
	    "RCPT TO:<overlong\xc0\xaf@x.test>\r\n"
	    "RSET\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<\xc3\xa9@x.test>\r\n");
	assert_contains(r.out, "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n250 2.1.0 Ok\r\n"
			       "250 2.1.5 Ok\r\n501 5.1.3 Bad address syntax: bad local part "
			       "syntax\r\n501 5.1.3 Bad address syntax: bad local part syntax\r\n");
	assert_contains(r.ev, "MAIL <j\xc3\xb6rg@b.test> size=0 body=2 utf8=1");
	/* without SMTPUTF8 in this transaction's MAIL */
	assert_contains(r.out, "250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n553 5.6.7 Non-ASCII address "
			       "requires SMTPUTF8\r\n");
	rec_free(&r);
}

static void test_parameters(void **state)
{
	(void)state;
	struct rec r;
	run(&r, true,
	    "LHLO c\r\n"
	    "MAIL FROM:<a@b.test> SIZE=1001\r\n"
	    "MAIL FROM:<a@b.test> SIZE=abc\r\n"
	    "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n"
	    "MAIL FROM:<a@b.test> FOO=bar\r\n"
	    "MAIL FROM:<a@b.test> SIZE=1 SIZE=2\r\n"
	    "MAIL FROM:<a@b.test> SIZE=\r\n"
	    "MAIL FROM:<a@b.test> ENVID=a+2Bb RET=HDRS SIZE=1000 BODY=7BIT\r\n"
	    "RCPT TO:<c@d.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c+40d.test\r\n"
	    "RCPT TO:<c@d.test> NOTIFY=NEVER,SUCCESS\r\n"
	    "RCPT TO:<c@d.test> NOTIFY=SOMETIMES\r\n"
	    "RCPT TO:<c@d.test> ORCPT=nosemicolon\r\n"
	    "RCPT TO:<c@d.test> XYZ\r\n"
	    "RSET\r\nMAIL FROM:<a@b.test> ENVID=a+zz\r\n");
	assert_contains(r.out, "552 5.3.4 Message size exceeds fixed limit of 1000 bytes\r\n"
			       "501 5.5.4 Bad SIZE parameter\r\n"
			       "501 5.5.4 Unsupported BODY type\r\n"
			       "555 5.5.4 Unsupported parameter FOO\r\n"
			       "501 5.5.4 Bad MAIL parameters\r\n"
			       "501 5.5.4 Bad MAIL parameters\r\n"
			       "250 2.1.0 Ok\r\n"
			       "250 2.1.5 Ok\r\n"
			       "501 5.5.4 Bad NOTIFY parameter\r\n"
			       "501 5.5.4 Bad NOTIFY parameter\r\n"
			       "501 5.5.4 Bad ORCPT parameter\r\n"
			       "555 5.5.4 Unsupported parameter XYZ\r\n"
			       "250 2.0.0 Ok\r\n"
			       "501 5.5.4 Bad ENVID parameter\r\n");
	assert_contains(r.ev,
			"MAIL <a@b.test> size=1000 body=1 utf8=0 ret=2 envid=a+2Bb null=0\n"
			"RCPT <c@d.test> local=c domain=d.test notify=6 orcpt=rfc822;c+40d.test\n");
	rec_free(&r);

	/* parameters of extensions that are not advertised are unknown */
	run(&r, false,
	    "EHLO c\r\nMAIL FROM:<a@b.test> SMTPUTF8\r\nMAIL FROM:<a@b.test> RET=FULL\r\n"
	    "MAIL FROM:<a@b.test> SIZE=5\r\nRCPT TO:<c@d.test> NOTIFY=NEVER\r\n"
	    "BDAT 1 LAST\r\n");
	assert_contains(r.out, "555 5.5.4 Unsupported parameter SMTPUTF8\r\n"
			       "555 5.5.4 Unsupported parameter RET\r\n"
			       "250 2.1.0 Ok\r\n"
			       "555 5.5.4 Unsupported parameter NOTIFY\r\n"
			       "502 5.5.1 BDAT not available\r\n");
	rec_free(&r);
}

static const char transaction[] = "LHLO c.test\r\n"
				  "MAIL FROM:<s@x.test>\r\n"
				  "RCPT TO:<a@y.test>\r\n"
				  "RCPT TO:<nobody@y.test>\r\n"
				  "RCPT TO:<b@y.test>\r\n"
				  "DATA\r\n";

static void test_data_basic(void **state)
{
	(void)state;
	struct rec r;
	char in[1024];
	snprintf(in, sizeof(in),
		 "%sSubject: t\r\n\r\nline 1\r\n..dots\r\n.x\r\n...\r\n\r\n.\r\nQUIT\r\n",
		 transaction);
	run(&r, true, in);
	assert_contains(r.ev, "DATA_BEGIN 0\nDATA_END size=38 error=0 chunked=0 body=["
			      "Subject: t\r\n\r\nline 1\r\n.dots\r\nx\r\n..\r\n\r\n]\n");
	/* one reply per accepted recipient after the final dot */
	assert_contains(r.out, "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
			       "250 2.0.0 <rcpt> Ok\r\n250 2.0.0 <rcpt> Ok\r\n221 2.0.0");
	rec_free(&r);

	/* an empty message */
	snprintf(in, sizeof(in), "%s.\r\nNOOP\r\n", transaction);
	run(&r, true, in);
	assert_contains(r.ev, "DATA_END size=0 error=0 chunked=0 body=[]\n");
	assert_contains(r.out, "250 2.0.0 <rcpt> Ok\r\n250 2.0.0 <rcpt> Ok\r\n250 2.0.0 Ok\r\n");
	rec_free(&r);
}

static void test_smuggling(void **state)
{
	(void)state;
	/* none of these ends DATA; the text after them stays in the message */
	static const char *const tricks[] = {"\n.\n",	"\r.\r", "\n.\r\n", "\r\n.\n",
					     "\r\n.\r", "\n.\r", "\r.\n",   "\r\n.\rX"};
	for (size_t t = 0; t < sizeof(tricks) / sizeof(tricks[0]); t++) {
		struct rec r;
		char in[1024];
		snprintf(in, sizeof(in),
			 "%sbody%sMAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\n"
			 "smuggled\r\n.\r\nNOOP\r\n",
			 transaction, tricks[t]);
		run(&r, true, in);
		const char *end = strstr(r.ev, "DATA_END");
		assert_non_null(end);
		/* exactly one message, which holds the smuggled commands */
		assert_null(strstr(end + 1, "DATA_END"));
		assert_contains(end, "MAIL FROM:<evil@x.test>\r\n");
		assert_lacks(r.ev, "MAIL <evil@x.test>");
		assert_contains(r.out, "\r\n250 2.0.0 Ok\r\n");
		/* normalised: every line end in the body is CRLF */
		const char *body = strstr(end, "body=[") + 6;
		for (const char *p = body; *p != '\0' && *p != ']'; p++) {
			if (*p == '\r')
				assert_int_equal(p[1], '\n');
			if (*p == '\n')
				assert_int_equal(p[-1], '\r');
		}
		rec_free(&r);
	}
	/* the exact stored forms */
	struct rec r;
	char in[1024];
	snprintf(in, sizeof(in), "%sa\nb\rc\r\r\nd\n.\ne\r\n.\nf\r\n..\r\n.\r\n", transaction);
	run(&r, true, in);
	assert_contains(r.ev, "body=[a\r\nb\r\nc\r\n\r\nd\r\n.\r\ne\r\n.\r\nf\r\n.\r\n]");
	rec_free(&r);
}

static void test_body_bounds(void **state)
{
	(void)state;
	struct rec r;
	char in[8192];
	/* max_message_line is 50: 50 is fine, 51 fails the message */
	char l50[51], l51[52];
	memset(l50, 'x', 50);
	l50[50] = '\0';
	memset(l51, 'y', 51);
	l51[51] = '\0';
	snprintf(in, sizeof(in),
		 "%s%s\r\n.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"
		 "ok\r\n%s\r\nmore\r\n.\r\nNOOP\r\n",
		 transaction, l50, l51);
	run(&r, true, in);
	assert_contains(r.ev, "DATA_END size=52 error=0");
	assert_contains(r.ev, "DATA_END size=54 error=2");
	assert_contains(r.out, "500 5.5.2 <rcpt> Message line longer than 50 bytes\r\n"
			       "250 2.0.0 Ok\r\n");
	rec_free(&r);

	/* max_message_size is 1000: the rest is consumed, the session goes on */
	size_t n = (size_t)snprintf(in, sizeof(in), "%s", transaction);
	for (int i = 0; i < 30; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "%040d\r\n", i);
	snprintf(in + n, sizeof(in) - n, ".\r\nNOOP\r\n");
	run(&r, true, in);
	assert_contains(r.ev, "DATA_END size=1000 error=1");
	assert_contains(r.out, "552 5.3.4 <rcpt> Message size exceeds fixed limit of 1000 bytes\r\n"
			       "552 5.3.4 <rcpt> Message size exceeds fixed limit of 1000 bytes\r\n"
			       "250 2.0.0 Ok\r\n");
	rec_free(&r);
}

static void test_bdat(void **state)
{
	(void)state;
	struct rec r;
	char in[1024];
	/* "\r\n.\r\n" inside a chunk is data; counts are exact */
	snprintf(in, sizeof(in),
		 "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
		 "BDAT 9\r\nab\r\n.\r\ncdBDAT 0\r\nBDAT 3 LAST\r\nx\nyNOOP\r\n");
	run(&r, true, in);
	assert_contains(r.ev, "DATA_BEGIN 1\nDATA_END size=13 error=0 chunked=1 "
			      "body=[ab\r\n.\r\ncdx\r\ny]\n");
	assert_contains(r.out, "250 2.0.0 9 octets received\r\n250 2.0.0 9 octets received\r\n"
			       "250 2.0.0 <rcpt> Ok\r\n250 2.0.0 Ok\r\n");
	rec_free(&r);

	/* without recipients the chunk is read and dropped */
	run(&r, true,
	    "LHLO c\r\nBDAT 6\r\nQUIT\r\nMAIL FROM:<a@b.test>\r\nBDAT 4 LAST\r\n"
	    "RSETBDAT x\r\nBDAT 1 2\r\nBDAT 0 LAST\r\nRCPT TO:<c@d.test>\r\n"
	    "DATA\r\nBDAT 0 LAST\r\nNOOP\r\n");
	assert_contains(r.out, "503 5.5.1 Need MAIL and RCPT before BDAT\r\n"
			       "250 2.1.0 Ok\r\n"
			       "503 5.5.1 No valid recipients\r\n"
			       "501 5.5.4 Syntax: BDAT size [LAST]\r\n"
			       "501 5.5.4 Syntax: BDAT size [LAST]\r\n"
			       "503 5.5.1 No valid recipients\r\n"
			       "250 2.1.5 Ok\r\n"
			       "354 ");
	assert_lacks(r.out, "221");
	rec_free(&r);

	/* DATA after BDAT is refused; a chunk over the size bound fails,
	 * later chunks get the same answer; RSET ends it */
	char big[1100];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = i % 42 == 40 ? '\r' : i % 42 == 41 ? '\n' : 'z';
	snprintf(in, sizeof(in),
		 "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 2\r\n"
		 "abDATA\r\nBDAT 1100\r\n");
	rec_init(&r, true);
	feed_raw(&r, in, strlen(in), 0);
	feed_raw(&r, big, sizeof(big), 0);
	feed_raw(&r, "BDAT 1\r\nzBDAT 1 LAST\r\nzRSET\r\nNOOP\r\n", 36, 0);
	assert_contains(r.out, "250 2.0.0 2 octets received\r\n"
			       "503 5.5.1 DATA cannot follow BDAT\r\n"
			       "552 5.3.4 Message size exceeds fixed limit of 1000 bytes\r\n"
			       "552 5.3.4 Message size exceeds fixed limit of 1000 bytes\r\n"
			       "552 5.3.4 <rcpt> Message size exceeds fixed limit of 1000 bytes\r\n"
			       "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n");
	assert_contains(r.ev, "error=1 chunked=1");
	rec_free(&r);
}

static void test_command_bounds(void **state)
{
	(void)state;
	struct rec r;
	char in[1024];
	char long_line[200];
	memset(long_line, 'N', sizeof(long_line));
	/* max_line is 100 */
	int n =
	    snprintf(in, sizeof(in), "LHLO c\r\nNOOP %.95s\r\nNOOP %.96s\r\nNOOP %.190s\nNOOP\r\n",
		     long_line, long_line, long_line);
	rec_init(&r, true);
	feed_raw(&r, in, (size_t)n, 0);
	assert_contains(r.out,
			"250 DSN\r\n250 2.0.0 Ok\r\n500 5.5.2 Line too long (max 100 bytes)\r\n"
			"500 5.5.2 Line too long (max 100 bytes)\r\n250 2.0.0 Ok\r\n");
	rec_free(&r);
	/* the same fed in small chunks */
	rec_init(&r, true);
	feed_raw(&r, in, (size_t)n, 3);
	assert_contains(r.out,
			"250 DSN\r\n250 2.0.0 Ok\r\n500 5.5.2 Line too long (max 100 bytes)\r\n"
			"500 5.5.2 Line too long (max 100 bytes)\r\n250 2.0.0 Ok\r\n");
	smtp_server_line_too_long(r.srv);
	assert_contains(r.out, "250 2.0.0 Ok\r\n500 5.5.2 Line too long (max 100 bytes)\r\n");
	assert_int_equal(smtp_server_line(r.srv, long_line, 101), 0);
	assert_int_equal(smtp_server_line(r.srv, "NO\0OP", 5), 0);
	assert_contains(r.out, "500 5.5.2 NUL bytes are not allowed\r\n");
	rec_free(&r);

	/* garbage: after max_bad_commands errors the session ends with 421 */
	rec_init(&r, true);
	for (int i = 0; i < 12; i++)
		feed_raw(&r, "\x01\x02garbage\xff\r\n", 13, 0);
	assert_contains(r.out, "421 4.7.0 mx.test Too many errors, closing connection\r\n");
	assert_true(r.quit);
	assert_true(smtp_server_finished(r.srv));
	rec_free(&r);
}

static void test_pipelining_and_async(void **state)
{
	(void)state;
	struct rec r;
	/* one packet: recipients decided later, the body, and commands after the end */
	const char *in =
	    "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<later1@d.test>\r\n"
	    "RCPT TO:<b@d.test>\r\nRCPT TO:<later2@d.test>\r\nDATA\r\nhello\r\n.\r\n"
	    "MAIL FROM:<x@b.test>\r\nRCPT TO:<later3@d.test>\r\nDATA\r\nsecond\r\n.\r\n"
	    "QUIT\r\n";
	rec_init(&r, true);
	assert_int_equal(smtp_server_input(r.srv, in, strlen(in)), 0);
	/* paused on the first recipient; input is kept */
	assert_true(smtp_server_paused(r.srv));
	assert_true(smtp_server_wants_raw(r.srv));
	rec_settle(&r);
	assert_false(smtp_server_paused(r.srv));
	assert_true(r.quit);
	assert_string_equal(r.out,
			    "250-mx.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
			    "250-8BITMIME\r\n250-SIZE 1000\r\n250-CHUNKING\r\n"
			    "250-SMTPUTF8\r\n250 DSN\r\n"
			    "250 2.1.0 Ok\r\n250 2.1.5 later ok\r\n250 2.1.5 Ok\r\n"
			    "250 2.1.5 later ok\r\n354 Start mail input; end with "
			    "<CRLF>.<CRLF>\r\n250 2.0.0 <rcpt> Ok\r\n250 2.0.0 <rcpt> Ok\r\n"
			    "250 2.0.0 <rcpt> Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 later ok\r\n"
			    "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
			    "250 2.0.0 <rcpt> Ok\r\n221 2.0.0 mx.test Closing connection\r\n");
	rec_free(&r);

	/* bytes fed while paused are kept, up to the bound */
	rec_init(&r, true);
	in = "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<later@d.test>\r\n";
	assert_int_equal(smtp_server_input(r.srv, in, strlen(in)), 0);
	assert_true(smtp_server_paused(r.srv));
	assert_int_equal(smtp_server_line(r.srv, "NOOP", 4), 0);
	char *big = calloc(1, SMTP_SERVER_MAX_PENDING);
	assert_non_null(big);
	assert_int_equal(smtp_server_input(r.srv, big, SMTP_SERVER_MAX_PENDING), -1);
	free(big);
	rec_settle(&r);
	assert_contains(r.out, "250 2.1.5 later ok\r\n250 2.0.0 Ok\r\n");
	rec_free(&r);
}

static void test_starttls_and_auth(void **state)
{
	(void)state;
	struct rec r;
	/* pipelined commands after STARTTLS are dropped (RFC 3207 4.2) */
	run(&r, false, "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@b.test>\r\n");
	assert_true(r.starttls_seen);
	assert_contains(r.out, "220 2.0.0 Ready to start TLS\r\n");
	assert_lacks(r.out, "2.1.0");
	assert_false(smtp_server_wants_raw(r.srv));
	const char *in = "MAIL FROM:<a@b.test>\r\nEHLO c\r\nSTARTTLS x\r\nAUTH PLAIN\r\nbad\r\n"
			 "AUTH PLAIN\r\ngood\r\nAUTH PLAIN\r\nAUTH PLAIN AAAA\r\n";
	feed_raw(&r, in, strlen(in), 0);
	assert_contains(r.out, "503 5.5.1 Send HELO or EHLO first\r\n");
	assert_contains(r.out, "501 5.5.4 STARTTLS takes no arguments\r\n334  \r\n"
			       "535 5.7.8 Authentication credentials invalid\r\n334  \r\n"
			       "235 2.7.0 Authentication successful\r\n"
			       "503 5.5.1 Already authenticated\r\n"
			       "503 5.5.1 Already authenticated\r\n");
	assert_contains(r.ev, "AUTHLINE bad\nAUTH PLAIN -\nAUTHLINE good\n");
	rec_free(&r);

	run(&r, false, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nSTARTTLS\r\nAUTH PLAIN AAAA\r\n");
	assert_contains(r.out, "503 5.5.1 Not allowed during a mail transaction\r\n"
			       "503 5.5.1 Not allowed during a mail transaction\r\n");
	rec_free(&r);
}

static void test_reset_events(void **state)
{
	(void)state;
	struct rec r;
	run(&r, true,
	    "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRSET\r\nMAIL FROM:<a@b.test>\r\n"
	    "LHLO again\r\nRSET\r\nMAIL FROM:<a@b.test>\r\nQUIT\r\n");
	assert_string_equal(r.ev, "HELLO 2 c\n"
				  "MAIL <a@b.test> size=0 body=0 utf8=0 ret=0 envid=- null=0\n"
				  "RESET\n"
				  "MAIL <a@b.test> size=0 body=0 utf8=0 ret=0 envid=- null=0\n"
				  "RESET\nHELLO 2 again\n"
				  "MAIL <a@b.test> size=0 body=0 utf8=0 ret=0 envid=- null=0\n"
				  "RESET\nQUIT\n");
	rec_free(&r);
}

/* A session covering every path, fed whole, byte by byte, in odd chunks,
 * and as the service feeds it (lines, then raw during bodies): same
 * replies, same events. */
static void test_trickle(void **state)
{
	(void)state;
	static const char session[] =
	    "LHLO c.test\r\n"
	    "MAIL FROM:<s@x.test> SIZE=100 BODY=8BITMIME\r\n"
	    "RCPT TO:<a@y.test> NOTIFY=NEVER\r\n"
	    "RCPT TO:<later@y.test>\r\n"
	    "RCPT TO:<nobody@y.test>\r\n"
	    "DATA\r\n"
	    "Subject: x\r\n\r\n..stuffed\r\nbare\nlf\rcr\r\n.\n\r\n.\r\r\n.\r\n"
	    "MAIL FROM:<> \r\nRCPT TO:<postmaster>\r\nBDAT 7\r\n1\r\n.\r\n2BDAT 2 LAST\r\n\r\n"
	    "NOOP\r\nBOGUS\r\n"
	    "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"
	    "01234567890123456789012345678901234567890123456789012\r\n.\r\n"
	    "VRFY x\r\nRSET\r\nQUIT\r\nNOOP\r\n";
	size_t len = sizeof(session) - 1;
	struct rec whole;
	rec_init(&whole, true);
	feed_raw(&whole, session, len, 0);
	assert_true(whole.quit);
	assert_contains(whole.ev, "body=[Subject: x\r\n\r\n.stuffed\r\nbare\r\nlf\r\ncr\r\n"
				  ".\r\n\r\n.\r\n\r\n]");
	assert_contains(whole.ev, "body=[1\r\n.\r\n2\r\n]");
	assert_contains(whole.ev, "error=2");
	static const size_t chunks[] = {1, 2, 3, 5, 7, 64};
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		for (int mode = 0; mode < 2; mode++) {
			struct rec r;
			rec_init(&r, true);
			if (mode == 0)
				feed_raw(&r, session, len, chunks[c]);
			else
				feed_conn(&r, session, len, chunks[c]);
			if (strcmp(r.out, whole.out) != 0 || strcmp(r.ev, whole.ev) != 0) {
				FILE *f = fopen("trickle-fail.txt", "w");
				if (f != NULL) {
					fprintf(f, "%s\n---\n%s\n===\n%s\n---\n%s", r.out,
						whole.out, r.ev, whole.ev);
					fclose(f);
				}
				fail_msg(
				    "chunk %zu mode %d differs:\n%s\n---\n%s\n===\n%s\n---\n%s",
				    chunks[c], mode, r.out, whole.out, r.ev, whole.ev);
			}
			rec_free(&r);
		}
	}
	rec_free(&whole);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_greeting_and_lhlo),
	    cmocka_unit_test(test_simple_commands),
	    cmocka_unit_test(test_sequence_errors),
	    cmocka_unit_test(test_path_syntax),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_parameters),
	    cmocka_unit_test(test_data_basic),
	    cmocka_unit_test(test_smuggling),
	    cmocka_unit_test(test_body_bounds),
	    cmocka_unit_test(test_bdat),
	    cmocka_unit_test(test_command_bounds),
	    cmocka_unit_test(test_pipelining_and_async),
	    cmocka_unit_test(test_starttls_and_auth),
	    cmocka_unit_test(test_reset_events),
	    cmocka_unit_test(test_trickle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
