#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "frontend/frontend_private.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_writer.h"

/* IMAP4 before login (RFC 3501 / RFC 9051 not-authenticated state,
 * RFC 2595 STARTTLS, RFC 4959 SASL-IR, RFC 7888 LITERAL+/-, RFC 2971 ID).
 * After login the session belongs to the back end, whose capabilities the
 * client then sees.
 *
 * Commands are read by the same parser as the back end's (src/proto/imap),
 * with every literal bounded by max-command-size. */

static void imap_send(struct fe_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void imap_send(struct fe_session *s, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	conn_write(s->conn, line, len);
	conn_write(s->conn, "\r\n", 2);
	fe_log_server(s, line, len);
}

static void imap_capabilities(struct fe_session *s, char *buf, size_t size)
{
	snprintf(buf, size, "IMAP4rev1 IMAP4rev2 SASL-IR %s ID%s%s%s",
		 s->fe->literal_minus ? "LITERAL-" : "LITERAL+",
		 !fe_session_secured(s) && s->fe->tls != NULL ? " STARTTLS" : "",
		 fe_plaintext_allowed(s, true)	  ? " AUTH=PLAIN AUTH=LOGIN"
		 : fe_plaintext_allowed(s, false) ? ""
						  : " LOGINDISABLED",
		 fe_plaintext_allowed(s, true) && s->fe->offer_scram ? " AUTH=SCRAM-SHA-256" : "");
}

static void imap_greet(struct fe_session *s)
{
	char caps[256];
	imap_capabilities(s, caps, sizeof(caps));
	imap_send(s, "* OK [CAPABILITY %s] %s", caps, fe_banner(s));
}

/* ---- commands ---- */

static void imap_cmd_capability(struct fe_session *s, struct imap_command *cmd)
{
	char caps[256];
	imap_capabilities(s, caps, sizeof(caps));
	imap_send(s, "* CAPABILITY %s", caps);
	imap_send(s, "%s OK Capability completed", cmd->tag);
}

static void imap_cmd_noop(struct fe_session *s, struct imap_command *cmd)
{
	imap_send(s, "%s OK NOOP completed", cmd->tag);
}

static void imap_cmd_logout(struct fe_session *s, struct imap_command *cmd)
{
	imap_send(s, "* BYE Logging out");
	imap_send(s, "%s OK Logout completed", cmd->tag);
	fe_close(s);
}

static void imap_cmd_id(struct fe_session *s, struct imap_command *cmd)
{
	imap_send(s, "* ID (\"name\" \"postern\")");
	imap_send(s, "%s OK ID completed", cmd->tag);
}

static void imap_cmd_starttls(struct fe_session *s, struct imap_command *cmd)
{
	if (fe_session_secured(s)) {
		imap_send(s, "%s BAD TLS is already active", cmd->tag);
		return;
	}
	if (s->fe->tls == NULL) {
		imap_send(s, "%s NO TLS is not configured", cmd->tag);
		return;
	}
	imap_send(s, "%s OK Begin TLS negotiation now", cmd->tag);
	/* what was pipelined after STARTTLS is dropped with the plaintext */
	imap_parser_reset(s->imap_parser);
	if (fe_starttls(s) < 0)
		fe_close(s);
}

static bool imap_refuse_plaintext(struct fe_session *s, const char *tag, bool sasl)
{
	if (fe_plaintext_allowed(s, sasl))
		return false;
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
		"login refused: plaintext credentials on an unencrypted connection");
	metrics_login(METRICS_LOGIN_LOGIN_TYPE);
	imap_send(s, "%s NO [PRIVACYREQUIRED] Plaintext authentication is disallowed on "
		     "unencrypted connections; use STARTTLS or the TLS port",
		  tag);
	return true;
}

static void imap_start_auth(struct fe_session *s, const char *tag, const char *user,
			    const char *password)
{
	if (tag != s->imap_tag)
		snprintf(s->imap_tag, sizeof(s->imap_tag), "%s", tag);
	if (fe_auth_request(s, user, password) < 0)
		imap_send(s, "%s NO [UNAVAILABLE] Authentication is temporarily unavailable", tag);
}

static void imap_cmd_login(struct fe_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_login *l = &cmd->u.login;
	/* the parser read them as astrings; NUL only fits a literal */
	if (l->user_len > FE_SASL_MAX_FIELD || l->password_len > FE_SASL_MAX_FIELD ||
	    strlen(l->user) != l->user_len || strlen(l->password) != l->password_len) {
		imap_send(s, "%s BAD Usage: LOGIN user password", cmd->tag);
		fe_bad_command(s);
		return;
	}
	if (!imap_refuse_plaintext(s, cmd->tag, false))
		imap_start_auth(s, cmd->tag, l->user, l->password);
}

static void imap_sasl_result(struct fe_session *s, enum fe_sasl_result r, const char *challenge,
			     const char *error)
{
	switch (r) {
	case FE_SASL_AUTHD:
		if (fe_sasl_authd_send(s) < 0)
			imap_send(s, "%s NO [UNAVAILABLE] Authentication is temporarily unavailable",
				  s->imap_tag);
		break;
	case FE_SASL_VERDICT:
		break; /* authd's answers reach imap_auth_result */
	case FE_SASL_CHALLENGE:
		imap_send(s, "+ %s", challenge);
		break;
	case FE_SASL_DONE:
		imap_start_auth(s, s->imap_tag, s->sasl.user, s->sasl.password);
		fe_sasl_reset(&s->sasl);
		break;
	case FE_SASL_CANCEL:
		imap_send(s, "%s BAD Authentication cancelled", s->imap_tag);
		break;
	case FE_SASL_ERROR:
		imap_send(s, "%s BAD %s", s->imap_tag, error);
		fe_bad_command(s);
		break;
	}
}

static void imap_cmd_authenticate(struct fe_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_authenticate *a = &cmd->u.authenticate;
	enum fe_sasl_mech mech = fe_sasl_mech_parse(a->mechanism);
	if (mech == FE_SASL_NONE || (mech == FE_SASL_SCRAM_SHA_256 && !s->fe->offer_scram)) {
		imap_send(s, "%s NO Unsupported authentication mechanism", cmd->tag);
		return;
	}
	if (a->initial != NULL && strlen(a->initial) > 3 * FE_SASL_MAX_FIELD) {
		imap_send(s, "%s BAD Initial response too long", cmd->tag);
		fe_bad_command(s);
		return;
	}
	if (imap_refuse_plaintext(s, cmd->tag, true))
		return;
	snprintf(s->imap_tag, sizeof(s->imap_tag), "%s", cmd->tag);
	const char *challenge = NULL, *error = NULL;
	enum fe_sasl_result r = fe_sasl_start(&s->sasl, mech, a->initial, &challenge, &error);
	imap_sasl_result(s, r, challenge, error);
}

/* The commands of the not-authenticated state; the rest of the parser's
 * table is answered as not allowed before login. */
static void (*const imap_handlers[IMAP_CMD_COUNT_])(struct fe_session *s,
						     struct imap_command *cmd) = {
	[IMAP_CMD_CAPABILITY] = imap_cmd_capability,
	[IMAP_CMD_NOOP] = imap_cmd_noop,
	[IMAP_CMD_LOGOUT] = imap_cmd_logout,
	[IMAP_CMD_ID] = imap_cmd_id,
	[IMAP_CMD_STARTTLS] = imap_cmd_starttls,
	[IMAP_CMD_LOGIN] = imap_cmd_login,
	[IMAP_CMD_AUTHENTICATE] = imap_cmd_authenticate,
};

static void imap_parse_failed(struct fe_session *s, const struct imap_parse_result *res)
{
	struct imap_buf out;
	imap_buf_init(&out);
	imap_write_parse_error(&out, res->error.tag, res->error.code, res->error.text,
			       res->error.bye);
	/* each line through imap_send, for the protocol log */
	size_t start = 0;
	for (size_t i = 0; i + 1 < out.len; i++) {
		if (out.data[i] == '\r' && out.data[i + 1] == '\n') {
			imap_send(s, "%.*s", (int)(i - start), out.data + start);
			start = i + 2;
		}
	}
	imap_buf_deinit(&out);
	if (res->error.bye) {
		fe_close(s);
		return;
	}
	fe_bad_command(s);
}

static void imap_parse_result(struct fe_session *s, int r, struct imap_parse_result *res)
{
	if (r < 0) {
		imap_parse_failed(s, res);
		return;
	}
	if (r == 0) {
		if (res->event != IMAP_PARSE_LITERAL)
			return;
		if (res->literal_sync && !res->literal_skip)
			imap_send(s, "+ Ready for literal data");
		if (res->literal_size > 0)
			conn_read_raw(s->conn, res->literal_size);
		return;
	}
	struct imap_command *cmd = res->command;
	void (*run)(struct fe_session *, struct imap_command *) = imap_handlers[cmd->def->id];
	if (run == NULL) {
		imap_send(s, "%s BAD %s is not allowed before login", cmd->tag, cmd->def->name);
		fe_bad_command(s);
		return;
	}
	run(s, cmd);
}

static void imap_parser_setup(struct fe_session *s)
{
	/* before login a command with its literals stays within
	 * max-command-size, and no message literal is bigger either */
	struct imap_parser_limits limits;
	imap_parser_limits_default(&limits);
	size_t max = s->fe->max_command_size;
	limits.max_command = limits.max_literal = max;
	limits.max_message = limits.max_append_total = max;
	limits.max_discard = max;
	limits.literal_minus = s->fe->literal_minus;
	s->imap_parser = imap_parser_new(&limits);
}

static void imap_line(struct fe_session *s, char *line, size_t len)
{
	if (fe_sasl_active(&s->sasl)) {
		const char *challenge = NULL, *error = NULL;
		enum fe_sasl_result r = fe_sasl_step(&s->sasl, line, &challenge, &error);
		imap_sasl_result(s, r, challenge, error);
		return;
	}
	if (s->imap_parser == NULL)
		imap_parser_setup(s);
	struct imap_parse_result res;
	int r = imap_parser_line(s->imap_parser, line, len, &res);
	imap_parse_result(s, r, &res);
}

static void imap_raw(struct fe_session *s, const unsigned char *data, size_t len,
		     size_t remaining)
{
	(void)remaining;
	if (s->imap_parser == NULL)
		return;
	struct imap_parse_result res;
	int r = imap_parser_literal(s->imap_parser, data, len, &res);
	if (r < 0)
		imap_parse_failed(s, &res);
}

static void imap_line_too_long(struct fe_session *s)
{
	fe_sasl_reset(&s->sasl);
	if (s->imap_parser == NULL)
		imap_parser_setup(s);
	struct imap_parse_result res;
	imap_parser_line_too_long(s->imap_parser, &res);
	imap_parse_failed(s, &res);
}

static void imap_session_free(struct fe_session *s)
{
	imap_parser_free(&s->imap_parser);
}

static void imap_auth_result(struct fe_session *s, const struct ipc_msg *msg)
{
	const char *result = ipc_msg_get(msg, "result");
	const char *reason = ipc_msg_get(msg, "reason");
	if (result != NULL && strcmp(result, "ok") == 0) {
		fe_login_succeeded(s, msg);
		return;
	}
	if (result != NULL && strcmp(result, "refused") == 0) {
		imap_send(s, "%s NO [CONTACTADMIN] Access denied: %s", s->imap_tag,
			  reason != NULL ? reason : "");
	} else if (result != NULL && strcmp(result, "tempfail") == 0) {
		imap_send(s, "%s NO [UNAVAILABLE] Authentication is temporarily unavailable",
			  s->imap_tag);
		return;
	} else {
		imap_send(s, "%s NO [AUTHENTICATIONFAILED] Authentication failed", s->imap_tag);
	}
	if (fe_auth_failed(s)) {
		imap_send(s, "* BYE Too many failed logins");
		fe_close(s);
	}
}

static void imap_login_unavailable(struct fe_session *s, bool limit, const char *text)
{
	imap_send(s, "%s NO [%s] %s", s->imap_tag, limit ? "LIMIT" : "UNAVAILABLE", text);
}

static void imap_goodbye(struct fe_session *s, const char *text)
{
	imap_send(s, "* BYE %s", text);
}

static void imap_refuse_connection(struct fe_session *s, const char *text)
{
	imap_send(s, "* BYE [LIMIT] %s", text);
}

/* The back-end login: the back end greets with "* OK", the front end sends
 * "X XLOGIN user client-address expiry ticket", and the back end's tagged
 * "X OK [CAPABILITY ...] ..." becomes the answer to the client's own LOGIN
 * or AUTHENTICATE, under the client's tag: the capabilities a client sees
 * after login are the back end's. */
static bool imap_backend_greeting_ok(const char *line)
{
	return strncmp(line, "* OK", 4) == 0;
}

static void imap_backend_login(struct fe_session *s, struct conn *backend)
{
	conn_printf(backend, "X XLOGIN %s %s %s %s\r\n", s->user, conn_peer(s->conn),
		    s->ticket_expiry, s->ticket_mac);
}

static int imap_backend_login_reply(struct fe_session *s, const char *line)
{
	if (strncmp(line, "* ", 2) == 0)
		return 0; /* untagged data before the answer is not for the client */
	if (strncmp(line, "X OK", 4) != 0)
		return -1;
	imap_send(s, "%s OK%s", s->imap_tag, line + 4);
	return 1;
}

/* LOGIN's password, AUTHENTICATE's initial response and SASL responses
 * never reach the protocol log */
static void imap_log_mask(struct fe_session *s, const char *line, char *out, size_t size)
{
	if (fe_sasl_active(&s->sasl)) {
		snprintf(out, size, "*");
		return;
	}
	const char *cmd = strchr(line, ' ');
	if (cmd != NULL) {
		cmd++;
		const char *args = strchr(cmd, ' ');
		size_t keep = args != NULL ? (size_t)(args - line) : strlen(line);
		if (args != NULL && (strncasecmp(cmd, "LOGIN ", 6) == 0)) {
			/* the user name stays, the password goes */
			const char *pw = strchr(args + 1, ' ');
			keep = pw != NULL ? (size_t)(pw - line) : keep;
			snprintf(out, size, "%.*s *", (int)keep, line);
			return;
		}
		if (args != NULL && strncasecmp(cmd, "AUTHENTICATE ", 13) == 0) {
			const char *ir = strchr(args + 1, ' ');
			if (ir != NULL) {
				snprintf(out, size, "%.*s *", (int)(ir - line), line);
				return;
			}
		}
	}
	snprintf(out, size, "%s", line);
}

const struct fe_protocol fe_imap4_protocol = {
	.name = "imap4",
	.display = "IMAP4",
	.greet = imap_greet,
	.line = imap_line,
	.raw = imap_raw,
	.line_too_long = imap_line_too_long,
	.session_free = imap_session_free,
	.auth_result = imap_auth_result,
	.sasl_result = imap_sasl_result,
	.goodbye = imap_goodbye,
	.refuse_connection = imap_refuse_connection,
	.login_unavailable = imap_login_unavailable,
	.log_mask = imap_log_mask,
	.backend_greeting_ok = imap_backend_greeting_ok,
	.backend_login = imap_backend_login,
	.backend_login_reply = imap_backend_login_reply,
};
