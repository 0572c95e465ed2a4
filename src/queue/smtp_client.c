#include "queue/smtp_client.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "net/net.h"

/* One transaction as a state machine driven by reply lines. Each state
 * names the reply it waits for; sc_reply() gets the complete reply (all its
 * lines) and moves on. */

#define SC_CHUNK (64 * 1024)

enum sc_state {
	SC_CONNECTING,
	SC_GREETING,
	SC_EHLO,
	SC_HELO,
	SC_STARTTLS,
	SC_TLS,
	SC_AUTH,
	SC_MAIL,
	SC_RCPT,
	SC_DATA,
	SC_BODY,
	SC_DOT,
	SC_FINISHING, /* done was called; QUIT is being flushed */
};

struct smtp_client {
	struct event_base *base;
	struct smtp_client_settings set;
	char *helo_name, *server_name, *auth_user, *auth_password, *log_name;
	struct net_addr addr;
	char remote[160];
	struct log_ctx log;
	smtp_client_done_cb *done;
	void *ctx;

	int fd; /* while connecting */
	struct event *connect_ev;
	struct event *fail_ev; /* a failure before the loop ran: reported from it */
	struct conn *conn;
	enum sc_state state;
	bool tls_done;

	/* the reply being read */
	char *reply; /* lines joined with "\n" (the last decides the code) */
	size_t reply_lines;
	unsigned reply_code;

	/* the server's extensions */
	bool ext_starttls, ext_auth_plain, ext_size, ext_8bit, ext_utf8, ext_pipelining;

	/* the envelope */
	char *sender;
	char *mail_params;
	char **rcpts;
	char **rcpt_params;
	size_t nrcpts;
	size_t next_rcpt;
	unsigned *codes;
	char **replies;
	size_t naccepted;
	size_t next_final; /* LMTP: which accepted recipient the next reply is for */
	int msg_fd;
	uint64_t msg_size;
	uint64_t msg_off;
	uint64_t msg_start;
	bool at_line_start;
	bool last_was_lf;
	bool smtputf8, eightbit;
	char *decision; /* the reply text that decided a failure */
};

static void sc_free(struct smtp_client *c)
{
	if (c->connect_ev != NULL)
		event_free(c->connect_ev);
	if (c->fail_ev != NULL)
		event_free(c->fail_ev);
	if (c->fd >= 0)
		close(c->fd);
	conn_free(&c->conn);
	free(c->helo_name);
	free(c->server_name);
	if (c->auth_password != NULL)
		memset(c->auth_password, 0, strlen(c->auth_password));
	free(c->auth_user);
	free(c->auth_password);
	free(c->log_name);
	free(c->reply);
	free(c->sender);
	free(c->mail_params);
	for (size_t i = 0; i < c->nrcpts; i++) {
		free(c->rcpts[i]);
		free(c->rcpt_params[i]);
		free(c->replies[i]);
	}
	free(c->rcpts);
	free(c->rcpt_params);
	free(c->replies);
	free(c->codes);
	free(c->decision);
	free(c);
}

void smtp_client_abort(struct smtp_client **c)
{
	if (*c == NULL)
		return;
	sc_free(*c);
	*c = NULL;
}

int smtp_client_parse_reply(const char *line, unsigned *code_r, bool *more_r)
{
	if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9' || (line[3] != '\0' && line[3] != ' ' && line[3] != '-'))
		return -1;
	*code_r = (unsigned)((line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0'));
	*more_r = line[3] == '-';
	return 0;
}

/* ---- the end ---- */

static void sc_report(struct smtp_client *c, int status, const char *reply)
{
	struct smtp_client_result res = {
	    .status = status,
	    .reply = reply != NULL ? reply : "",
	    .remote = c->remote,
	    .rcpt_codes = c->codes,
	    .rcpt_replies = (const char *const *)c->replies,
	    .nrcpts = c->nrcpts,
	};
	smtp_client_done_cb *done = c->done;
	c->done = NULL;
	if (done != NULL)
		done(c->ctx, &res);
}

/* The transaction ended (well or not): report, then leave politely. */
static void sc_finish(struct smtp_client *c, int status, const char *reply)
{
	if (status <= 0)
		log_msg(LOG_LEVEL_INFO, &c->log, "to %s: %s", c->remote,
			reply != NULL ? reply : "failed");
	char *copy = xstrdup(reply != NULL ? reply : "");
	if (c->conn != NULL && conn_is_open(c->conn) && c->state > SC_GREETING) {
		conn_write(c->conn, "QUIT\r\n", 6);
		c->state = SC_FINISHING;
		conn_close_after_flush(c->conn);
		sc_report(c, status, copy);
		free(copy);
		return; /* freed when the conn has closed */
	}
	c->state = SC_FINISHING;
	sc_report(c, status, copy);
	free(copy);
	sc_free(c);
}

static void sc_fail_local(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sc_fail_local(struct smtp_client *c, const char *fmt, ...)
{
	char text[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	char *reply = xasprintf("451 4.4.0 %s", text);
	sc_finish(c, 0, reply);
	free(reply);
}

/* ---- commands ---- */

static void sc_send(struct smtp_client *c, enum sc_state next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sc_send(struct smtp_client *c, enum sc_state next, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conn_vprintf(c->conn, fmt, ap);
	va_end(ap);
	conn_write(c->conn, "\r\n", 2);
	c->state = next;
	conn_set_idle_timeout(c->conn, next == SC_DOT ? SMTP_CLIENT_DATA_TIMEOUT_MS
						      : SMTP_CLIENT_STEP_TIMEOUT_MS);
}

static void sc_send_ehlo(struct smtp_client *c)
{
	c->ext_starttls = c->ext_auth_plain = c->ext_size = false;
	c->ext_8bit = c->ext_utf8 = c->ext_pipelining = false;
	sc_send(c, SC_EHLO, "%s %s", c->set.lmtp ? "LHLO" : "EHLO", c->helo_name);
}

static void sc_send_mail(struct smtp_client *c)
{
	char params[200] = "";
	size_t o = 0;
	if (c->ext_size)
		o += (size_t)snprintf(params + o, sizeof(params) - o, " SIZE=%llu",
				      (unsigned long long)(c->msg_size - c->msg_start));
	if (c->eightbit && c->ext_8bit)
		o += (size_t)snprintf(params + o, sizeof(params) - o, " BODY=8BITMIME");
	if (c->smtputf8 && c->ext_utf8)
		snprintf(params + o, sizeof(params) - o, " SMTPUTF8");
	sc_send(c, SC_MAIL, "MAIL FROM:<%s>%s%s", c->sender, params, c->mail_params);
}

static void sc_send_rcpt(struct smtp_client *c)
{
	sc_send(c, SC_RCPT, "RCPT TO:<%s>%s", c->rcpts[c->next_rcpt], c->rcpt_params[c->next_rcpt]);
}

/* After EHLO (or HELO): STARTTLS, AUTH or MAIL. */
static void sc_after_hello(struct smtp_client *c)
{
	if (!c->tls_done && c->set.tls != SMTP_CLIENT_TLS_NONE && c->set.tls_ctx != NULL) {
		if (c->ext_starttls) {
			sc_send(c, SC_STARTTLS, "STARTTLS");
			return;
		}
		if (c->set.tls == SMTP_CLIENT_TLS_REQUIRED) {
			sc_fail_local(c, "%s does not offer STARTTLS, which is required",
				      c->remote);
			return;
		}
	}
	if (c->auth_user != NULL) {
		if (!c->tls_done) {
			sc_fail_local(c, "not sending credentials to %s without TLS", c->remote);
			return;
		}
		if (!c->ext_auth_plain) {
			sc_fail_local(c, "%s does not offer AUTH PLAIN", c->remote);
			return;
		}
		size_t ul = strlen(c->auth_user), pl = strlen(c->auth_password);
		size_t raw_len = ul + pl + 2;
		unsigned char *raw = xmalloc(raw_len);
		raw[0] = '\0';
		memcpy(raw + 1, c->auth_user, ul);
		raw[1 + ul] = '\0';
		memcpy(raw + 2 + ul, c->auth_password, pl);
		char *b64 = xmalloc(raw_len * 4 / 3 + 8);
		EVP_EncodeBlock((unsigned char *)b64, raw, (int)raw_len);
		memset(raw, 0, raw_len);
		free(raw);
		sc_send(c, SC_AUTH, "AUTH PLAIN %s", b64);
		memset(b64, 0, strlen(b64));
		free(b64);
		return;
	}
	sc_send_mail(c);
}

static void sc_parse_ehlo(struct smtp_client *c)
{
	/* every line after the first is a keyword line */
	const char *p = strchr(c->reply, '\n');
	while (p != NULL) {
		p++;
		const char *end = strchr(p, '\n');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		char kw[256];
		if (n > 4 && n - 4 < sizeof(kw)) {
			memcpy(kw, p + 4, n - 4);
			kw[n - 4] = '\0';
			if (strcasecmp(kw, "STARTTLS") == 0)
				c->ext_starttls = true;
			else if (strncasecmp(kw, "SIZE", 4) == 0 && (kw[4] == '\0' || kw[4] == ' '))
				c->ext_size = true;
			else if (strcasecmp(kw, "8BITMIME") == 0)
				c->ext_8bit = true;
			else if (strcasecmp(kw, "SMTPUTF8") == 0)
				c->ext_utf8 = true;
			else if (strcasecmp(kw, "PIPELINING") == 0)
				c->ext_pipelining = true;
			else if (strncasecmp(kw, "AUTH ", 5) == 0 ||
				 strncasecmp(kw, "AUTH=", 5) == 0) {
				for (char *t = kw + 5; *t != '\0'; t++)
					*t = (char)toupper((unsigned char)*t);
				char *m = strstr(kw + 4, "PLAIN");
				if (m != NULL && (m[5] == '\0' || m[5] == ' ') &&
				    (m[-1] == ' ' || m[-1] == '='))
					c->ext_auth_plain = true;
			}
		}
		p = end;
	}
}

/* ---- the body ---- */

static void sc_body_more(struct smtp_client *c)
{
	unsigned char in[SC_CHUNK];
	unsigned char out[2 * SC_CHUNK];
	while (c->state == SC_BODY && !conn_output_blocked(c->conn)) {
		if (c->msg_off >= c->msg_size) {
			/* the message ends with a line end before the dot */
			if (!c->last_was_lf)
				conn_write(c->conn, "\r\n", 2);
			c->state = SC_DOT;
			conn_write(c->conn, ".\r\n", 3);
			conn_set_idle_timeout(c->conn, SMTP_CLIENT_DATA_TIMEOUT_MS);
			c->next_final = 0;
			return;
		}
		uint64_t left = c->msg_size - c->msg_off;
		size_t want = left < sizeof(in) ? (size_t)left : sizeof(in);
		ssize_t n = pread(c->msg_fd, in, want, (off_t)c->msg_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			sc_fail_local(c, "cannot read the message: %s",
				      n < 0 ? strerror(errno) : "shorter than its size");
			return;
		}
		size_t o = 0;
		for (ssize_t i = 0; i < n; i++) {
			if (c->at_line_start && in[i] == '.')
				out[o++] = '.';
			out[o++] = in[i];
			c->at_line_start = in[i] == '\n';
		}
		c->last_was_lf = in[n - 1] == '\n';
		c->msg_off += (uint64_t)n;
		conn_write(c->conn, out, o);
	}
}

/* ---- replies ---- */

static bool sc_transient(unsigned code)
{
	return code < 500;
}

static void sc_rcpts_done(struct smtp_client *c)
{
	if (c->naccepted == 0) {
		/* nobody to send to: every recipient has its answer */
		sc_finish(c, 1, "no recipient accepted");
		return;
	}
	sc_send(c, SC_DATA, "DATA");
}

/* Record the final reply for the next accepted recipient(s). */
static void sc_final_reply(struct smtp_client *c)
{
	for (size_t i = c->next_final; i < c->nrcpts; i++) {
		if (c->codes[i] < 200 || c->codes[i] >= 300)
			continue;
		/* the RCPT 250 is replaced by the delivery's answer */
		c->codes[i] = c->reply_code;
		free(c->replies[i]);
		c->replies[i] = xstrdup(c->reply);
		c->next_final = i + 1;
		if (c->set.lmtp)
			break;
	}
	bool more = false;
	if (c->set.lmtp)
		for (size_t i = c->next_final; i < c->nrcpts; i++)
			more = more || (c->codes[i] >= 200 && c->codes[i] < 300);
	if (!more)
		sc_finish(c, 1, c->reply);
}

/* The last line of each reply is the one kept as its text. */
static void sc_reply(struct smtp_client *c)
{
	unsigned code = c->reply_code;
	const char *last = strrchr(c->reply, '\n');
	last = last != NULL ? last + 1 : c->reply;
	char *text = xstrdup(last);
	switch (c->state) {
	case SC_GREETING:
		if (code != 220)
			sc_finish(c, sc_transient(code) ? 0 : -1, text);
		else
			sc_send_ehlo(c);
		break;
	case SC_EHLO:
		if (code == 250) {
			sc_parse_ehlo(c);
			sc_after_hello(c);
		} else if (!c->set.lmtp && code >= 500 && code != 554) {
			sc_send(c, SC_HELO, "HELO %s", c->helo_name);
		} else {
			sc_finish(c, sc_transient(code) ? 0 : -1, text);
		}
		break;
	case SC_HELO:
		if (code == 250)
			sc_after_hello(c);
		else
			sc_finish(c, sc_transient(code) ? 0 : -1, text);
		break;
	case SC_STARTTLS: {
		const char *error;
		if (code != 220) {
			if (c->set.tls == SMTP_CLIENT_TLS_REQUIRED) {
				sc_finish(c, 0, text);
				break;
			}
			/* opportunistic: go on in the clear */
			c->tls_done = false;
			c->set.tls = SMTP_CLIENT_TLS_NONE;
			sc_after_hello(c);
			break;
		}
		c->state = SC_TLS;
		if (conn_starttls(c->conn, c->set.tls_ctx, &error) < 0)
			sc_fail_local(c, "STARTTLS with %s: %s", c->remote, error);
		break;
	}
	case SC_AUTH:
		if (code != 235)
			sc_finish(c, sc_transient(code) ? 0 : -1, text);
		else
			sc_send_mail(c);
		break;
	case SC_MAIL:
		if (code != 250) {
			sc_finish(c, sc_transient(code) ? 0 : -1, text);
			break;
		}
		c->next_rcpt = 0;
		sc_send_rcpt(c);
		break;
	case SC_RCPT:
		c->codes[c->next_rcpt] = code;
		free(c->replies[c->next_rcpt]);
		c->replies[c->next_rcpt] = xstrdup(text);
		if (code >= 200 && code < 300)
			c->naccepted++;
		if (++c->next_rcpt < c->nrcpts)
			sc_send_rcpt(c);
		else
			sc_rcpts_done(c);
		break;
	case SC_DATA:
		if (code != 354) {
			sc_finish(c, sc_transient(code) ? 0 : -1, text);
			break;
		}
		c->state = SC_BODY;
		c->msg_off = c->msg_start;
		c->at_line_start = true;
		c->last_was_lf = true;
		conn_set_idle_timeout(c->conn, SMTP_CLIENT_DATA_TIMEOUT_MS);
		sc_body_more(c);
		break;
	case SC_DOT:
		free(c->reply);
		c->reply = xstrdup(text);
		sc_final_reply(c);
		break;
	default:
		break;
	}
	free(text);
}

/* ---- conn callbacks ---- */

static void sc_cb_line(struct conn *conn, char *line, size_t len, void *ctx)
{
	(void)conn;
	(void)len;
	struct smtp_client *c = ctx;
	if (c->state == SC_FINISHING || c->state == SC_BODY)
		return;
	unsigned code;
	bool more;
	if (smtp_client_parse_reply(line, &code, &more) < 0 ||
	    (c->reply_lines > 0 && code != c->reply_code)) {
		sc_fail_local(c, "%s sent a malformed reply", c->remote);
		return;
	}
	if (c->reply_lines == 0) {
		free(c->reply);
		c->reply = xstrdup(line);
	} else {
		char *joined = xasprintf("%s\n%s", c->reply, line);
		free(c->reply);
		c->reply = joined;
	}
	c->reply_code = code;
	if (++c->reply_lines > SMTP_CLIENT_MAX_REPLY_LINES) {
		sc_fail_local(c, "%s sent a reply of too many lines", c->remote);
		return;
	}
	if (more)
		return;
	c->reply_lines = 0;
	sc_reply(c);
}

static void sc_cb_line_too_long(struct conn *conn, void *ctx)
{
	(void)conn;
	sc_fail_local(ctx, "a reply line was too long");
}

static void sc_cb_pressure(struct conn *conn, bool blocked, void *ctx)
{
	(void)conn;
	struct smtp_client *c = ctx;
	if (!blocked && c->state == SC_BODY)
		sc_body_more(c);
}

static void sc_cb_starttls_done(struct conn *conn, void *ctx)
{
	(void)conn;
	struct smtp_client *c = ctx;
	c->tls_done = true;
	log_msg(LOG_LEVEL_DEBUG, &c->log, "TLS with %s: %s %s", c->remote,
		conn_tls_version(c->conn), conn_tls_cipher(c->conn));
	sc_send_ehlo(c);
}

static void sc_cb_timeout(struct conn *conn, void *ctx)
{
	(void)conn;
	struct smtp_client *c = ctx;
	if (c->state == SC_FINISHING)
		return;
	sc_fail_local(c, "%s did not answer in time", c->remote);
}

static void sc_cb_closed(struct conn *conn, enum conn_close_reason reason, const char *detail,
			 void *ctx)
{
	(void)conn;
	struct smtp_client *c = ctx;
	if (c->state == SC_FINISHING) {
		sc_free(c);
		return;
	}
	char text[300];
	snprintf(text, sizeof(text), "451 4.4.2 connection to %s lost (%s%s%s)", c->remote,
		 conn_close_reason_str(reason), *detail ? ": " : "", detail);
	sc_finish(c, 0, text);
}

static const struct conn_callbacks sc_conn_callbacks = {
    .line = sc_cb_line,
    .line_too_long = sc_cb_line_too_long,
    .output_pressure = sc_cb_pressure,
    .starttls_done = sc_cb_starttls_done,
    .timeout = sc_cb_timeout,
    .closed = sc_cb_closed,
};

/* ---- connecting ---- */

static void sc_connected(struct smtp_client *c)
{
	struct conn_settings cs = {
	    .service = c->log_name,
	    .client = true,
	    .tls_server_name = c->server_name,
	    .max_line = SMTP_CLIENT_MAX_LINE,
	    .idle_timeout_ms = SMTP_CLIENT_STEP_TIMEOUT_MS,
	};
	char *error = NULL;
	int fd = c->fd;
	c->fd = -1;
	c->conn = conn_new(c->base, fd, &cs, &sc_conn_callbacks, c, &error);
	if (c->conn == NULL) {
		sc_fail_local(c, "cannot set up the connection: %s", error);
		free(error);
		return;
	}
	c->state = SC_GREETING;
}

static void sc_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	struct smtp_client *c = arg;
	event_free(c->connect_ev);
	c->connect_ev = NULL;
	if (what & EV_TIMEOUT) {
		sc_fail_local(c, "cannot connect to %s: timed out", c->remote);
		return;
	}
	char *error = NULL;
	if (net_connect_finish(c->fd, &error) < 0) {
		sc_fail_local(c, "cannot connect to %s: %s", c->remote, error);
		free(error);
		return;
	}
	sc_connected(c);
}

static void sc_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct smtp_client *c = arg;
	sc_fail_local(c, "cannot connect to %s: %s", c->remote,
		      c->decision != NULL ? c->decision : "?");
}

struct smtp_client *smtp_client_start(struct event_base *base, const struct net_addr *addr,
				      const struct smtp_client_settings *set,
				      const struct smtp_client_envelope *env,
				      smtp_client_done_cb *done, void *ctx)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->set = *set;
	c->fd = -1;
	c->helo_name = xstrdup(set->helo_name != NULL ? set->helo_name : "localhost");
	c->server_name = set->server_name != NULL ? xstrdup(set->server_name) : NULL;
	c->auth_user = set->auth_user != NULL ? xstrdup(set->auth_user) : NULL;
	c->auth_password = set->auth_password != NULL ? xstrdup(set->auth_password) : NULL;
	c->log_name = xstrdup(set->log_name != NULL ? set->log_name : "smtp-client");
	c->log.service = c->log_name;
	c->log.peer = c->remote;
	c->addr = *addr;
	net_addr_format(addr, c->remote, sizeof(c->remote));
	c->done = done;
	c->ctx = ctx;
	c->sender = xstrdup(env->sender);
	c->mail_params = xstrdup(env->mail_params != NULL ? env->mail_params : "");
	c->nrcpts = env->nrcpts;
	c->rcpts = xcalloc(env->nrcpts + 1, sizeof(*c->rcpts));
	c->rcpt_params = xcalloc(env->nrcpts + 1, sizeof(*c->rcpt_params));
	c->replies = xcalloc(env->nrcpts + 1, sizeof(*c->replies));
	c->codes = xcalloc(env->nrcpts + 1, sizeof(*c->codes));
	for (size_t i = 0; i < env->nrcpts; i++) {
		c->rcpts[i] = xstrdup(env->rcpts[i]);
		c->rcpt_params[i] = xstrdup(env->rcpt_params != NULL && env->rcpt_params[i] != NULL
						? env->rcpt_params[i]
						: "");
		c->replies[i] = xstrdup("");
	}
	c->msg_fd = env->msg_fd;
	c->msg_size = env->msg_size;
	c->msg_start = env->msg_offset <= env->msg_size ? env->msg_offset : env->msg_size;
	c->smtputf8 = env->smtputf8;
	c->eightbit = env->eightbit;
	c->state = SC_CONNECTING;

	char *error = NULL;
	int r = net_connect_nonblock(addr, &c->fd, &error);
	if (r < 0) {
		c->decision = error;
		c->fail_ev = event_new(base, -1, 0, sc_fail_cb, c);
		struct timeval now = {0, 0};
		event_add(c->fail_ev, &now);
		return c;
	}
	/* even a connect that completed at once is finished from the loop, so
	 * done never runs inside this call */
	c->connect_ev = event_new(base, c->fd, EV_WRITE, sc_connect_cb, c);
	struct timeval tv = {SMTP_CLIENT_CONNECT_TIMEOUT_MS / 1000, 0};
	event_add(c->connect_ev, &tv);
	return c;
}
