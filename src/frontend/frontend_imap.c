#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "frontend/frontend_private.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "net/conn.h"

/* IMAP4 before login (RFC 3501 / RFC 9051 not-authenticated state,
 * RFC 2595 STARTTLS, RFC 4959 SASL-IR, RFC 7888 LITERAL+, RFC 2971 ID).
 * After login the session belongs to the back end, whose capabilities the
 * client then sees.
 *
 * A command may span several lines joined by literals: each line is added
 * to s->imap_cmd in wire form ("...{5}\r\nhello ..."), and the whole
 * command is parsed once its last line has arrived. */

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
	snprintf(buf, size, "IMAP4rev1 SASL-IR LITERAL+ ID%s%s%s",
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

/* ---- argument parsing over the assembled command ---- */

struct imap_args {
	const char *p;
	const char *end;
};

static bool imap_atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' && c != '*' &&
	       c != '"' && c != '\\' && c != ']';
}

/* one astring (atom, quoted or literal) into out. Returns 1, 0 when no
 * argument is left, -1 on bad syntax or when it does not fit. */
static int imap_next_astring(struct imap_args *a, char *out, size_t size)
{
	if (a->p == a->end)
		return 0;
	if (*a->p != ' ')
		return -1;
	a->p++;
	size_t n = 0;
	if (a->p < a->end && *a->p == '"') {
		a->p++;
		while (a->p < a->end && *a->p != '"') {
			char c = *a->p++;
			if (c == '\\') {
				if (a->p == a->end || (*a->p != '"' && *a->p != '\\'))
					return -1;
				c = *a->p++;
			}
			if (c == '\r' || c == '\n' || c == '\0' || n + 1 >= size)
				return -1;
			out[n++] = c;
		}
		if (a->p == a->end)
			return -1;
		a->p++;
	} else if (a->p < a->end && *a->p == '{') {
		char *close;
		unsigned long len = strtoul(a->p + 1, &close, 10);
		if (close == a->p + 1 || close >= a->end)
			return -1;
		if (*close == '+')
			close++;
		if (close + 3 > a->end || memcmp(close, "}\r\n", 3) != 0)
			return -1;
		a->p = close + 3;
		if (len >= size || (size_t)(a->end - a->p) < len || memchr(a->p, '\0', len) != NULL)
			return -1;
		memcpy(out, a->p, len);
		n = len;
		a->p += len;
	} else {
		while (a->p < a->end && (imap_atom_char((unsigned char)*a->p) || *a->p == ']')) {
			if (n + 1 >= size)
				return -1;
			out[n++] = *a->p++;
		}
		if (n == 0)
			return -1;
	}
	out[n] = '\0';
	return 1;
}

/* ---- commands ---- */

static void imap_cmd_capability(struct fe_session *s, const char *tag, struct imap_args *a)
{
	(void)a;
	char caps[256];
	imap_capabilities(s, caps, sizeof(caps));
	imap_send(s, "* CAPABILITY %s", caps);
	imap_send(s, "%s OK Capability completed", tag);
}

static void imap_cmd_noop(struct fe_session *s, const char *tag, struct imap_args *a)
{
	(void)a;
	imap_send(s, "%s OK NOOP completed", tag);
}

static void imap_cmd_logout(struct fe_session *s, const char *tag, struct imap_args *a)
{
	(void)a;
	imap_send(s, "* BYE Logging out");
	imap_send(s, "%s OK Logout completed", tag);
	fe_close(s);
}

static void imap_cmd_id(struct fe_session *s, const char *tag, struct imap_args *a)
{
	(void)a;
	imap_send(s, "* ID (\"name\" \"postern\")");
	imap_send(s, "%s OK ID completed", tag);
}

static void imap_cmd_starttls(struct fe_session *s, const char *tag, struct imap_args *a)
{
	(void)a;
	if (fe_session_secured(s)) {
		imap_send(s, "%s BAD TLS is already active", tag);
		return;
	}
	if (s->fe->tls == NULL) {
		imap_send(s, "%s NO TLS is not configured", tag);
		return;
	}
	imap_send(s, "%s OK Begin TLS negotiation now", tag);
	if (fe_starttls(s) < 0)
		fe_close(s);
}

static bool imap_refuse_plaintext(struct fe_session *s, const char *tag, bool sasl)
{
	if (fe_plaintext_allowed(s, sasl))
		return false;
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
		"login refused: plaintext credentials on an unencrypted connection");
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

static void imap_cmd_login(struct fe_session *s, const char *tag, struct imap_args *a)
{
	char user[FE_SASL_MAX_FIELD + 1], password[FE_SASL_MAX_FIELD + 1];
	if (imap_next_astring(a, user, sizeof(user)) != 1 ||
	    imap_next_astring(a, password, sizeof(password)) != 1 || a->p != a->end) {
		imap_send(s, "%s BAD Usage: LOGIN user password", tag);
		fe_bad_command(s);
		return;
	}
	if (!imap_refuse_plaintext(s, tag, false))
		imap_start_auth(s, tag, user, password);
	memset(password, 0, sizeof(password));
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

static void imap_cmd_authenticate(struct fe_session *s, const char *tag, struct imap_args *a)
{
	char mech_name[32], initial[3 * FE_SASL_MAX_FIELD];
	if (imap_next_astring(a, mech_name, sizeof(mech_name)) != 1) {
		imap_send(s, "%s BAD Usage: AUTHENTICATE mechanism [initial-response]", tag);
		fe_bad_command(s);
		return;
	}
	int has_initial = imap_next_astring(a, initial, sizeof(initial));
	if (has_initial < 0 || a->p != a->end) {
		imap_send(s, "%s BAD Usage: AUTHENTICATE mechanism [initial-response]", tag);
		fe_bad_command(s);
		return;
	}
	enum fe_sasl_mech mech = fe_sasl_mech_parse(mech_name);
	if (mech == FE_SASL_NONE || (mech == FE_SASL_SCRAM_SHA_256 && !s->fe->offer_scram)) {
		imap_send(s, "%s NO Unsupported authentication mechanism", tag);
		return;
	}
	if (imap_refuse_plaintext(s, tag, true))
		return;
	snprintf(s->imap_tag, sizeof(s->imap_tag), "%s", tag);
	const char *challenge = NULL, *error = NULL;
	enum fe_sasl_result r =
		fe_sasl_start(&s->sasl, mech, has_initial == 1 ? initial : NULL, &challenge, &error);
	imap_sasl_result(s, r, challenge, error);
}

static const struct {
	const char *name;
	void (*run)(struct fe_session *s, const char *tag, struct imap_args *a);
} imap_commands[] = {
	{"CAPABILITY", imap_cmd_capability}, {"NOOP", imap_cmd_noop},
	{"LOGOUT", imap_cmd_logout},	     {"ID", imap_cmd_id},
	{"STARTTLS", imap_cmd_starttls},     {"LOGIN", imap_cmd_login},
	{"AUTHENTICATE", imap_cmd_authenticate},
};

static void imap_cmd_reset(struct fe_session *s)
{
	s->imap_cmd_len = 0;
}

static void imap_execute(struct fe_session *s)
{
	const char *p = s->imap_cmd;
	const char *end = s->imap_cmd + s->imap_cmd_len;
	char tag[64], name[32];
	size_t n = 0;
	while (p < end && imap_atom_char((unsigned char)*p) && *p != '+' && n + 1 < sizeof(tag))
		tag[n++] = *p++;
	tag[n] = '\0';
	if (n == 0 || p == end || *p != ' ') {
		imap_send(s, "* BAD Missing or invalid tag");
		fe_bad_command(s);
		return;
	}
	p++;
	n = 0;
	while (p < end && imap_atom_char((unsigned char)*p) && n + 1 < sizeof(name))
		name[n++] = *p++;
	name[n] = '\0';
	if (n == 0 || (p < end && *p != ' ')) {
		imap_send(s, "%s BAD Missing or invalid command", tag);
		fe_bad_command(s);
		return;
	}
	struct imap_args args = {p, end};
	for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++) {
		if (strcasecmp(name, imap_commands[i].name) == 0) {
			imap_commands[i].run(s, tag, &args);
			return;
		}
	}
	imap_send(s, "%s BAD Unknown command or not allowed before login: %s", tag, name);
	fe_bad_command(s);
}

static void imap_cmd_append(struct fe_session *s, const void *data, size_t len)
{
	if (s->imap_cmd_len + len + 1 > s->imap_cmd_cap) {
		s->imap_cmd_cap = s->imap_cmd_len + len + 256;
		s->imap_cmd = xrealloc(s->imap_cmd, s->imap_cmd_cap);
	}
	memcpy(s->imap_cmd + s->imap_cmd_len, data, len);
	s->imap_cmd_len += len;
	s->imap_cmd[s->imap_cmd_len] = '\0';
}

/* "{123}" or "{123+}" at the end of a line: its length, or -1 */
static long imap_line_literal(const char *line, size_t len, bool *sync_r)
{
	if (len < 3 || line[len - 1] != '}')
		return -1;
	size_t i = len - 1;
	*sync_r = true;
	if (line[i - 1] == '+') {
		*sync_r = false;
		i--;
	}
	size_t digits_end = i;
	while (i > 0 && isdigit((unsigned char)line[i - 1]))
		i--;
	if (i == 0 || line[i - 1] != '{' || i == digits_end || digits_end - i > 9)
		return -1;
	return strtol(line + i, NULL, 10);
}

static void imap_line(struct fe_session *s, char *line, size_t len)
{
	if (fe_sasl_active(&s->sasl)) {
		const char *challenge = NULL, *error = NULL;
		enum fe_sasl_result r = fe_sasl_step(&s->sasl, line, &challenge, &error);
		imap_sasl_result(s, r, challenge, error);
		return;
	}
	/* a command with its literals stays within max-command-size */
	if (s->imap_cmd_len + len + 2 > s->fe->max_command_size) {
		imap_cmd_reset(s);
		imap_send(s, "* BAD Command too long (max-command-size is %u bytes)",
			  s->fe->max_command_size);
		fe_bad_command(s);
		return;
	}
	imap_cmd_append(s, line, len);
	bool sync;
	long literal = imap_line_literal(line, len, &sync);
	if (literal < 0) {
		imap_execute(s);
		imap_cmd_reset(s);
		return;
	}
	if ((size_t)literal + s->imap_cmd_len + 2 > s->fe->max_command_size) {
		imap_cmd_reset(s);
		if (!sync) {
			/* the client sends it anyway: the stream cannot be resynchronised */
			imap_send(s, "* BYE Literal too large before login");
			fe_close(s);
			return;
		}
		imap_send(s, "* BAD Literal too large before login");
		fe_bad_command(s);
		return;
	}
	imap_cmd_append(s, "\r\n", 2);
	if (sync)
		imap_send(s, "+ Ready for literal data");
	if (literal > 0)
		conn_read_raw(s->conn, (size_t)literal);
}

static void imap_raw(struct fe_session *s, const unsigned char *data, size_t len,
		     size_t remaining)
{
	(void)remaining;
	imap_cmd_append(s, data, len);
}

static void imap_line_too_long(struct fe_session *s)
{
	imap_cmd_reset(s);
	fe_sasl_reset(&s->sasl);
	imap_send(s, "* BAD Command line too long (max-command-size is %u bytes)",
		  s->fe->max_command_size);
	fe_bad_command(s);
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
