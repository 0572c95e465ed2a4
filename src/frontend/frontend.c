#include "frontend/frontend.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "frontend/frontend_private.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/net_addr.h"
#include "lib/protolog.h"
#include "lib/worker.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "net/conn_limits.h"
#include "net/net.h"
#include "net/tls.h"

/* time allowed for sessions to take their goodbye at shutdown */
#define FE_SHUTDOWN_GRACE_MS 3000
/* time allowed to reach a back end */
#define FE_BACKEND_CONNECT_TIMEOUT_S 10

/* ---- settings ---- */

static unsigned fe_setting_count(struct worker *w, const char *key)
{
	long long n = worker_setting_int(w, key, 0);
	return n < 0 ? 0 : n > 0x7fffffff ? 0x7fffffff : (unsigned)n;
}

static void fe_load_settings(struct frontend *fe)
{
	struct worker *w = fe->worker;
	const char *lt = worker_setting(w, "login-type");
	if (lt != NULL && strcmp(lt, "plain-text-login") == 0)
		fe->login_type = FE_LOGIN_PLAIN_TEXT_LOGIN;
	else if (lt != NULL && strcmp(lt, "plain-text-authentication") == 0)
		fe->login_type = FE_LOGIN_PLAIN_TEXT_AUTHENTICATION;
	else
		fe->login_type = FE_LOGIN_SECURE;
	fe->max_connections = fe_setting_count(w, "max-connections");
	fe->max_connections_per_ip = fe_setting_count(w, "max-connections-from-single-ip");
	fe->max_connections_per_user = fe_setting_count(w, "max-connections-per-user");
	unsigned timeout = fe_setting_count(w, "pre-authenticated-connection-timeout");
	fe->pre_auth_timeout_ms = (timeout == 0 ? 60 : timeout) * 1000;
	fe->max_command_size = fe_setting_count(w, "max-command-size");
	if (fe->max_command_size == 0)
		fe->max_command_size = 512;
	fe->failure_delay_s = (unsigned)worker_setting_int(w, "authentication-failure-delay", 2);
	const char *literals = worker_setting(w, "non-synchronizing-literals");
	fe->literal_minus = literals != NULL && strcasecmp(literals, "literal-minus") == 0;
	fe->offer_scram = worker_setting_bool(w, "sasl-scram-sha-256", true);
	timeout = fe_setting_count(w, "authenticated-connection-timeout");
	fe->auth_timeout_ms = (timeout == 0 ? 1800 : timeout) * 1000;
	protolog_enable(fe->protolog, worker_setting_bool(w, "protocol-log-enabled", false));
	net_cidr_list_replace("proxy-protocol-trusted", worker_setting(w, "proxy-protocol-trusted"),
			      &fe->proxy_trusted, &fe->proxy_trusted_count);
	net_cidr_list_replace("trusted-networks", worker_setting(w, "trusted-networks"),
			      &fe->trusted, &fe->trusted_count);
}

static int fe_load_tls(struct frontend *fe, char **error_r)
{
	return tls_server_load_settings(fe->worker, &fe->tls, error_r);
}

/* ---- sessions ---- */

void fe_session_free(struct fe_session *s)
{
	struct frontend *fe = s->fe;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		fe->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	fe->nsessions--;
	metrics_connection_closed();
	if (s->counted_total)
		conn_limits_remove_total(fe->limits);
	if (s->counted_ip)
		conn_limits_remove_ip(fe->limits, (struct sockaddr *)&s->peer);
	if (s->counted_user)
		conn_limits_remove_user(fe->limits, s->user);
	fe_relay_release(s);
	if (fe->proto->session_free != NULL)
		fe->proto->session_free(s);
	fe_sasl_reset(&s->sasl);
	free(s->user);
	free(s->pop3_user);
	conn_free(&s->conn);
	free(s);
	if (fe->shutting_down && fe->nsessions == 0)
		worker_shutdown_done(fe->worker);
}

static void fe_cb_ready(struct conn *conn, void *ctx)
{
	(void)conn;
	struct fe_session *s = ctx;
	struct frontend *fe = s->fe;
	socklen_t len;
	const struct sockaddr *peer = conn_peer_sockaddr(s->conn, &len);
	if (len <= sizeof(s->peer)) {
		memcpy(&s->peer, peer, len);
		s->peer_len = len;
	}
	if (!s->counted_total) {
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "refused: max-connections (%u) reached",
			fe->max_connections);
		fe->proto->refuse_connection(s, "Too many connections to this server");
		fe_close(s);
		return;
	}
	/* the per-address count uses the real client address (after PROXY) */
	if (conn_limits_try_add_ip(fe->limits, (struct sockaddr *)&s->peer,
				   fe->max_connections_per_ip) == 0) {
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
			"refused: max-connections-from-single-ip (%u) reached",
			fe->max_connections_per_ip);
		fe->proto->refuse_connection(s, "Too many connections from your address");
		fe_close(s);
		return;
	}
	s->counted_ip = true;
	log_msg(LOG_LEVEL_DEBUG, conn_log(s->conn), "connected on %s%s", conn_local(s->conn),
		conn_tls_active(s->conn) ? " (TLS)" : "");
	fe->proto->greet(s);
}

static void fe_cb_line(struct conn *conn, char *line, size_t len, void *ctx)
{
	(void)conn;
	struct fe_session *s = ctx;
	if (s->closing)
		return;
	fe_log_client(s, line, len);
	s->fe->proto->line(s, line, len);
}

void fe_log_client(struct fe_session *s, const char *line, size_t len)
{
	if (!protolog_enabled(s->fe->protolog))
		return;
	char masked[600];
	if (s->fe->proto->log_mask != NULL && strlen(line) == len) {
		s->fe->proto->log_mask(s, line, masked, sizeof(masked));
		protolog_line(s->fe->protolog, conn_session_id(s->conn), conn_peer(s->conn), 'C',
			      masked, strlen(masked));
	} else {
		protolog_line(s->fe->protolog, conn_session_id(s->conn), conn_peer(s->conn), 'C',
			      line, len);
	}
}

void fe_log_server(struct fe_session *s, const char *text, size_t len)
{
	if (protolog_enabled(s->fe->protolog))
		protolog_line(s->fe->protolog, conn_session_id(s->conn), conn_peer(s->conn), 'S',
			      text, len);
}

static void fe_cb_line_too_long(struct conn *conn, void *ctx)
{
	(void)conn;
	struct fe_session *s = ctx;
	if (!s->closing)
		s->fe->proto->line_too_long(s);
}

static void fe_cb_raw(struct conn *conn, const unsigned char *data, size_t len,
		      size_t remaining, void *ctx)
{
	(void)conn;
	struct fe_session *s = ctx;
	if (!s->closing && s->fe->proto->raw != NULL)
		s->fe->proto->raw(s, data, len, remaining);
}

static void fe_cb_timeout(struct conn *conn, void *ctx)
{
	(void)conn;
	struct fe_session *s = ctx;
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "idle timeout before login");
	s->fe->proto->goodbye(s, "Idle timeout, closing connection");
}

void fe_session_client_closed(struct conn *conn, enum conn_close_reason reason,
			      const char *detail, void *ctx)
{
	struct fe_session *s = ctx;
	log_msg(LOG_LEVEL_DEBUG, conn_log(conn), "disconnected (%s%s%s)",
		conn_close_reason_str(reason), *detail ? ": " : "", detail);
	s->client_closed = true;
	/* what the client sent last (a QUIT) still reaches the back end */
	if (fe_relay_client_closed(s))
		return;
	fe_session_free(s);
}

static const struct conn_callbacks fe_conn_callbacks = {
	.ready = fe_cb_ready,
	.line = fe_cb_line,
	.line_too_long = fe_cb_line_too_long,
	.raw = fe_cb_raw,
	.timeout = fe_cb_timeout,
	.closed = fe_session_client_closed,
};

static void fe_accepted(struct worker *w, int fd, const struct sockaddr *peer,
			socklen_t peer_len, bool implicit_tls, const char *local)
{
	(void)local;
	struct frontend *fe = worker_context(w);
	if (fe->tls != NULL)
		tls_server_maybe_reload(fe->tls, time(NULL));
	if (implicit_tls && fe->tls == NULL) {
		close(fd);
		return;
	}
	struct fe_session *s = xcalloc(1, sizeof(*s));
	s->fe = fe;
	s->backend_fd = -1;
	if (peer_len <= sizeof(s->peer)) {
		memcpy(&s->peer, peer, peer_len);
		s->peer_len = peer_len;
	}
	fe_sasl_reset(&s->sasl);
	struct conn_settings set = {
		.service = fe->proto->name,
		.tls_ctx = implicit_tls ? tls_server_ctx(fe->tls) : NULL,
		.proxy_trusted = fe->proxy_trusted,
		.proxy_trusted_count = fe->proxy_trusted_count,
		.max_line = fe->max_command_size,
		.idle_timeout_ms = fe->pre_auth_timeout_ms,
	};
	char *error = NULL;
	s->conn = conn_new(worker_event_base(w), fd, &set, &fe_conn_callbacks, s, &error);
	if (s->conn == NULL) {
		log_error("cannot set up a connection: %s", error);
		free(error);
		free(s);
		return;
	}
	s->next = fe->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	fe->sessions = s;
	fe->nsessions++;
	metrics_connection_opened();
	/* over the service's limit: the client still gets a refusal in its
	 * protocol once the connection is set up (ready) */
	s->counted_total = conn_limits_try_add_total(fe->limits, fe->max_connections) == 1;
}

/* ---- policy and helpers for the protocols ---- */

bool fe_session_secured(const struct fe_session *s)
{
	return conn_tls_active(s->conn);
}

bool fe_plaintext_allowed(const struct fe_session *s, bool sasl)
{
	if (fe_session_secured(s))
		return true;
	switch (s->fe->login_type) {
	case FE_LOGIN_PLAIN_TEXT_LOGIN:
		return true;
	case FE_LOGIN_PLAIN_TEXT_AUTHENTICATION:
		return !sasl;
	case FE_LOGIN_SECURE:
		return false;
	}
	return false;
}

const char *fe_banner(const struct fe_session *s)
{
	const char *b = worker_setting(s->fe->worker, "banner");
	return b != NULL && *b != '\0' ? b : "postern ready.";
}

/* A login request to authd: the fields every one carries, and extra. */
static int fe_authd_ask(struct fe_session *s, int type, const struct ipc_field *extra,
			size_t nextra)
{
	struct frontend *fe = s->fe;
	if (++fe->next_auth_id == 0)
		fe->next_auth_id = 1;
	s->auth_id = fe->next_auth_id;
	char id[16], delay[16];
	snprintf(id, sizeof(id), "%u", s->auth_id);
	snprintf(delay, sizeof(delay), "%u", fe->failure_delay_s);
	bool trusted = net_cidr_match(fe->trusted, fe->trusted_count, (struct sockaddr *)&s->peer);
	struct ipc_field f[8] = {
		{"id", id},
		{"service", fe->proto->name},
		{"peer", conn_peer(s->conn)},
		{"secured", fe_session_secured(s) ? "yes" : "no"},
		{"tarpit", trusted ? "no" : "yes"},
		{"failure-delay", delay},
	};
	size_t n = 6;
	for (size_t i = 0; i < nextra && n < sizeof(f) / sizeof(f[0]); i++)
		f[n++] = extra[i];
	if (worker_authd_send(fe->worker, type, f, (unsigned)n) < 0) {
		s->auth_id = 0;
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "authd unreachable");
		metrics_login(METRICS_LOGIN_TEMPFAIL);
		return -1;
	}
	/* nothing more is read until the verdict: pipelined commands wait */
	conn_input_pause(s->conn);
	return 0;
}

int fe_auth_request(struct fe_session *s, const char *user, const char *password)
{
	struct ipc_field f[] = {{"user", user}, {"password", password}};
	return fe_authd_ask(s, IPC_AUTH_REQUEST, f, 2);
}

int fe_sasl_authd_send(struct fe_session *s)
{
	struct ipc_field f[2];
	size_t n;
	int type = fe_sasl_authd_request(&s->sasl, f, &n);
	if (type < 0 || fe_authd_ask(s, type, f, n) < 0) {
		fe_sasl_reset(&s->sasl);
		return -1;
	}
	return 0;
}

bool fe_auth_failed(struct fe_session *s)
{
	return ++s->auth_failures >= FE_MAX_AUTH_FAILURES;
}

bool fe_bad_command(struct fe_session *s)
{
	if (++s->bad_commands < FE_MAX_BAD_COMMANDS)
		return false;
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "too many bad commands; disconnecting");
	s->fe->proto->goodbye(s, "Too many invalid commands");
	fe_close(s);
	return true;
}

int fe_starttls(struct fe_session *s)
{
	const char *error;
	if (s->fe->tls == NULL)
		return -1;
	if (conn_starttls(s->conn, tls_server_ctx(s->fe->tls), &error) < 0) {
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "STARTTLS: %s", error);
		return -1;
	}
	return 0;
}

void fe_close(struct fe_session *s)
{
	s->closing = true;
	conn_close_after_flush(s->conn);
}

static void fe_authd_reply(struct worker *w, const struct ipc_msg *msg)
{
	struct frontend *fe = worker_context(w);
	const char *id_text = ipc_msg_get(msg, "id");
	unsigned id = id_text != NULL ? (unsigned)strtoul(id_text, NULL, 10) : 0;
	if (id == 0)
		return;
	for (struct fe_session *s = fe->sessions; s != NULL; s = s->next) {
		if (s->auth_id != id)
			continue;
		s->auth_id = 0;
		metrics_login_authd_failure(ipc_msg_get(msg, "result"), ipc_msg_get(msg, "cause"));
		if (s->closing)
			return;
		conn_input_resume(s->conn);
		if (fe_sasl_awaiting_authd(&s->sasl)) {
			/* a step of a SCRAM exchange: the next challenge, or
			 * the verdict */
			const char *challenge = NULL;
			if (fe_sasl_authd_reply(&s->sasl, msg, &challenge) == FE_SASL_CHALLENGE) {
				fe->proto->sasl_result(s, FE_SASL_CHALLENGE, challenge, NULL);
				return;
			}
		}
		fe->proto->auth_result(s, msg);
		return;
	}
	/* the session left while authd was deciding */
}

/* ---- worker hooks ---- */

static int fe_init(struct worker *w, const struct fe_protocol *proto, char **error_r)
{
	struct frontend *fe = xcalloc(1, sizeof(*fe));
	fe->worker = w;
	fe->proto = proto;
	fe->limits = conn_limits_new();
	fe->protolog = protolog_new(worker_datadir(w), proto->name);
	worker_set_context(w, fe);
	fe_load_settings(fe);
	if (fe_load_tls(fe, error_r) < 0)
		return -1;
	return 0;
}

static void fe_settings_changed(struct worker *w)
{
	struct frontend *fe = worker_context(w);
	fe_load_settings(fe);
	char *error = NULL;
	/* a new certificate path takes effect for new connections */
	if (fe_load_tls(fe, &error) < 0) {
		log_error("keeping the old certificate: %s", error);
		free(error);
	}
}

static void fe_shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct frontend *fe = arg;
	worker_shutdown_done(fe->worker);
}

static void fe_shutdown(struct worker *w)
{
	struct frontend *fe = worker_context(w);
	fe->shutting_down = true;
	if (fe->nsessions == 0)
		worker_shutdown_done(w);
	for (struct fe_session *s = fe->sessions; s != NULL; s = s->next) {
		if (s->closing)
			continue;
		fe->proto->goodbye(s, "Server shutting down");
		fe_close(s);
	}
	fe->shutdown_ev = event_new(worker_event_base(w), -1, 0, fe_shutdown_timeout_cb, fe);
	struct timeval tv = {FE_SHUTDOWN_GRACE_MS / 1000, (FE_SHUTDOWN_GRACE_MS % 1000) * 1000};
	event_add(fe->shutdown_ev, &tv);
}

static void fe_kick(struct worker *w, const char *user)
{
	struct frontend *fe = worker_context(w);
	for (struct fe_session *s = fe->sessions; s != NULL; s = s->next) {
		if (s->user == NULL || strcasecmp(s->user, user) != 0 || s->client_closed)
			continue;
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "user=%s: session ended by the administrator",
			s->user);
		/* both ends go now; what is queued is flushed */
		if (s->backend != NULL)
			conn_close_after_flush(s->backend);
		fe_close(s);
	}
}

static unsigned fe_connection_count(struct worker *w)
{
	struct frontend *fe = worker_context(w);
	return fe != NULL ? fe->nsessions : 0;
}

extern const struct fe_protocol fe_pop3_protocol;
extern const struct fe_protocol fe_imap4_protocol;

static int fe_pop3_init(struct worker *w, char **error_r)
{
	return fe_init(w, &fe_pop3_protocol, error_r);
}

static int fe_imap4_init(struct worker *w, char **error_r)
{
	return fe_init(w, &fe_imap4_protocol, error_r);
}

const struct worker_service_ops pop3_frontend_ops = {
	.name = "pop3",
	.init = fe_pop3_init,
	.settings_changed = fe_settings_changed,
	.accepted = fe_accepted,
	.authd_reply = fe_authd_reply,
	.shutdown = fe_shutdown,
	.kick = fe_kick,
	.connection_count = fe_connection_count,
};

const struct worker_service_ops imap4_frontend_ops = {
	.name = "imap4",
	.init = fe_imap4_init,
	.settings_changed = fe_settings_changed,
	.accepted = fe_accepted,
	.authd_reply = fe_authd_reply,
	.shutdown = fe_shutdown,
	.kick = fe_kick,
	.connection_count = fe_connection_count,
};
