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

/* POP3 before login (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH,
 * RFC 3206 response codes). After login the session belongs to the back
 * end. */

static void pop3_reply(struct fe_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void pop3_reply(struct fe_session *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	conn_write(s->conn, line, len);
	conn_write(s->conn, "\r\n", 2);
	fe_log_server(s, line, len);
}

static void pop3_greet(struct fe_session *s)
{
	pop3_reply(s, "+OK %s", fe_banner(s));
}

static bool pop3_can_starttls(const struct fe_session *s)
{
	return !fe_session_secured(s) && s->fe->tls != NULL;
}

static void pop3_cmd_capa(struct fe_session *s, char *args)
{
	(void)args;
	conn_printf(s->conn, "+OK Capability list follows\r\n");
	if (fe_plaintext_allowed(s, false))
		conn_printf(s->conn, "USER\r\n");
	if (fe_plaintext_allowed(s, true))
		conn_printf(s->conn, "SASL PLAIN LOGIN%s\r\n",
			    s->fe->offer_scram ? " SCRAM-SHA-256" : "");
	if (pop3_can_starttls(s))
		conn_printf(s->conn, "STLS\r\n");
	conn_printf(s->conn, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
			     "IMPLEMENTATION postern\r\n.\r\n");
}

static void pop3_cmd_stls(struct fe_session *s, char *args)
{
	(void)args;
	if (fe_session_secured(s)) {
		pop3_reply(s, "-ERR TLS is already active");
		return;
	}
	if (s->fe->tls == NULL) {
		pop3_reply(s, "-ERR [SYS/PERM] TLS is not configured");
		return;
	}
	pop3_reply(s, "+OK Begin TLS negotiation");
	/* a fresh start on the encrypted channel (RFC 2595 section 4) */
	free(s->pop3_user);
	s->pop3_user = NULL;
	if (fe_starttls(s) < 0)
		fe_close(s);
}

static bool pop3_refuse_plaintext(struct fe_session *s, bool sasl)
{
	if (fe_plaintext_allowed(s, sasl))
		return false;
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
		"login refused: plaintext credentials on an unencrypted connection");
	pop3_reply(s, "-ERR [AUTH] Plaintext authentication is disallowed on unencrypted "
		      "connections; use STLS or the TLS port");
	return true;
}

static void pop3_cmd_user(struct fe_session *s, char *args)
{
	if (pop3_refuse_plaintext(s, false))
		return;
	if (args == NULL || *args == '\0' || strlen(args) > FE_SASL_MAX_FIELD) {
		pop3_reply(s, "-ERR Usage: USER name");
		fe_bad_command(s);
		return;
	}
	free(s->pop3_user);
	s->pop3_user = xstrdup(args);
	pop3_reply(s, "+OK");
}

static void pop3_start_auth(struct fe_session *s, const char *user, const char *password)
{
	if (fe_auth_request(s, user, password) < 0)
		pop3_reply(s, "-ERR [SYS/TEMP] Authentication is temporarily unavailable");
}

static void pop3_cmd_pass(struct fe_session *s, char *args)
{
	if (pop3_refuse_plaintext(s, false)) {
		metrics_login(METRICS_LOGIN_LOGIN_TYPE);
		return;
	}
	if (s->pop3_user == NULL) {
		pop3_reply(s, "-ERR No user name given; send USER first");
		fe_bad_command(s);
		return;
	}
	if (args == NULL || strlen(args) > FE_SASL_MAX_FIELD) {
		pop3_reply(s, "-ERR Usage: PASS password");
		fe_bad_command(s);
		return;
	}
	char *user = s->pop3_user;
	s->pop3_user = NULL;
	pop3_start_auth(s, user, args);
	free(user);
}

static void pop3_sasl_result(struct fe_session *s, enum fe_sasl_result r, const char *challenge,
			     const char *error)
{
	switch (r) {
	case FE_SASL_AUTHD:
		if (fe_sasl_authd_send(s) < 0)
			pop3_reply(s, "-ERR [SYS/TEMP] Authentication is temporarily unavailable");
		break;
	case FE_SASL_VERDICT:
		break; /* authd's answers reach pop3_auth_result */
	case FE_SASL_CHALLENGE:
		pop3_reply(s, "+ %s", challenge);
		break;
	case FE_SASL_DONE:
		pop3_start_auth(s, s->sasl.user, s->sasl.password);
		fe_sasl_reset(&s->sasl);
		break;
	case FE_SASL_CANCEL:
		pop3_reply(s, "-ERR Authentication cancelled");
		break;
	case FE_SASL_ERROR:
		pop3_reply(s, "-ERR %s", error);
		fe_bad_command(s);
		break;
	}
}

static void pop3_cmd_auth(struct fe_session *s, char *args)
{
	if (args == NULL || *args == '\0') {
		/* the pre-RFC 5034 listing some clients still send */
		conn_printf(s->conn, "+OK\r\n");
		if (fe_plaintext_allowed(s, true))
			conn_printf(s->conn, "PLAIN\r\nLOGIN\r\n%s",
				    s->fe->offer_scram ? "SCRAM-SHA-256\r\n" : "");
		conn_printf(s->conn, ".\r\n");
		return;
	}
	char *initial = strchr(args, ' ');
	if (initial != NULL)
		*initial++ = '\0';
	enum fe_sasl_mech mech = fe_sasl_mech_parse(args);
	if (mech == FE_SASL_NONE || (mech == FE_SASL_SCRAM_SHA_256 && !s->fe->offer_scram)) {
		pop3_reply(s, "-ERR Unsupported authentication mechanism");
		fe_bad_command(s);
		return;
	}
	if (pop3_refuse_plaintext(s, true)) {
		metrics_login(METRICS_LOGIN_LOGIN_TYPE);
		return;
	}
	const char *challenge = NULL, *error = NULL;
	enum fe_sasl_result r = fe_sasl_start(&s->sasl, mech, initial, &challenge, &error);
	pop3_sasl_result(s, r, challenge, error);
}

static void pop3_cmd_quit(struct fe_session *s, char *args)
{
	(void)args;
	pop3_reply(s, "+OK Logging out");
	fe_close(s);
}

static const struct {
	const char *name;
	void (*run)(struct fe_session *s, char *args);
} pop3_commands[] = {
	{"CAPA", pop3_cmd_capa}, {"STLS", pop3_cmd_stls}, {"USER", pop3_cmd_user},
	{"PASS", pop3_cmd_pass}, {"AUTH", pop3_cmd_auth}, {"QUIT", pop3_cmd_quit},
};

static void pop3_line(struct fe_session *s, char *line, size_t len)
{
	if (strlen(line) != len) {
		pop3_reply(s, "-ERR NUL bytes are not allowed");
		fe_bad_command(s);
		return;
	}
	if (fe_sasl_active(&s->sasl)) {
		const char *challenge = NULL, *error = NULL;
		enum fe_sasl_result r = fe_sasl_step(&s->sasl, line, &challenge, &error);
		pop3_sasl_result(s, r, challenge, error);
		return;
	}
	char *args = strchr(line, ' ');
	if (args != NULL)
		*args++ = '\0';
	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++) {
		if (strcasecmp(line, pop3_commands[i].name) == 0) {
			pop3_commands[i].run(s, args);
			return;
		}
	}
	pop3_reply(s, "-ERR Unknown command or not allowed before login");
	fe_bad_command(s);
}

static void pop3_line_too_long(struct fe_session *s)
{
	fe_sasl_reset(&s->sasl);
	pop3_reply(s, "-ERR Command line too long (max-command-size is %u bytes)",
		   s->fe->max_command_size);
	fe_bad_command(s);
}

static void pop3_auth_result(struct fe_session *s, const struct ipc_msg *msg)
{
	const char *result = ipc_msg_get(msg, "result");
	const char *reason = ipc_msg_get(msg, "reason");
	if (result != NULL && strcmp(result, "ok") == 0) {
		fe_login_succeeded(s, msg);
		return;
	}
	if (result != NULL && strcmp(result, "refused") == 0) {
		pop3_reply(s, "-ERR [AUTH] Access denied: %s", reason != NULL ? reason : "");
	} else if (result != NULL && strcmp(result, "tempfail") == 0) {
		pop3_reply(s, "-ERR [SYS/TEMP] Authentication is temporarily unavailable");
		return;
	} else {
		pop3_reply(s, "-ERR [AUTH] Authentication failed");
	}
	if (fe_auth_failed(s)) {
		pop3_reply(s, "-ERR Too many failed logins, closing connection");
		fe_close(s);
	}
}

static void pop3_login_unavailable(struct fe_session *s, bool limit, const char *text)
{
	pop3_reply(s, "-ERR [%s] %s", limit ? "IN-USE" : "SYS/TEMP", text);
}

static void pop3_goodbye(struct fe_session *s, const char *text)
{
	pop3_reply(s, "-ERR %s", text);
}

static void pop3_refuse_connection(struct fe_session *s, const char *text)
{
	pop3_reply(s, "-ERR [SYS/TEMP] %s", text);
}

static bool pop3_backend_greeting_ok(const char *line)
{
	return strncmp(line, "+OK", 3) == 0;
}

static void pop3_backend_login(struct fe_session *s, struct conn *backend)
{
	conn_printf(backend, "XLOGIN %s %s %s %s\r\n", s->user, conn_peer(s->conn),
		    s->ticket_expiry, s->ticket_mac);
}

static int pop3_backend_login_reply(struct fe_session *s, const char *line)
{
	if (strncmp(line, "+OK", 3) != 0)
		return -1;
	pop3_reply(s, "%s", line);
	return 1;
}

/* PASS, AUTH data and SASL responses never reach the protocol log */
static void pop3_log_mask(struct fe_session *s, const char *line, char *out, size_t size)
{
	if (fe_sasl_active(&s->sasl))
		snprintf(out, size, "*");
	else if (strncasecmp(line, "PASS ", 5) == 0)
		snprintf(out, size, "PASS *");
	else if (strncasecmp(line, "AUTH ", 5) == 0 && strchr(line + 5, ' ') != NULL)
		snprintf(out, size, "%.*s *", (int)(strchr(line + 5, ' ') - line), line);
	else
		snprintf(out, size, "%s", line);
}

const struct fe_protocol fe_pop3_protocol = {
	.name = "pop3",
	.display = "POP3",
	.greet = pop3_greet,
	.line = pop3_line,
	.line_too_long = pop3_line_too_long,
	.auth_result = pop3_auth_result,
	.sasl_result = pop3_sasl_result,
	.goodbye = pop3_goodbye,
	.refuse_connection = pop3_refuse_connection,
	.login_unavailable = pop3_login_unavailable,
	.log_mask = pop3_log_mask,
	.backend_greeting_ok = pop3_backend_greeting_ok,
	.backend_login = pop3_backend_login,
	.backend_login_reply = pop3_backend_login_reply,
};
