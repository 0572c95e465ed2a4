#include "proto/smtp/smtp_server.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/metrics.h"
#include "lib/xalloc.h"

/* session states, as bits so that a command lists where it is allowed */
enum srv_state {
	ST_INIT = 1 << 0,  /* before HELO/EHLO/LHLO */
	ST_READY = 1 << 1, /* greeted, no transaction */
	ST_MAIL = 1 << 2,  /* MAIL accepted, no recipient yet */
	ST_RCPT = 1 << 3,  /* at least one recipient */
	ST_BDAT = 1 << 4,  /* between BDAT chunks */
	ST_QUIT = 1 << 5,  /* finished: input is ignored */
};
#define ST_ANY (ST_INIT | ST_READY | ST_MAIL | ST_RCPT | ST_BDAT)
#define ST_TX  (ST_MAIL | ST_RCPT | ST_BDAT)

/* what the next input bytes are */
enum srv_input {
	IN_COMMAND,
	IN_DATA,	 /* DATA body up to "\r\n.\r\n" */
	IN_BDAT,	 /* a BDAT chunk */
	IN_BDAT_DISCARD, /* a refused BDAT chunk: counted and dropped */
};

/* the callback whose decision is awaited */
enum srv_pending {
	PEND_NONE,
	PEND_HELLO,
	PEND_MAIL,
	PEND_RCPT,
	PEND_DATA_BEGIN,
	PEND_BDAT_BEGIN,
	PEND_DATA_END,
	PEND_STARTTLS,
	PEND_AUTH,
};

/* the body reader (see the header: only a wire CRLF starts a line) */
enum srv_body_state {
	B_START,  /* after a CRLF (or at the start) */
	B_MID,	  /* inside a line */
	B_CR,	  /* a CR whose meaning depends on the next byte */
	B_DOT,	  /* "." at a line start */
	B_DOT_CR, /* ".\r" at a line start */
};

/* extensions named in the EHLO keywords */
enum srv_ext {
	EXT_SIZE = 1 << 0,
	EXT_8BITMIME = 1 << 1,
	EXT_SMTPUTF8 = 1 << 2,
	EXT_DSN = 1 << 3,
	EXT_CHUNKING = 1 << 4,
	EXT_STARTTLS = 1 << 5,
	EXT_AUTH = 1 << 6,
	EXT_XSENTCOPY = 1 << 7,
};

/* command flags */
enum srv_cmd_flag {
	CMD_NO_ARGS = 1 << 0,	/* arguments are a syntax error */
	CMD_NEED_ARGS = 1 << 1, /* missing arguments are a syntax error */
	CMD_SMTP_ONLY = 1 << 2,
	CMD_LMTP_ONLY = 1 << 3,
};

#define SRV_BODY_BUF   16384
#define SRV_MAX_VERB   16
#define SRV_MAX_PARAMS 16

struct srv_path_buf {
	char address[SMTP_MAX_PATH + 1];
	char local[SMTP_MAX_PATH + 1];
	char domain[SMTP_MAX_DOMAIN + 1];
};

struct smtp_server {
	struct smtp_server_settings set;
	char *hostname;
	struct smtp_server_callbacks cb;
	void *ctx;
	char **ext;
	unsigned ext_flags;

	unsigned state;
	enum srv_input input;
	enum srv_pending pending;
	bool paused;
	unsigned replies; /* replies written so far: tells whether a callback replied */
	unsigned replies_before;
	bool auth_lines;
	bool authenticated;
	bool drop_input;  /* STARTTLS accepted: the rest of this input is dropped */
	unsigned running; /* inside srv_run: completions do not process input */
	unsigned bad_commands;

	/* the transaction */
	bool tx_utf8;
	unsigned nrcpt;

	/* decisions in flight */
	bool pend_utf8;
	enum smtp_hello_kind pend_hello;
	uint64_t pend_bdat_size;
	bool pend_bdat_last;

	/* a command line being assembled from raw input */
	char *line;
	size_t line_len, line_cap;
	bool line_discard;

	/* input kept while paused or after a body */
	unsigned char *keep;
	size_t keep_len, keep_off, keep_cap;

	/* the body */
	enum srv_body_state bst;
	uint64_t body_size;
	size_t body_line;
	enum smtp_data_error body_error;
	uint64_t bdat_left;
	bool bdat_last;
	bool bdat_replied; /* a refused chunk's reply is already written */
	const char *bdat_discard_reply;
	unsigned char out[SRV_BODY_BUF];
	size_t out_len;

	struct srv_path_buf path;

	struct metrics_timer metrics; /* the command in progress */
};

struct smtp_command {
	const char *name;
	void (*run)(struct smtp_server *srv, char *args);
	unsigned states;
	unsigned flags;
	unsigned ext; /* EXT_* that must be advertised, 0 for none */
};

static void srv_process_kept(struct smtp_server *srv);

/* A command is answered once no decision is pending and no body is read:
 * its time is observed then. */
static void srv_metrics_settle(struct smtp_server *srv)
{
	if (srv->pending == PEND_NONE && srv->input == IN_COMMAND)
		metrics_command_end(&srv->metrics);
}

/* ---- replies ---- */

static void srv_write(struct smtp_server *srv, const void *data, size_t len)
{
	if (srv->cb.write != NULL)
		srv->cb.write(srv->ctx, data, len);
}

static void srv_reply_line(struct smtp_server *srv, unsigned code, char sep, const char *enh,
			   const char *text)
{
	char buf[SMTP_MAX_REPLY_LINE + 3];
	int n;
	if (enh != NULL)
		n = snprintf(buf, SMTP_MAX_REPLY_LINE + 1, "%03u%c%s %s", code, sep, enh, text);
	else
		n = snprintf(buf, SMTP_MAX_REPLY_LINE + 1, "%03u%c%s", code, sep, text);
	size_t len = n < 0 ? 0 : (size_t)n > SMTP_MAX_REPLY_LINE ? SMTP_MAX_REPLY_LINE : (size_t)n;
	/* text from the client or the caller never breaks the reply syntax */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c < 0x20 || c == 0x7f)
			buf[i] = '?';
	}
	buf[len++] = '\r';
	buf[len++] = '\n';
	srv_write(srv, buf, len);
}

void smtp_server_vreply(struct smtp_server *srv, unsigned code, const char *enh, const char *fmt,
			va_list ap)
{
	char text[SMTP_MAX_REPLY_LINE + 1];
	vsnprintf(text, sizeof(text), fmt, ap);
	srv_reply_line(srv, code, ' ', enh, text);
	/* a SASL challenge is not the answer to AUTH */
	if (code != 334)
		srv->replies++;
}

void smtp_server_reply(struct smtp_server *srv, unsigned code, const char *enh, const char *fmt,
		       ...)
{
	va_list ap;
	va_start(ap, fmt);
	smtp_server_vreply(srv, code, enh, fmt, ap);
	va_end(ap);
}

void smtp_server_reply_lines(struct smtp_server *srv, unsigned code, const char *enh,
			     const char *const *lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		srv_reply_line(srv, code, i + 1 < n ? '-' : ' ', enh, lines[i]);
	srv->replies++;
}

void smtp_server_reply_data_error(struct smtp_server *srv, enum smtp_data_error error,
				  const char *rcpt)
{
	const char *pre = rcpt != NULL ? "<" : "", *post = rcpt != NULL ? "> " : "";
	if (rcpt == NULL)
		rcpt = "";
	switch (error) {
	case SMTP_DATA_TOO_BIG:
		smtp_server_reply(srv, 552, "5.3.4",
				  "%s%s%sMessage size exceeds fixed limit of %llu bytes", pre, rcpt,
				  post, (unsigned long long)srv->set.max_message_size);
		break;
	case SMTP_DATA_LINE_TOO_LONG:
		smtp_server_reply(srv, 500, "5.5.2", "%s%s%sMessage line longer than %zu bytes",
				  pre, rcpt, post, srv->set.max_message_line);
		break;
	case SMTP_DATA_OK:
		smtp_server_reply(srv, 250, "2.0.0", "%s%s%sOk", pre, rcpt, post);
		break;
	}
}

/* a syntax or sequence error: counted, and past the bound the session ends */
static void srv_bad(struct smtp_server *srv, unsigned code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void srv_bad(struct smtp_server *srv, unsigned code, const char *enh, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	smtp_server_vreply(srv, code, enh, fmt, ap);
	va_end(ap);
	if (++srv->bad_commands < srv->set.max_bad_commands)
		return;
	smtp_server_reply(srv, 421, "4.7.0", "%s Too many errors, closing connection",
			  srv->hostname);
	if ((srv->state & ST_TX) != 0 && srv->cb.reset != NULL)
		srv->cb.reset(srv->ctx);
	srv->state = ST_QUIT;
	if (srv->cb.quit != NULL)
		srv->cb.quit(srv->ctx);
}

/* ---- paths ---- */

static bool srv_has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/* Find the end of "<...>" at s (quotes may hold '>'); returns the index of
 * '>' or 0. */
static size_t srv_path_end(const char *s)
{
	if (s[0] != '<')
		return 0;
	bool quoted = false;
	for (size_t i = 1; s[i] != '\0'; i++) {
		if (quoted && s[i] == '\\' && s[i + 1] != '\0')
			i++;
		else if (s[i] == '"')
			quoted = !quoted;
		else if (s[i] == '>' && !quoted)
			return i;
	}
	return 0;
}

/* Split "FROM:<path> params" (prefix "FROM:" or "TO:"). Returns the path
 * inside the brackets in *inner_r and *inner_len_r and the parameters (NULL
 * when none), or -1 on a syntax error. */
static int srv_split_path(char *args, const char *prefix, char **inner_r, size_t *inner_len_r,
			  char **params_r)
{
	size_t plen = strlen(prefix);
	if (args == NULL || strncasecmp(args, prefix, plen) != 0)
		return -1;
	char *s = args + plen;
	/* "FROM: <a@b>" is common enough to accept */
	while (*s == ' ')
		s++;
	size_t end = srv_path_end(s);
	if (end == 0)
		return -1;
	*inner_r = s + 1;
	*inner_len_r = end - 1;
	s[end] = '\0';
	char *rest = s + end + 1;
	if (*rest != '\0' && *rest != ' ')
		return -1;
	while (*rest == ' ')
		rest++;
	*params_r = *rest != '\0' ? rest : NULL;
	return 0;
}

/* Check and decode a path (without brackets) into srv->path and *path_r.
 * Returns 0, or -1 after writing the error reply. */
static int srv_parse_path(struct smtp_server *srv, char *inner, size_t len, bool is_rcpt, bool utf8,
			  struct smtp_path *path_r)
{
	const char *sender_or_rcpt = is_rcpt ? "5.1.3" : "5.1.7";
	const char *error = NULL;
	memset(path_r, 0, sizeof(*path_r));
	struct srv_path_buf *b = &srv->path;
	b->address[0] = b->local[0] = b->domain[0] = '\0';
	path_r->address = b->address;
	path_r->local_part = b->local;
	path_r->domain = b->domain;
	if (len + 2 > SMTP_MAX_PATH) {
		srv_bad(srv, 501, sender_or_rcpt, "Path longer than %d bytes", SMTP_MAX_PATH);
		return -1;
	}
	if (len == 0) {
		if (is_rcpt) {
			srv_bad(srv, 501, "5.1.3", "Empty recipient address");
			return -1;
		}
		path_r->null = true;
		return 0;
	}
	/* an obsolete source route "@a,@b:" is accepted and ignored (RFC 5321 4.1.2) */
	if (inner[0] == '@') {
		char *colon = memchr(inner, ':', len);
		if (colon == NULL) {
			srv_bad(srv, 501, sender_or_rcpt, "Bad source route");
			return -1;
		}
		len -= (size_t)(colon + 1 - inner);
		inner = colon + 1;
	}
	if (srv_has_8bit(inner, len)) {
		if (!utf8) {
			srv_bad(srv, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
			return -1;
		}
		path_r->utf8 = true;
	}
	memcpy(b->address, inner, len);
	b->address[len] = '\0';
	if (is_rcpt && strcasecmp(b->address, "postmaster") == 0) {
		strcpy(b->local, "Postmaster");
		return 0;
	}
	if (smtp_mailbox_check(b->address, len, utf8, &error) < 0) {
		srv_bad(srv, 501, sender_or_rcpt, "Bad address syntax: %s", error);
		return -1;
	}
	/* decode the local part, split off the domain */
	const char *p = b->address;
	size_t o = 0;
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\\')
				p++;
			b->local[o++] = *p;
		}
		p++;
	} else {
		while (*p != '@')
			b->local[o++] = *p++;
	}
	b->local[o] = '\0';
	strcpy(b->domain, p + 1);
	return 0;
}

/* ---- parameters ---- */

/* Split params into keyword/value pairs in place. Returns the count, or -1
 * on a syntax error. */
static int srv_split_params(char *params, char **keys, char **values)
{
	int n = 0;
	char *save = NULL;
	for (char *tok = params != NULL ? strtok_r(params, " ", &save) : NULL; tok != NULL;
	     tok = strtok_r(NULL, " ", &save)) {
		if (n == SRV_MAX_PARAMS)
			return -1;
		char *eq = strchr(tok, '=');
		if (eq != NULL) {
			*eq = '\0';
			if (eq[1] == '\0')
				return -1;
		}
		if (!isalnum((unsigned char)tok[0]))
			return -1;
		for (char *q = tok; *q != '\0'; q++)
			if (!isalnum((unsigned char)*q) && *q != '-')
				return -1;
		for (char *q = eq != NULL ? eq + 1 : tok; eq != NULL && *q != '\0'; q++)
			if ((unsigned char)*q < 33 || *q == 127)
				return -1;
		for (int i = 0; i < n; i++)
			if (strcasecmp(keys[i], tok) == 0)
				return -1;
		keys[n] = tok;
		values[n] = eq != NULL ? eq + 1 : NULL;
		n++;
	}
	return n;
}

static bool srv_ext(const struct smtp_server *srv, unsigned ext)
{
	return (srv->ext_flags & ext) != 0;
}

/* ---- the transaction ---- */

static void srv_tx_reset(struct smtp_server *srv, bool notify)
{
	if ((srv->state & ST_TX) != 0) {
		if (notify && srv->cb.reset != NULL)
			srv->cb.reset(srv->ctx);
		srv->state = ST_READY;
	}
	srv->nrcpt = 0;
	srv->tx_utf8 = false;
}

static void srv_body_reset(struct smtp_server *srv)
{
	srv->bst = B_START;
	srv->body_size = 0;
	srv->body_line = 0;
	srv->body_error = SMTP_DATA_OK;
	srv->out_len = 0;
}

static void srv_bdat_chunk_end(struct smtp_server *srv);

/* Call a deciding callback: pending is set first so that a callback that
 * completes at once (from inside) is handled like one that returns. */
static void srv_decide(struct smtp_server *srv, enum srv_pending what, int result);

static void srv_begin_decision(struct smtp_server *srv, enum srv_pending what)
{
	srv->pending = what;
	srv->replies_before = srv->replies;
}

static void srv_after_callback(struct smtp_server *srv, enum srv_pending what, int result)
{
	if (srv->pending != what)
		return; /* completed from inside the callback */
	if (result == 0) {
		/* AUTH stays undecided but reads SASL lines when asked to */
		srv->paused = !(what == PEND_AUTH && srv->auth_lines);
		return;
	}
	srv_decide(srv, what, result);
}

static void srv_ehlo_reply(struct smtp_server *srv)
{
	size_t n = 1;
	for (char **e = srv->ext; e != NULL && *e != NULL; e++)
		n++;
	const char **lines = xcalloc(n, sizeof(*lines));
	lines[0] = srv->hostname;
	for (size_t i = 1; i < n; i++)
		lines[i] = srv->ext[i - 1];
	smtp_server_reply_lines(srv, 250, NULL, lines, n);
	free(lines);
}

static void srv_decide(struct smtp_server *srv, enum srv_pending what, int result)
{
	bool replied = srv->replies != srv->replies_before;
	srv->pending = PEND_NONE;
	srv->paused = false;
	switch (what) {
	case PEND_NONE:
		break;
	case PEND_HELLO:
		if (result > 0) {
			srv->state = ST_READY;
			if (!replied && srv->pend_hello == SMTP_HELO)
				smtp_server_reply(srv, 250, NULL, "%s", srv->hostname);
			else if (!replied)
				srv_ehlo_reply(srv);
		} else if (!replied) {
			smtp_server_reply(srv, 550, "5.7.0", "Greeting refused");
		}
		break;
	case PEND_MAIL:
		if (result > 0) {
			srv->state = ST_MAIL;
			srv->nrcpt = 0;
			srv->tx_utf8 = srv->pend_utf8;
			if (!replied)
				smtp_server_reply(srv, 250, "2.1.0", "Ok");
		} else if (!replied) {
			smtp_server_reply(srv, 550, "5.7.1", "Sender refused");
		}
		break;
	case PEND_RCPT:
		if (result > 0) {
			srv->state = ST_RCPT;
			srv->nrcpt++;
			if (!replied)
				smtp_server_reply(srv, 250, "2.1.5", "Ok");
		} else if (!replied) {
			smtp_server_reply(srv, 550, "5.1.1", "Recipient refused");
		}
		break;
	case PEND_DATA_BEGIN:
		if (result > 0) {
			srv_body_reset(srv);
			srv->input = IN_DATA;
			if (!replied)
				smtp_server_reply(srv, 354, NULL,
						  "Start mail input; end with <CRLF>.<CRLF>");
		} else if (!replied) {
			smtp_server_reply(srv, 554, "5.5.0", "Transaction failed");
		}
		break;
	case PEND_BDAT_BEGIN:
		srv->bdat_left = srv->pend_bdat_size;
		srv->bdat_last = srv->pend_bdat_last;
		if (result > 0) {
			srv_body_reset(srv);
			srv->state = ST_BDAT;
			srv->input = IN_BDAT;
		} else {
			if (!replied)
				smtp_server_reply(srv, 554, "5.5.0", "Transaction failed");
			srv->input = IN_BDAT_DISCARD;
			srv->bdat_discard_reply = NULL;
		}
		if (srv->bdat_left == 0)
			srv_bdat_chunk_end(srv);
		break;
	case PEND_DATA_END:
		if (!replied && result > 0)
			smtp_server_reply(srv, 250, "2.0.0", "Ok");
		else if (!replied)
			smtp_server_reply(srv, 554, "5.5.0", "Transaction failed");
		srv->state = ST_READY;
		srv->nrcpt = 0;
		srv->tx_utf8 = false;
		break;
	case PEND_STARTTLS:
		if (result > 0) {
			if (!replied)
				smtp_server_reply(srv, 220, "2.0.0", "Ready to start TLS");
			/* RFC 3207 4.2: forget everything, drop what was pipelined */
			srv_tx_reset(srv, true);
			srv->state = ST_INIT;
			srv->keep_len = srv->keep_off = 0;
			srv->line_len = 0;
			srv->line_discard = false;
			srv->drop_input = true;
		} else if (!replied) {
			smtp_server_reply(srv, 454, "4.7.0", "TLS not available");
		}
		break;
	case PEND_AUTH:
		if (result > 0) {
			srv->authenticated = true;
			if (!replied)
				smtp_server_reply(srv, 235, "2.7.0", "Authentication successful");
		} else if (!replied) {
			smtp_server_reply(srv, 535, "5.7.8", "Authentication credentials invalid");
		}
		srv->auth_lines = false;
		break;
	}
	srv_metrics_settle(srv);
}

/* ---- commands ---- */

static void cmd_hello(struct smtp_server *srv, char *args, enum smtp_hello_kind kind)
{
	const char *error;
	if (args == NULL || *args == '\0') {
		srv_bad(srv, 501, "5.5.4", "Domain name required");
		return;
	}
	/* some clients add a comment after the domain: keep the first word */
	if (strchr(args, ' ') != NULL)
		*strchr(args, ' ') = '\0';
	if (smtp_domain_check((const unsigned char *)args, strlen(args), true, &error) < 0) {
		srv_bad(srv, 501, "5.5.4", "Invalid domain name: %s", error);
		return;
	}
	srv_tx_reset(srv, true);
	srv->pend_hello = kind;
	srv_begin_decision(srv, PEND_HELLO);
	int r = srv->cb.hello != NULL ? srv->cb.hello(srv->ctx, kind, args) : 1;
	srv_after_callback(srv, PEND_HELLO, r);
}

static void cmd_helo(struct smtp_server *srv, char *args)
{
	cmd_hello(srv, args, SMTP_HELO);
}

static void cmd_ehlo(struct smtp_server *srv, char *args)
{
	cmd_hello(srv, args, SMTP_EHLO);
}

static void cmd_lhlo(struct smtp_server *srv, char *args)
{
	cmd_hello(srv, args, SMTP_LHLO);
}

static void cmd_mail(struct smtp_server *srv, char *args)
{
	char *inner, *params;
	size_t len;
	if (srv_split_path(args, "FROM:", &inner, &len, &params) < 0) {
		srv_bad(srv, 501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]");
		return;
	}
	char *keys[SRV_MAX_PARAMS], *values[SRV_MAX_PARAMS];
	int n = srv_split_params(params, keys, values);
	if (n < 0) {
		srv_bad(srv, 501, "5.5.4", "Bad MAIL parameters");
		return;
	}
	struct smtp_mail mail = {0};
	for (int i = 0; i < n; i++) {
		const char *k = keys[i], *v = values[i];
		if (strcasecmp(k, "SIZE") == 0 && srv_ext(srv, EXT_SIZE)) {
			size_t dl = v != NULL ? strlen(v) : 0;
			if (dl == 0 || dl > 19 || strspn(v, "0123456789") != dl) {
				srv_bad(srv, 501, "5.5.4", "Bad SIZE parameter");
				return;
			}
			mail.size = strtoull(v, NULL, 10);
		} else if (strcasecmp(k, "BODY") == 0 && srv_ext(srv, EXT_8BITMIME)) {
			if (v != NULL && strcasecmp(v, "7BIT") == 0)
				mail.body = SMTP_BODY_7BIT;
			else if (v != NULL && strcasecmp(v, "8BITMIME") == 0)
				mail.body = SMTP_BODY_8BITMIME;
			else {
				srv_bad(srv, 501, "5.5.4", "Unsupported BODY type");
				return;
			}
		} else if (strcasecmp(k, "SMTPUTF8") == 0 && srv_ext(srv, EXT_SMTPUTF8)) {
			if (v != NULL) {
				srv_bad(srv, 501, "5.5.4", "SMTPUTF8 takes no value");
				return;
			}
			mail.smtputf8 = true;
		} else if (strcasecmp(k, "RET") == 0 && srv_ext(srv, EXT_DSN)) {
			if (v != NULL && strcasecmp(v, "FULL") == 0)
				mail.ret = SMTP_RET_FULL;
			else if (v != NULL && strcasecmp(v, "HDRS") == 0)
				mail.ret = SMTP_RET_HDRS;
			else {
				srv_bad(srv, 501, "5.5.4", "Bad RET parameter");
				return;
			}
		} else if (strcasecmp(k, "ENVID") == 0 && srv_ext(srv, EXT_DSN)) {
			if (v == NULL || strlen(v) > SMTP_MAX_ENVID || !smtp_xtext_valid(v)) {
				srv_bad(srv, 501, "5.5.4", "Bad ENVID parameter");
				return;
			}
			mail.envid = v;
		} else if (strcasecmp(k, "AUTH") == 0 && srv_ext(srv, EXT_AUTH)) {
			if (v == NULL || (strcmp(v, "<>") != 0 && !smtp_xtext_valid(v))) {
				srv_bad(srv, 501, "5.5.4", "Bad AUTH parameter");
				return;
			}
			mail.auth = v;
		} else {
			srv_bad(srv, 555, "5.5.4", "Unsupported parameter %s", k);
			return;
		}
	}
	if (srv_parse_path(srv, inner, len, false, mail.smtputf8, &mail.path) < 0)
		return;
	if (mail.size > srv->set.max_message_size) {
		smtp_server_reply(srv, 552, "5.3.4",
				  "Message size exceeds fixed limit of %llu bytes",
				  (unsigned long long)srv->set.max_message_size);
		return;
	}
	srv->pend_utf8 = mail.smtputf8;
	srv_begin_decision(srv, PEND_MAIL);
	int r = srv->cb.mail != NULL ? srv->cb.mail(srv->ctx, &mail) : 1;
	srv_after_callback(srv, PEND_MAIL, r);
}

static void cmd_rcpt(struct smtp_server *srv, char *args)
{
	char *inner, *params;
	size_t len;
	if (srv_split_path(args, "TO:", &inner, &len, &params) < 0) {
		srv_bad(srv, 501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]");
		return;
	}
	char *keys[SRV_MAX_PARAMS], *values[SRV_MAX_PARAMS];
	int n = srv_split_params(params, keys, values);
	if (n < 0) {
		srv_bad(srv, 501, "5.5.4", "Bad RCPT parameters");
		return;
	}
	struct smtp_rcpt rcpt = {0};
	for (int i = 0; i < n; i++) {
		const char *k = keys[i];
		char *v = values[i];
		if (strcasecmp(k, "NOTIFY") == 0 && srv_ext(srv, EXT_DSN) && v != NULL) {
			char *save = NULL;
			for (char *t = strtok_r(v, ",", &save); t != NULL;
			     t = strtok_r(NULL, ",", &save)) {
				if (strcasecmp(t, "NEVER") == 0)
					rcpt.notify |= SMTP_NOTIFY_NEVER;
				else if (strcasecmp(t, "SUCCESS") == 0)
					rcpt.notify |= SMTP_NOTIFY_SUCCESS;
				else if (strcasecmp(t, "FAILURE") == 0)
					rcpt.notify |= SMTP_NOTIFY_FAILURE;
				else if (strcasecmp(t, "DELAY") == 0)
					rcpt.notify |= SMTP_NOTIFY_DELAY;
				else
					rcpt.notify = ~0u;
			}
			if (rcpt.notify == 0 || rcpt.notify == ~0u ||
			    ((rcpt.notify & SMTP_NOTIFY_NEVER) != 0 &&
			     rcpt.notify != SMTP_NOTIFY_NEVER)) {
				srv_bad(srv, 501, "5.5.4", "Bad NOTIFY parameter");
				return;
			}
		} else if (strcasecmp(k, "ORCPT") == 0 && srv_ext(srv, EXT_DSN)) {
			char *semi = v != NULL ? strchr(v, ';') : NULL;
			bool ok = semi != NULL && semi > v && strlen(v) <= SMTP_MAX_ORCPT &&
				  semi[1] != '\0';
			for (char *q = v; ok && q < semi; q++)
				ok = smtp_atext((unsigned char)*q);
			if (!ok || !smtp_xtext_valid(semi + 1)) {
				srv_bad(srv, 501, "5.5.4", "Bad ORCPT parameter");
				return;
			}
			rcpt.orcpt = v;
		} else if (strcasecmp(k, "XSENTCOPY") == 0 && srv_ext(srv, EXT_XSENTCOPY)) {
			if (v == NULL || strlen(v) > SMTP_MAX_XSENTCOPY) {
				srv_bad(srv, 501, "5.5.4", "Bad XSENTCOPY parameter");
				return;
			}
			rcpt.sent_copy = v;
		} else {
			srv_bad(srv, 555, "5.5.4", "Unsupported parameter %s", k);
			return;
		}
	}
	if (srv_parse_path(srv, inner, len, true, srv->tx_utf8, &rcpt.path) < 0)
		return;
	if (srv->nrcpt >= srv->set.max_recipients) {
		smtp_server_reply(srv, 452, "4.5.3", "Too many recipients");
		return;
	}
	srv_begin_decision(srv, PEND_RCPT);
	int r = srv->cb.rcpt != NULL ? srv->cb.rcpt(srv->ctx, &rcpt) : 1;
	srv_after_callback(srv, PEND_RCPT, r);
}

/* DATA without an accepted recipient: SMTP answers 554 (RFC 2920 3.1),
 * LMTP must answer 503 (RFC 2033 4.2) */
static unsigned srv_no_rcpt_code(const struct smtp_server *srv)
{
	return srv->set.protocol == SMTP_PROTOCOL_LMTP ? 503 : 554;
}

static void cmd_data(struct smtp_server *srv, char *args)
{
	(void)args;
	if (srv->state == ST_BDAT) {
		srv_bad(srv, 503, "5.5.1", "DATA cannot follow BDAT");
		return;
	}
	if (srv->state != ST_RCPT) {
		if (srv->state == ST_MAIL)
			srv_bad(srv, srv_no_rcpt_code(srv), "5.5.1", "No valid recipients");
		else
			srv_bad(srv, 503, "5.5.1", "Need MAIL and RCPT before DATA");
		return;
	}
	srv_begin_decision(srv, PEND_DATA_BEGIN);
	int r = srv->cb.data_begin != NULL ? srv->cb.data_begin(srv->ctx, false) : 1;
	srv_after_callback(srv, PEND_DATA_BEGIN, r);
}

static void cmd_bdat(struct smtp_server *srv, char *args)
{
	char *save = NULL;
	char *size_text = strtok_r(args, " ", &save);
	char *last = strtok_r(NULL, " ", &save);
	size_t dl = size_text != NULL ? strlen(size_text) : 0;
	if (dl == 0 || dl > 19 || strspn(size_text, "0123456789") != dl ||
	    (last != NULL && strcasecmp(last, "LAST") != 0) || strtok_r(NULL, " ", &save) != NULL) {
		srv_bad(srv, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		return;
	}
	uint64_t size = strtoull(size_text, NULL, 10);
	if (srv->state == ST_BDAT) {
		srv->bdat_left = size;
		srv->bdat_last = last != NULL;
		srv->input = IN_BDAT;
		if (size == 0)
			srv_bdat_chunk_end(srv);
		return;
	}
	if (srv->state != ST_RCPT) {
		/* the chunk's bytes still follow: count them, drop them, answer */
		srv->bdat_left = size;
		srv->bdat_last = last != NULL;
		srv->input = IN_BDAT_DISCARD;
		srv->bdat_discard_reply = srv->state == ST_MAIL ? "No valid recipients"
								: "Need MAIL and RCPT before BDAT";
		if (size == 0)
			srv_bdat_chunk_end(srv);
		return;
	}
	srv->pend_bdat_size = size;
	srv->pend_bdat_last = last != NULL;
	srv_begin_decision(srv, PEND_BDAT_BEGIN);
	int r = srv->cb.data_begin != NULL ? srv->cb.data_begin(srv->ctx, true) : 1;
	srv_after_callback(srv, PEND_BDAT_BEGIN, r);
}

static void cmd_rset(struct smtp_server *srv, char *args)
{
	(void)args;
	srv_tx_reset(srv, true);
	smtp_server_reply(srv, 250, "2.0.0", "Ok");
}

static void cmd_noop(struct smtp_server *srv, char *args)
{
	(void)args;
	smtp_server_reply(srv, 250, "2.0.0", "Ok");
}

static void cmd_quit(struct smtp_server *srv, char *args)
{
	(void)args;
	smtp_server_reply(srv, 221, "2.0.0", "%s Closing connection", srv->hostname);
	srv_tx_reset(srv, true);
	srv->state = ST_QUIT;
	if (srv->cb.quit != NULL)
		srv->cb.quit(srv->ctx);
}

static void cmd_vrfy(struct smtp_server *srv, char *args)
{
	(void)args;
	smtp_server_reply(srv, 252, "2.5.0",
			  "Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(struct smtp_server *srv, char *args)
{
	(void)args;
	srv_bad(srv, 502, "5.5.1", "EXPN not available");
}

static void cmd_help(struct smtp_server *srv, char *args)
{
	(void)args;
	smtp_server_reply(srv, 214, "2.0.0", "%s MAIL RCPT DATA%s RSET NOOP QUIT VRFY HELP",
			  srv->set.protocol == SMTP_PROTOCOL_LMTP ? "LHLO" : "HELO EHLO",
			  srv_ext(srv, EXT_CHUNKING) ? " BDAT" : "");
}

static void cmd_starttls(struct smtp_server *srv, char *args)
{
	(void)args;
	srv_begin_decision(srv, PEND_STARTTLS);
	int r = srv->cb.starttls != NULL ? srv->cb.starttls(srv->ctx) : -1;
	srv_after_callback(srv, PEND_STARTTLS, r);
}

static void cmd_auth(struct smtp_server *srv, char *args)
{
	if (srv->authenticated) {
		srv_bad(srv, 503, "5.5.1", "Already authenticated");
		return;
	}
	char *save = NULL;
	char *mech = strtok_r(args, " ", &save);
	char *initial = strtok_r(NULL, " ", &save);
	if (mech == NULL || strtok_r(NULL, " ", &save) != NULL) {
		srv_bad(srv, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
		return;
	}
	srv_begin_decision(srv, PEND_AUTH);
	int r = srv->cb.auth != NULL ? srv->cb.auth(srv->ctx, mech, initial) : -1;
	srv_after_callback(srv, PEND_AUTH, r);
}

static const struct smtp_command smtp_commands[] = {
    {"HELO", cmd_helo, ST_ANY, CMD_NEED_ARGS | CMD_SMTP_ONLY, 0},
    {"EHLO", cmd_ehlo, ST_ANY, CMD_NEED_ARGS | CMD_SMTP_ONLY, 0},
    {"LHLO", cmd_lhlo, ST_ANY, CMD_NEED_ARGS | CMD_LMTP_ONLY, 0},
    {"MAIL", cmd_mail, ST_READY, CMD_NEED_ARGS, 0},
    {"RCPT", cmd_rcpt, ST_MAIL | ST_RCPT, CMD_NEED_ARGS, 0},
    {"DATA", cmd_data, ST_READY | ST_MAIL | ST_RCPT | ST_BDAT, CMD_NO_ARGS, 0},
    /* BDAT's bytes follow whatever the state: cmd_bdat counts and drops them */
    {"BDAT", cmd_bdat, ST_ANY, CMD_NEED_ARGS, EXT_CHUNKING},
    {"RSET", cmd_rset, ST_ANY, CMD_NO_ARGS, 0},
    {"NOOP", cmd_noop, ST_ANY, 0, 0},
    {"QUIT", cmd_quit, ST_ANY, CMD_NO_ARGS, 0},
    {"VRFY", cmd_vrfy, ST_ANY, CMD_NEED_ARGS, 0},
    {"EXPN", cmd_expn, ST_ANY, 0, 0},
    {"HELP", cmd_help, ST_ANY, 0, 0},
    {"STARTTLS", cmd_starttls, ST_INIT | ST_READY, CMD_NO_ARGS, EXT_STARTTLS},
    {"AUTH", cmd_auth, ST_READY, CMD_NEED_ARGS, EXT_AUTH},
};

static const char *srv_sequence_error(const struct smtp_server *srv, const char *verb)
{
	if (srv->state == ST_INIT)
		return srv->set.protocol == SMTP_PROTOCOL_LMTP ? "Send LHLO first"
							       : "Send HELO or EHLO first";
	if (strcasecmp(verb, "MAIL") == 0)
		return "Nested MAIL command";
	if (strcasecmp(verb, "RCPT") == 0)
		return "Need MAIL before RCPT";
	if (strcasecmp(verb, "AUTH") == 0 || strcasecmp(verb, "STARTTLS") == 0)
		return "Not allowed during a mail transaction";
	return "Bad sequence of commands";
}

static void srv_command(struct smtp_server *srv, char *line, size_t len)
{
	if (srv->state == ST_QUIT)
		return;
	if (memchr(line, '\0', len) != NULL) {
		srv_bad(srv, 500, "5.5.2", "NUL bytes are not allowed");
		return;
	}
	if (srv->auth_lines) {
		if (srv->cb.auth_line != NULL)
			srv->cb.auth_line(srv->ctx, line);
		return;
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	char *args = strchr(line, ' ');
	size_t verb_len = args != NULL ? (size_t)(args - line) : len;
	if (args != NULL) {
		*args++ = '\0';
		while (*args == ' ')
			args++;
		if (*args == '\0')
			args = NULL;
	}
	const struct smtp_command *cmd = NULL;
	for (size_t i = 0;
	     verb_len <= SRV_MAX_VERB && i < sizeof(smtp_commands) / sizeof(smtp_commands[0]);
	     i++) {
		if (strcasecmp(line, smtp_commands[i].name) == 0) {
			cmd = &smtp_commands[i];
			break;
		}
	}
	metrics_command_begin(&srv->metrics, cmd != NULL ? cmd->name : NULL);
	bool lmtp = srv->set.protocol == SMTP_PROTOCOL_LMTP;
	if (cmd == NULL || ((cmd->flags & CMD_SMTP_ONLY) != 0 && lmtp) ||
	    ((cmd->flags & CMD_LMTP_ONLY) != 0 && !lmtp)) {
		srv_bad(srv, 500, "5.5.1", "Command unrecognized");
		return;
	}
	if (cmd->ext != 0 && !srv_ext(srv, cmd->ext)) {
		srv_bad(srv, 502, "5.5.1", "%s not available", cmd->name);
		return;
	}
	if ((cmd->flags & CMD_NO_ARGS) != 0 && args != NULL) {
		srv_bad(srv, 501, "5.5.4", "%s takes no arguments", cmd->name);
		return;
	}
	if ((cmd->flags & CMD_NEED_ARGS) != 0 && args == NULL) {
		srv_bad(srv, 501, "5.5.4", "%s needs arguments", cmd->name);
		return;
	}
	if ((cmd->states & srv->state) == 0) {
		srv_bad(srv, 503, "5.5.1", "%s", srv_sequence_error(srv, cmd->name));
		return;
	}
	cmd->run(srv, args);
}

/* ---- bodies ---- */

static void srv_body_flush(struct smtp_server *srv)
{
	if (srv->out_len > 0 && srv->cb.data != NULL)
		srv->cb.data(srv->ctx, srv->out, srv->out_len);
	srv->out_len = 0;
}

/* Hand out body bytes up to the bounds. What is handed out before a bound
 * is hit does not depend on how the input was split. */
static void srv_body_emit(struct smtp_server *srv, const unsigned char *p, size_t n, bool crlf)
{
	if (srv->body_error != SMTP_DATA_OK)
		return;
	uint64_t size_room = srv->set.max_message_size - srv->body_size;
	if (crlf) {
		if (size_room < n) {
			srv->body_error = SMTP_DATA_TOO_BIG;
			return;
		}
	} else {
		size_t line_room = srv->set.max_message_line - srv->body_line;
		size_t m = n;
		if (m > line_room)
			m = line_room;
		if (m > size_room)
			m = (size_t)size_room;
		if (m < n)
			srv->body_error = n > line_room && line_room <= size_room
					      ? SMTP_DATA_LINE_TOO_LONG
					      : SMTP_DATA_TOO_BIG;
		n = m;
		srv->body_line += n;
	}
	srv->body_size += n;
	while (n > 0) {
		size_t room = sizeof(srv->out) - srv->out_len;
		size_t m = n < room ? n : room;
		memcpy(srv->out + srv->out_len, p, m);
		srv->out_len += m;
		p += m;
		n -= m;
		if (srv->out_len == sizeof(srv->out))
			srv_body_flush(srv);
	}
}

static void srv_body_crlf(struct smtp_server *srv)
{
	srv->body_line = 0;
	srv_body_emit(srv, (const unsigned char *)"\r\n", 2, true);
}

/* Run the body reader over p; dot: DATA rules. Returns the bytes used;
 * *end_r when DATA's end marker was consumed. */
static size_t srv_body_feed(struct smtp_server *srv, const unsigned char *p, size_t n, bool dot,
			    bool *end_r)
{
	size_t i = 0;
	*end_r = false;
	while (i < n) {
		unsigned char c = p[i];
		switch (srv->bst) {
		case B_START:
			if (dot && c == '.') {
				srv->bst = B_DOT;
				i++;
			} else {
				srv->bst = B_MID;
			}
			break;
		case B_MID: {
			size_t j = i;
			while (j < n && p[j] != '\r' && p[j] != '\n')
				j++;
			if (j > i) {
				srv_body_emit(srv, p + i, j - i, false);
				i = j;
			} else if (c == '\r') {
				srv->bst = B_CR;
				i++;
			} else {
				/* a bare LF: stored as CRLF, not a line start */
				srv_body_crlf(srv);
				i++;
			}
			break;
		}
		case B_CR:
			srv_body_crlf(srv);
			if (c == '\n') {
				srv->bst = B_START;
				i++;
			} else {
				/* a bare CR: stored as CRLF, not a line start */
				srv->bst = B_MID;
			}
			break;
		case B_DOT:
			if (c == '\r') {
				srv->bst = B_DOT_CR;
				i++;
			} else if (c == '\n') {
				/* ".\n" is no end: the line "." is kept */
				srv_body_emit(srv, (const unsigned char *)".", 1, false);
				srv_body_crlf(srv);
				srv->bst = B_MID;
				i++;
			} else {
				/* the stuffed dot is dropped; c is the line's first byte */
				srv->bst = B_MID;
			}
			break;
		case B_DOT_CR:
			if (c == '\n') {
				*end_r = true;
				return i + 1;
			}
			/* ".\r" then something else: a bare CR, the line "." is kept */
			srv_body_emit(srv, (const unsigned char *)".", 1, false);
			srv_body_crlf(srv);
			srv->bst = B_MID;
			break;
		}
	}
	return i;
}

static void srv_body_end(struct smtp_server *srv, bool chunked)
{
	srv_body_flush(srv);
	srv->input = IN_COMMAND;
	struct smtp_data_result result = {
	    .size = srv->body_size,
	    .error = srv->body_error,
	    .chunked = chunked,
	};
	srv_begin_decision(srv, PEND_DATA_END);
	int r = srv->cb.data_end != NULL ? srv->cb.data_end(srv->ctx, &result) : 1;
	srv_after_callback(srv, PEND_DATA_END, r);
}

static void srv_bdat_chunk_end(struct smtp_server *srv)
{
	if (srv->input == IN_BDAT_DISCARD) {
		srv->input = IN_COMMAND;
		if (srv->bdat_discard_reply != NULL)
			srv_bad(srv, srv->state == ST_MAIL ? srv_no_rcpt_code(srv) : 503, "5.5.1",
				"%s", srv->bdat_discard_reply);
		srv->bdat_discard_reply = NULL;
		return;
	}
	if (!srv->bdat_last) {
		srv_body_flush(srv);
		srv->input = IN_COMMAND;
		if (srv->body_error != SMTP_DATA_OK)
			smtp_server_reply_data_error(srv, srv->body_error, NULL);
		else
			smtp_server_reply(srv, 250, "2.0.0", "%llu octets received",
					  (unsigned long long)srv->body_size);
		return;
	}
	/* a message ending in a bare CR gets its line end */
	if (srv->bst == B_CR) {
		srv_body_crlf(srv);
		srv->bst = B_START;
	}
	srv_body_end(srv, true);
}

static size_t srv_bdat_feed(struct smtp_server *srv, const unsigned char *p, size_t n)
{
	size_t m = n < srv->bdat_left ? n : (size_t)srv->bdat_left;
	if (srv->input == IN_BDAT) {
		bool end;
		srv_body_feed(srv, p, m, false, &end);
		srv_body_flush(srv);
	}
	srv->bdat_left -= m;
	if (srv->bdat_left == 0)
		srv_bdat_chunk_end(srv);
	srv_metrics_settle(srv);
	return m;
}

/* ---- command lines from raw input ---- */

static void srv_line_too_long(struct smtp_server *srv)
{
	srv_bad(srv, 500, "5.5.2", "Line too long (max %zu bytes)", srv->set.max_line);
}

static size_t srv_command_feed(struct smtp_server *srv, const unsigned char *p, size_t n)
{
	const unsigned char *lf = memchr(p, '\n', n);
	size_t take = lf != NULL ? (size_t)(lf - p) : n;
	size_t used = lf != NULL ? take + 1 : n;
	if (srv->line_discard) {
		if (lf != NULL)
			srv->line_discard = false;
		return used;
	}
	/* room for the content, a CR not yet known to end the line, and NUL */
	if (srv->line_len + take > srv->set.max_line + 1) {
		srv->line_len = 0;
		srv->line_discard = lf == NULL;
		srv_line_too_long(srv);
		return used;
	}
	memcpy(srv->line + srv->line_len, p, take);
	srv->line_len += take;
	if (lf == NULL)
		return used;
	size_t len = srv->line_len;
	srv->line_len = 0;
	if (len > 0 && srv->line[len - 1] == '\r')
		len--;
	if (len > srv->set.max_line) {
		srv_line_too_long(srv);
		return used;
	}
	srv->line[len] = '\0';
	srv_command(srv, srv->line, len);
	srv_metrics_settle(srv);
	return used;
}

/* Process bytes until they run out or the engine pauses or finishes.
 * Returns the bytes used. */
static size_t srv_run(struct smtp_server *srv, const unsigned char *p, size_t n)
{
	size_t i = 0;
	srv->running++;
	while (i < n && !srv->paused && srv->state != ST_QUIT && !srv->drop_input) {
		switch (srv->input) {
		case IN_COMMAND:
			i += srv_command_feed(srv, p + i, n - i);
			break;
		case IN_DATA: {
			bool end;
			i += srv_body_feed(srv, p + i, n - i, true, &end);
			if (end)
				srv_body_end(srv, false);
			else
				srv_body_flush(srv);
			break;
		}
		case IN_BDAT:
		case IN_BDAT_DISCARD:
			i += srv_bdat_feed(srv, p + i, n - i);
			break;
		}
	}
	srv->running--;
	if (srv->state == ST_QUIT || srv->drop_input)
		return n;
	return i;
}

static int srv_keep(struct smtp_server *srv, const unsigned char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (srv->keep_off > 0 && srv->keep_off == srv->keep_len)
		srv->keep_off = srv->keep_len = 0;
	if (srv->keep_len - srv->keep_off + n > SMTP_SERVER_MAX_PENDING)
		return -1;
	if (srv->keep_off > 0) {
		memmove(srv->keep, srv->keep + srv->keep_off, srv->keep_len - srv->keep_off);
		srv->keep_len -= srv->keep_off;
		srv->keep_off = 0;
	}
	if (srv->keep_len + n > srv->keep_cap) {
		srv->keep_cap = (srv->keep_len + n) * 2;
		if (srv->keep_cap > SMTP_SERVER_MAX_PENDING)
			srv->keep_cap = SMTP_SERVER_MAX_PENDING;
		srv->keep = xrealloc(srv->keep, srv->keep_cap);
	}
	memcpy(srv->keep + srv->keep_len, p, n);
	srv->keep_len += n;
	return 0;
}

static void srv_process_kept(struct smtp_server *srv)
{
	while (srv->keep_off < srv->keep_len && !srv->paused && srv->state != ST_QUIT) {
		size_t used =
		    srv_run(srv, srv->keep + srv->keep_off, srv->keep_len - srv->keep_off);
		srv->keep_off += used;
		if (srv->drop_input) {
			srv->keep_off = srv->keep_len = 0;
			break;
		}
	}
	if (srv->keep_off == srv->keep_len || srv->state == ST_QUIT)
		srv->keep_off = srv->keep_len = 0;
}

int smtp_server_input(struct smtp_server *srv, const void *data, size_t len)
{
	const unsigned char *p = data;
	int ret = 0;
	if (srv->state == ST_QUIT)
		return 0;
	if (srv->paused || srv->keep_off < srv->keep_len) {
		ret = srv_keep(srv, p, len);
		if (!srv->paused)
			srv_process_kept(srv);
	} else {
		size_t used = srv_run(srv, p, len);
		if (used < len)
			ret = srv_keep(srv, p + used, len - used);
	}
	srv->drop_input = false;
	return ret;
}

int smtp_server_line(struct smtp_server *srv, const char *line, size_t len)
{
	if (srv->state == ST_QUIT)
		return 0;
	if (smtp_server_wants_raw(srv) || srv->paused) {
		if (smtp_server_input(srv, line, len) < 0)
			return -1;
		return smtp_server_input(srv, "\r\n", 2);
	}
	if (len > srv->set.max_line) {
		srv_line_too_long(srv);
		return 0;
	}
	memcpy(srv->line, line, len);
	srv->line[len] = '\0';
	srv_command(srv, srv->line, len);
	srv_metrics_settle(srv);
	srv->drop_input = false;
	return 0;
}

void smtp_server_line_too_long(struct smtp_server *srv)
{
	if (srv->state != ST_QUIT)
		srv_line_too_long(srv);
}

bool smtp_server_wants_raw(const struct smtp_server *srv)
{
	return srv->input != IN_COMMAND || srv->line_len > 0 || srv->line_discard ||
	       srv->keep_off < srv->keep_len;
}

bool smtp_server_paused(const struct smtp_server *srv)
{
	return srv->paused;
}

bool smtp_server_finished(const struct smtp_server *srv)
{
	return srv->state == ST_QUIT;
}

void smtp_server_complete(struct smtp_server *srv, int result)
{
	if (srv->pending == PEND_NONE)
		return;
	srv_decide(srv, srv->pending, result);
	/* completed from inside a callback: the running loop goes on */
	if (srv->running == 0) {
		srv_process_kept(srv);
		srv->drop_input = false;
	}
}

void smtp_server_auth_lines(struct smtp_server *srv, bool on)
{
	srv->auth_lines = on;
	/* the SASL dialogue needs the client's lines while AUTH is undecided */
	if (srv->pending == PEND_AUTH)
		srv->paused = !on;
	if (on && srv->running == 0)
		srv_process_kept(srv);
}

void smtp_server_set_authenticated(struct smtp_server *srv)
{
	srv->authenticated = true;
}

unsigned smtp_server_recipient_count(const struct smtp_server *srv)
{
	return srv->nrcpt;
}

/* ---- set-up ---- */

void smtp_server_set_settings(struct smtp_server *srv, const struct smtp_server_settings *set)
{
	char *old_host = srv->hostname;
	srv->set = *set;
	srv->hostname = xstrdup(set->hostname != NULL ? set->hostname
				: old_host != NULL    ? old_host
						      : "localhost");
	free(old_host);
	srv->set.hostname = srv->hostname;
	if (srv->set.max_line == 0)
		srv->set.max_line = SMTP_SERVER_DEFAULT_MAX_LINE;
	if (srv->set.max_message_line == 0)
		srv->set.max_message_line = SMTP_SERVER_DEFAULT_MAX_MESSAGE_LINE;
	if (srv->set.max_message_size == 0)
		srv->set.max_message_size = SMTP_SERVER_DEFAULT_MAX_MESSAGE_SIZE;
	if (srv->set.max_recipients == 0)
		srv->set.max_recipients = SMTP_SERVER_DEFAULT_MAX_RECIPIENTS;
	if (srv->set.max_bad_commands == 0)
		srv->set.max_bad_commands = SMTP_SERVER_DEFAULT_MAX_BAD_COMMANDS;
	if (srv->set.max_line + 2 > srv->line_cap) {
		srv->line_cap = srv->set.max_line + 2;
		srv->line = xrealloc(srv->line, srv->line_cap);
	}
}

struct smtp_server *smtp_server_new(const struct smtp_server_settings *set,
				    const struct smtp_server_callbacks *callbacks, void *ctx)
{
	struct smtp_server *srv = xcalloc(1, sizeof(*srv));
	srv->cb = *callbacks;
	srv->ctx = ctx;
	srv->state = ST_INIT;
	srv->input = IN_COMMAND;
	smtp_server_set_settings(srv, set);
	return srv;
}

void smtp_server_set_extensions(struct smtp_server *srv, const char *const *keywords)
{
	for (char **e = srv->ext; e != NULL && *e != NULL; e++)
		free(*e);
	free(srv->ext);
	size_t n = 0;
	while (keywords != NULL && keywords[n] != NULL)
		n++;
	srv->ext = xcalloc(n + 1, sizeof(*srv->ext));
	srv->ext_flags = 0;
	static const struct {
		const char *name;
		unsigned flag;
	} known[] = {
	    {"SIZE", EXT_SIZE}, {"8BITMIME", EXT_8BITMIME},   {"SMTPUTF8", EXT_SMTPUTF8},
	    {"DSN", EXT_DSN},	{"CHUNKING", EXT_CHUNKING},   {"STARTTLS", EXT_STARTTLS},
	    {"AUTH", EXT_AUTH}, {"XSENTCOPY", EXT_XSENTCOPY},
	};
	for (size_t i = 0; i < n; i++) {
		srv->ext[i] = xstrdup(keywords[i]);
		size_t wl = strcspn(keywords[i], " ");
		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			if (strlen(known[k].name) == wl &&
			    strncasecmp(known[k].name, keywords[i], wl) == 0)
				srv->ext_flags |= known[k].flag;
	}
}

void smtp_server_greet(struct smtp_server *srv, const char *text)
{
	smtp_server_reply(srv, 220, NULL, "%s %s", srv->hostname, text);
}

void smtp_server_free(struct smtp_server **srvp)
{
	struct smtp_server *srv = *srvp;
	if (srv == NULL)
		return;
	for (char **e = srv->ext; e != NULL && *e != NULL; e++)
		free(*e);
	free(srv->ext);
	free(srv->hostname);
	free(srv->line);
	free(srv->keep);
	free(srv);
	*srvp = NULL;
}
