#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xalloc.h"
#include "net/cidr.h"
#include "net/conn.h"
#include "net/conn_limits.h"
#include "proto/smtp/smtp_server.h"
#include "submitd/submitd_private.h"

/* AUTH (RFC 4954) with the front end's SASL exchange (PLAIN, LOGIN,
 * SCRAM-SHA-256) and authd's verdict, as the front ends get it:
 * service=submission, the failure delay and tarpit applied by authd. */

static void sa_finish(struct submit_session *s, int verdict)
{
	fe_sasl_reset(&s->sasl);
	smtp_server_auth_lines(s->srv, false);
	smtp_server_complete(s->srv, verdict);
}

/* A login request to authd: the fields every one carries, and extra. */
static void sa_ask(struct submit_session *s, int type, const struct ipc_field *extra,
		   size_t nextra)
{
	struct submitd *sd = s->sd;
	char delay[16];
	snprintf(delay, sizeof(delay), "%u", sd->failure_delay_s);
	bool trusted = net_cidr_match(sd->trusted, sd->trusted_count, (struct sockaddr *)&s->peer);
	struct ipc_field f[8] = {
	    {"id", ""},
	    {"service", "submission"},
	    {"peer", conn_peer(s->conn)},
	    {"secured", conn_tls_active(s->conn) ? "yes" : "no"},
	    {"tarpit", trusted ? "no" : "yes"},
	    {"failure-delay", delay},
	};
	size_t n = 6;
	for (size_t i = 0; i < nextra && n < sizeof(f) / sizeof(f[0]); i++)
		f[n++] = extra[i];
	/* no SASL line is read while authd decides */
	smtp_server_auth_lines(s->srv, false);
	s->auth_id = submitd_authd_send(s, type, f, (unsigned)n);
}

/* Credentials are known: ask authd. */
static void sa_verify(struct submit_session *s)
{
	struct ipc_field f[] = {{"user", s->sasl.user}, {"password", s->sasl.password}};
	sa_ask(s, IPC_AUTH_REQUEST, f, 2);
	fe_sasl_reset(&s->sasl);
	if (s->auth_id == 0) {
		metrics_login(METRICS_LOGIN_TEMPFAIL);
		smtp_server_reply(s->srv, 454, "4.7.0", "Temporary authentication failure");
		sa_finish(s, -1);
	}
}

/* A SCRAM-SHA-256 message for authd. */
static void sa_scram(struct submit_session *s)
{
	struct ipc_field f[2];
	size_t n;
	int type = fe_sasl_authd_request(&s->sasl, f, &n);
	if (type >= 0)
		sa_ask(s, type, f, n);
	if (type < 0 || s->auth_id == 0) {
		smtp_server_reply(s->srv, 454, "4.7.0", "Temporary authentication failure");
		sa_finish(s, -1);
	}
}

/* One step's outcome: challenge, verify, or refuse. Returns the engine's
 * verdict for the callback (0 pending, -1 refused). */
static int sa_step(struct submit_session *s, enum fe_sasl_result r, const char *challenge,
		   const char *error, bool in_callback)
{
	switch (r) {
	case FE_SASL_CHALLENGE:
		smtp_server_reply(s->srv, 334, NULL, "%s", challenge);
		smtp_server_auth_lines(s->srv, true);
		return 0;
	case FE_SASL_DONE:
		sa_verify(s);
		return 0;
	case FE_SASL_AUTHD:
		sa_scram(s);
		return 0;
	case FE_SASL_VERDICT:
		break; /* authd's answers reach submitd_auth_reply */
	case FE_SASL_CANCEL:
		smtp_server_reply(s->srv, 501, "5.0.0", "Authentication canceled");
		break;
	case FE_SASL_ERROR:
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "AUTH: %s", error);
		smtp_server_reply(s->srv, 501, "5.5.2", "Cannot decode the response: %s", error);
		break;
	}
	if (!in_callback)
		sa_finish(s, -1);
	else
		fe_sasl_reset(&s->sasl);
	return -1;
}

int submitd_auth_start(struct submit_session *s, const char *mechanism, const char *initial)
{
	if (!conn_tls_active(s->conn) && s->sd->login_type != SUBMIT_LOGIN_PLAIN_TEXT_LOGIN) {
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
			"AUTH refused: credentials on an unencrypted connection");
		metrics_login(METRICS_LOGIN_LOGIN_TYPE);
		smtp_server_reply(s->srv, 538, "5.7.11",
				  "Encryption required for requested authentication mechanism");
		return -1;
	}
	enum fe_sasl_mech mech = fe_sasl_mech_parse(mechanism);
	if (mech == FE_SASL_NONE || (mech == FE_SASL_SCRAM_SHA_256 && !s->sd->offer_scram)) {
		smtp_server_reply(s->srv, 504, "5.5.4", "Unrecognized authentication type");
		return -1;
	}
	const char *challenge = "", *error = "";
	enum fe_sasl_result r = fe_sasl_start(&s->sasl, mech, initial, &challenge, &error);
	return sa_step(s, r, challenge, error, true);
}

void submitd_auth_line(struct submit_session *s, const char *line)
{
	const char *challenge = "", *error = "";
	enum fe_sasl_result r = fe_sasl_step(&s->sasl, line, &challenge, &error);
	sa_step(s, r, challenge, error, false);
}

void submitd_auth_timeout(struct submit_session *s)
{
	log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "authd did not answer a login");
	metrics_login(METRICS_LOGIN_TEMPFAIL);
	smtp_server_reply(s->srv, 454, "4.7.0", "Temporary authentication failure");
	sa_finish(s, -1);
}

static void sa_failed(struct submit_session *s)
{
	if (++s->auth_failures < SUBMIT_MAX_AUTH_FAILURES)
		return;
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "too many failed logins; disconnecting");
	smtp_server_reply(s->srv, 421, "4.7.0", "%s Too many failed authentications",
			  s->sd->hostname);
	submitd_close(s);
}

void submitd_auth_reply(struct submit_session *s, const struct ipc_msg *msg)
{
	if (fe_sasl_awaiting_authd(&s->sasl)) {
		/* a step of a SCRAM exchange: the next challenge, or the verdict */
		const char *challenge = NULL;
		if (fe_sasl_authd_reply(&s->sasl, msg, &challenge) == FE_SASL_CHALLENGE) {
			smtp_server_reply(s->srv, 334, NULL, "%s", challenge);
			smtp_server_auth_lines(s->srv, true);
			return;
		}
	}
	const char *result = ipc_msg_get(msg, "result");
	const char *user = ipc_msg_get(msg, "user");
	metrics_login_authd_failure(result, ipc_msg_get(msg, "cause"));
	if (result != NULL && strcmp(result, "ok") == 0 && user != NULL && *user != '\0') {
		struct submitd *sd = s->sd;
		if (conn_limits_try_add_user(sd->limits, user, sd->max_connections_per_user) == 0) {
			log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
				"user=%s: max-connections-per-user (%u) reached", user,
				sd->max_connections_per_user);
			metrics_login(METRICS_LOGIN_LIMIT);
			smtp_server_reply(s->srv, 454, "4.7.0",
					  "Too many connections for this user, try again later");
			sa_finish(s, -1);
			return;
		}
		s->counted_user = true;
		const char *domain = ipc_msg_get(msg, "domain");
		const char *send_as = ipc_msg_get(msg, "send-as");
		const char *lmtp = ipc_msg_get(msg, "backend-address");
		s->user = xstrdup(user);
		s->domain = xstrdup(domain != NULL ? domain : "");
		/* a name with a domain is an address already */
		s->address = strchr(user, '@') != NULL || s->domain[0] == '\0'
				 ? xstrdup(user)
				 : xasprintf("%s@%s", user, s->domain);
		s->send_as = xstrdup(send_as != NULL ? send_as : "");
		s->user_lmtp = xstrdup(lmtp != NULL ? lmtp : "");
		const char *save_sent = ipc_msg_get(msg, "save-sent");
		s->save_sent = xstrdup(save_sent != NULL ? save_sent : "default");
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "login: user=%s address=%s%s", s->user,
			s->address, conn_tls_active(s->conn) ? " (TLS)" : "");
		conn_set_idle_timeout(s->conn, sd->auth_timeout_ms);
		metrics_login(METRICS_LOGIN_OK);
		smtp_server_reply(s->srv, 235, "2.7.0", "Authentication successful");
		sa_finish(s, 1);
		return;
	}
	if (result != NULL && strcmp(result, "refused") == 0) {
		smtp_server_reply(s->srv, 525, "5.7.13",
				  "This account may not send mail through this server");
		sa_finish(s, -1);
		sa_failed(s);
		return;
	}
	if (result != NULL && strcmp(result, "fail") == 0) {
		smtp_server_reply(s->srv, 535, "5.7.8", "Authentication credentials invalid");
		sa_finish(s, -1);
		sa_failed(s);
		return;
	}
	const char *reason = ipc_msg_get(msg, "reason");
	log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "login: authd: %s",
		reason != NULL	 ? reason
		: result != NULL ? result
				 : "?");
	smtp_server_reply(s->srv, 454, "4.7.0", "Temporary authentication failure");
	sa_finish(s, -1);
}
