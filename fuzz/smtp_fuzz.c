/* libFuzzer target for the SMTP/LMTP server engine (src/proto/smtp).
 *
 * Input: the first byte chooses the protocol (bit 0: LMTP), whether
 * STARTTLS is accepted (bit 1) and the split seed; the rest is what a client sends. The session is
 * run three times: fed whole, fed in pseudo-random chunks, and fed as the lmtp service feeds it
 * (complete lines while the engine wants lines, raw bytes otherwise). Every run must give the same
 * replies and events. Invariants checked on the way: reply lines are well-formed and bounded,
 * bodies hold only CRLF line ends, no body line or body exceeds its bound, a paused engine is
 * always resumed by its completion. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/smtp_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX_LINE	    128
#define FZ_MAX_MESSAGE_LINE 80
#define FZ_MAX_MESSAGE	    2000

struct fz {
	struct smtp_server *srv;
	unsigned char *log;
	size_t len, cap;
	size_t body_line; /* bytes since the last CRLF in the body */
	uint64_t body;	  /* body bytes this message */
	bool cr;	  /* the last body byte was CR */
	unsigned nrcpt;
	bool pending;
	bool lmtp;
	bool tls_ok;   /* accept STARTTLS */
	bool tls_done; /* STARTTLS was accepted */
};

static void check(int cond)
{
	if (!cond)
		abort();
}

static void fz_add(struct fz *f, const void *p, size_t n)
{
	if (f->len + n > f->cap) {
		f->cap = (f->len + n) * 2 + 256;
		f->log = realloc(f->log, f->cap);
		check(f->log != NULL);
	}
	memcpy(f->log + f->len, p, n);
	f->len += n;
}

static void fz_addf(struct fz *f, const char *s)
{
	fz_add(f, s, strlen(s));
}

static void cb_write(void *ctx, const void *data, size_t len)
{
	const unsigned char *p = data;
	/* one or more lines: "NNN" then ' ' or '-', CRLF at the end, no
	 * bare CR or LF, at most 512 bytes each */
	check(len >= 6 && p[len - 2] == '\r' && p[len - 1] == '\n');
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n') {
			check(i > start && p[i - 1] == '\r');
			check(i + 1 - start <= SMTP_MAX_REPLY_LINE + 2);
			check(p[start] >= '2' && p[start] <= '5');
			check(p[start + 3] == ' ' || p[start + 3] == '-');
			start = i + 1;
		} else if (p[i] == '\r') {
			check(i + 1 < len && p[i + 1] == '\n');
		}
	}
	fz_add(ctx, "W:", 2);
	fz_add(ctx, data, len);
}

static int cb_hello(void *ctx, enum smtp_hello_kind kind, const char *domain)
{
	(void)kind;
	fz_addf(ctx, "HELLO ");
	fz_addf(ctx, domain);
	fz_addf(ctx, "\n");
	return 1;
}

static int cb_mail(void *ctx, const struct smtp_mail *m)
{
	struct fz *f = ctx;
	check(strlen(m->path.address) + 2 <= SMTP_MAX_PATH);
	check(m->size <= FZ_MAX_MESSAGE);
	fz_addf(f, "MAIL ");
	fz_addf(f, m->path.address);
	fz_addf(f, "\n");
	f->nrcpt = 0;
	return 1;
}

static int cb_rcpt(void *ctx, const struct smtp_rcpt *r)
{
	struct fz *f = ctx;
	const char *error;
	if (r->path.domain[0] != '\0')
		check(smtp_mailbox_check(r->path.address, strlen(r->path.address), r->path.utf8,
					 &error) == 0);
	fz_addf(f, "RCPT ");
	fz_addf(f, r->path.address);
	fz_addf(f, "\n");
	/* every other recipient is decided later, as authd would */
	if (r->path.address[0] == 'p') {
		smtp_server_reply(f->srv, 550, "5.1.1", "refused");
		return -1;
	}
	if (strlen(r->path.address) % 2 == 1) {
		f->pending = true;
		return 0;
	}
	f->nrcpt++;
	return 1;
}

static int cb_data_begin(void *ctx, bool chunked)
{
	struct fz *f = ctx;
	fz_addf(f, chunked ? "BDAT-BEGIN\n" : "DATA-BEGIN\n");
	f->body = 0;
	f->body_line = 0;
	f->cr = false;
	return 1;
}

static void cb_data(void *ctx, const void *data, size_t len)
{
	struct fz *f = ctx;
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		/* CR only before LF, LF only after CR */
		if (f->cr)
			check(p[i] == '\n');
		else
			check(p[i] != '\n');
		f->cr = p[i] == '\r';
		if (p[i] == '\n')
			f->body_line = 0;
		else if (p[i] != '\r')
			check(++f->body_line <= FZ_MAX_MESSAGE_LINE);
	}
	f->body += len;
	check(f->body <= FZ_MAX_MESSAGE);
	/* no marker: chunking must not show in the transcript */
	fz_add(f, data, len);
}

static int cb_data_end(void *ctx, const struct smtp_data_result *r)
{
	struct fz *f = ctx;
	check(r->size == f->body);
	check(r->error != SMTP_DATA_OK || !f->cr);
	char text[64];
	snprintf(text, sizeof(text), "END %llu %d\n", (unsigned long long)r->size, (int)r->error);
	fz_addf(f, text);
	unsigned n = f->lmtp ? f->nrcpt : 1;
	for (unsigned i = 0; i < n; i++)
		smtp_server_reply_data_error(f->srv, r->error, f->lmtp ? "r@x" : NULL);
	f->nrcpt = 0;
	return 1;
}

static void cb_reset(void *ctx)
{
	struct fz *f = ctx;
	fz_addf(f, "RESET\n");
	f->nrcpt = 0;
}

static int cb_starttls(void *ctx)
{
	struct fz *f = ctx;
	fz_addf(f, "STARTTLS\n");
	/* an accepted STARTTLS drops the rest of the input call, so how the
	 * input was split shows; such runs are not compared */
	if (!f->tls_ok) {
		smtp_server_reply(f->srv, 454, "4.7.0", "no");
		return -1;
	}
	f->tls_done = true;
	return 1;
}

static int cb_auth(void *ctx, const char *mech, const char *initial)
{
	struct fz *f = ctx;
	fz_addf(f, "AUTH\n");
	if (initial == NULL) {
		smtp_server_reply(f->srv, 334, NULL, "go");
		smtp_server_auth_lines(f->srv, true);
		return 0;
	}
	return strcmp(mech, "PLAIN") == 0 ? 1 : -1;
}

static void cb_auth_line(void *ctx, const char *line)
{
	struct fz *f = ctx;
	fz_addf(f, "AUTHLINE\n");
	smtp_server_auth_lines(f->srv, false);
	smtp_server_complete(f->srv, line[0] == 'y' ? 1 : -1);
}

static void cb_quit(void *ctx)
{
	fz_addf(ctx, "QUIT\n");
}

static const struct smtp_server_callbacks fz_callbacks = {
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

static void fz_settle(struct fz *f)
{
	while (f->pending && smtp_server_paused(f->srv)) {
		f->pending = false;
		f->nrcpt++;
		smtp_server_reply(f->srv, 250, "2.1.5", "later");
		smtp_server_complete(f->srv, 1);
	}
	check(!smtp_server_paused(f->srv));
}

static void fz_init(struct fz *f, bool lmtp, bool tls_ok)
{
	memset(f, 0, sizeof(*f));
	f->lmtp = lmtp;
	f->tls_ok = tls_ok;
	struct smtp_server_settings set = {
	    .protocol = lmtp ? SMTP_PROTOCOL_LMTP : SMTP_PROTOCOL_SMTP,
	    .hostname = "fuzz.test",
	    .max_line = FZ_MAX_LINE,
	    .max_message_line = FZ_MAX_MESSAGE_LINE,
	    .max_message_size = FZ_MAX_MESSAGE,
	    .max_recipients = 5,
	    .max_bad_commands = 50,
	};
	f->srv = smtp_server_new(&set, &fz_callbacks, f);
	static const char *const lmtp_ext[] = {"PIPELINING", "ENHANCEDSTATUSCODES",
					       "8BITMIME",   "SIZE 2000",
					       "CHUNKING",   "SMTPUTF8",
					       "DSN",	     NULL};
	static const char *const smtp_ext[] = {"PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN",
					       "SIZE 2000",  "CHUNKING", "8BITMIME",
					       "SMTPUTF8",   "DSN",	 NULL};
	smtp_server_set_extensions(f->srv, lmtp ? lmtp_ext : smtp_ext);
}

static void fz_run_chunks(struct fz *f, const uint8_t *data, size_t size, unsigned seed)
{
	size_t i = 0;
	while (i < size) {
		size_t n = seed == 0 ? size - i : 1 + (seed % 13);
		seed = seed * 1103515245u + 12345u;
		if (n > size - i)
			n = size - i;
		check(smtp_server_input(f->srv, data + i, n) == 0);
		fz_settle(f);
		i += n;
	}
}

static void fz_run_lines(struct fz *f, const uint8_t *data, size_t size)
{
	char line[FZ_MAX_LINE + 1];
	size_t len = 0;
	bool too_long = false;
	for (size_t i = 0; i < size; i++) {
		fz_settle(f);
		if (smtp_server_wants_raw(f->srv)) {
			check(len == 0 && !too_long);
			check(smtp_server_input(f->srv, data + i, 1) == 0);
			continue;
		}
		/* a line reader as conn's: CRLF or LF ends, bounded */
		if (data[i] != '\n') {
			if (too_long)
				continue;
			if (len == FZ_MAX_LINE + 1) {
				too_long = true;
				len = 0;
				smtp_server_line_too_long(f->srv);
				continue;
			}
			line[len++] = (char)data[i];
			continue;
		}
		if (too_long) {
			too_long = false;
			continue;
		}
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len > FZ_MAX_LINE)
			smtp_server_line_too_long(f->srv);
		else
			check(smtp_server_line(f->srv, line, len) == 0);
		len = 0;
	}
	fz_settle(f);
}

static bool fz_same(const struct fz *a, const struct fz *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->log, b->log, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 16384)
		return 0;
	bool lmtp = (data[0] & 1) != 0;
	bool tls_ok = (data[0] & 2) != 0;
	unsigned seed = data[0] >> 2;
	data++;
	size--;

	struct fz whole, split, lines;
	fz_init(&whole, lmtp, tls_ok);
	fz_run_chunks(&whole, data, size, 0);
	fz_init(&split, lmtp, tls_ok);
	fz_run_chunks(&split, data, size, seed + 1);
#ifdef FZ_DEBUG
	fprintf(stderr, "WHOLE:\n%.*s\nSPLIT:\n%.*s\n", (int)whole.len, whole.log, (int)split.len,
		split.log);
#endif
	if (!whole.tls_done && !split.tls_done)
		check(fz_same(&whole, &split));

	/* the line feeder cannot reproduce an over-long line split across a
	 * body boundary exactly as the raw reader does; compare only when the
	 * input has no over-long line */
	fz_init(&lines, lmtp, tls_ok);
	fz_run_lines(&lines, data, size);
	bool long_line = false;
	size_t run = 0;
	for (size_t i = 0; i < size; i++) {
		run = data[i] == '\n' ? 0 : run + 1;
		if (run > FZ_MAX_LINE)
			long_line = true;
	}
#ifdef FZ_DEBUG
	fprintf(stderr, "WHOLE:\n%.*s\nLINES:\n%.*s\n", (int)whole.len, whole.log, (int)lines.len,
		lines.log);
#endif
	if (!long_line && !whole.tls_done && !lines.tls_done)
		check(fz_same(&whole, &lines));

	smtp_server_free(&whole.srv);
	smtp_server_free(&split.srv);
	smtp_server_free(&lines.srv);
	free(whole.log);
	free(split.log);
	free(lines.log);
	return 0;
}
