#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/frontend_private.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/net_addr.h"
#include "lib/worker.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "net/conn_limits.h"
#include "net/net.h"

/* The hand-over: after authd accepted a login, connect to the user's back
 * end, log in there with the one-time ticket, answer the client's login
 * command with the back end's answer, then relay bytes both ways.
 *
 * Back-pressure (STYLE habit 9): when one side's output queue passes its
 * high watermark, reading from the other side stops until it drained to
 * half. Close in order: when one side ends, what it sent is flushed to the
 * other, which is then closed too. */

#define FE_BACKEND_CONNECT_TIMEOUT_S 10
/* the back end must greet and answer the login within this */
#define FE_BACKEND_LOGIN_TIMEOUT_MS 15000
#define FE_BACKEND_MAX_LINE 16384

static void fe_relay_unavailable(struct fe_session *s, const char *why)
{
	log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "back end for %s unavailable: %s", s->user,
		why);
	metrics_login(METRICS_LOGIN_TEMPFAIL);
	if (s->backend != NULL)
		conn_free(&s->backend);
	s->backend_state = FE_BACKEND_NONE;
	if (s->client_closed) {
		fe_session_free(s);
		return;
	}
	conn_input_resume(s->conn);
	s->fe->proto->login_unavailable(s, false, "Mailbox server temporarily unavailable");
}

/* ---- relay callbacks: client side ---- */

static void fe_relay_client_raw(struct conn *conn, const unsigned char *data, size_t len,
				size_t remaining, void *ctx)
{
	(void)conn;
	(void)remaining;
	struct fe_session *s = ctx;
	if (s->backend != NULL)
		conn_write(s->backend, data, len);
}

static void fe_relay_client_pressure(struct conn *conn, bool blocked, void *ctx)
{
	(void)conn;
	struct fe_session *s = ctx;
	if (s->backend == NULL)
		return;
	if (blocked)
		conn_input_pause(s->backend);
	else
		conn_input_resume(s->backend);
}

static void fe_relay_client_timeout(struct conn *conn, void *ctx)
{
	(void)conn;
	struct fe_session *s = ctx;
	/* mid-session the back end owns the dialogue: no goodbye of ours */
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "user=%s idle timeout", s->user);
}

static const struct conn_callbacks fe_relay_client_callbacks = {
	.raw = fe_relay_client_raw,
	.output_pressure = fe_relay_client_pressure,
	.timeout = fe_relay_client_timeout,
	.closed = fe_session_client_closed,
};

/* ---- back-end callbacks ---- */

static void fe_backend_line(struct conn *conn, char *line, size_t len, void *ctx)
{
	(void)conn;
	(void)len;
	struct fe_session *s = ctx;
	const struct fe_protocol *proto = s->fe->proto;
	if (s->backend_state == FE_BACKEND_GREETING) {
		if (!proto->backend_greeting_ok(line)) {
			fe_relay_unavailable(s, "unexpected greeting");
			return;
		}
		s->backend_state = FE_BACKEND_LOGIN;
		proto->backend_login(s, s->backend);
		return;
	}
	if (s->backend_state != FE_BACKEND_LOGIN)
		return;
	int r = proto->backend_login_reply(s, line);
	if (r < 0) {
		char why[300];
		snprintf(why, sizeof(why), "the back end refused the login: %.250s", line);
		fe_relay_unavailable(s, why);
		return;
	}
	if (r == 0)
		return;
	/* logged in: from here on bytes pass through unchanged */
	metrics_login(METRICS_LOGIN_OK);
	s->backend_state = FE_BACKEND_RELAY;
	free(s->ticket_mac);
	s->ticket_mac = NULL;
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "user=%s proxied to %s", s->user,
		conn_peer(s->backend));
	conn_set_callbacks(s->conn, &fe_relay_client_callbacks, s);
	conn_set_idle_timeout(s->backend, CONN_NO_TIMEOUT);
	conn_set_idle_timeout(s->conn, s->fe->auth_timeout_ms);
	conn_read_raw(s->backend, CONN_RAW_UNLIMITED);
	conn_read_raw(s->conn, CONN_RAW_UNLIMITED);
	conn_input_resume(s->conn);
}

static void fe_backend_raw(struct conn *conn, const unsigned char *data, size_t len,
			   size_t remaining, void *ctx)
{
	(void)conn;
	(void)remaining;
	struct fe_session *s = ctx;
	if (!s->client_closed)
		conn_write(s->conn, data, len);
}

static void fe_backend_pressure(struct conn *conn, bool blocked, void *ctx)
{
	(void)conn;
	struct fe_session *s = ctx;
	if (s->client_closed)
		return;
	if (blocked)
		conn_input_pause(s->conn);
	else
		conn_input_resume(s->conn);
}

static void fe_backend_timeout(struct conn *conn, void *ctx)
{
	(void)conn;
	(void)ctx;
	/* only armed during the login dialogue; conn closes, closed follows */
}

static void fe_backend_closed(struct conn *conn, enum conn_close_reason reason,
			      const char *detail, void *ctx)
{
	struct fe_session *s = ctx;
	if (s->backend_state != FE_BACKEND_RELAY) {
		char why[256];
		snprintf(why, sizeof(why), "closed during login (%s%s%s)",
			 conn_close_reason_str(reason), *detail ? ": " : "", detail);
		fe_relay_unavailable(s, why);
		return;
	}
	conn_free(&s->backend);
	s->backend_state = FE_BACKEND_NONE;
	(void)conn;
	if (s->client_closed)
		fe_session_free(s);
	else
		fe_close(s);
}

static const struct conn_callbacks fe_backend_callbacks = {
	.line = fe_backend_line,
	.raw = fe_backend_raw,
	.output_pressure = fe_backend_pressure,
	.timeout = fe_backend_timeout,
	.closed = fe_backend_closed,
};


static void fe_backend_connected_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fe_session *s = arg;
	char *error = NULL;
	event_free(s->backend_ev);
	s->backend_ev = NULL;
	if ((what & EV_TIMEOUT) != 0 || net_connect_finish(fd, &error) != 1) {
		close(s->backend_fd);
		s->backend_fd = -1;
		char *why = error != NULL ? error : xstrdup("connection timed out");
		fe_relay_unavailable(s, why);
		free(why);
		return;
	}
	s->backend_fd = -1;
	struct conn_settings set = {
		.service = s->fe->proto->name,
		.client = true,
		.max_line = FE_BACKEND_MAX_LINE,
		.idle_timeout_ms = FE_BACKEND_LOGIN_TIMEOUT_MS,
	};
	s->backend = conn_new(worker_event_base(s->fe->worker), fd, &set, &fe_backend_callbacks, s,
			      &error);
	if (s->backend == NULL) {
		fe_relay_unavailable(s, error);
		free(error);
		return;
	}
	s->backend_state = FE_BACKEND_GREETING;
}

void fe_login_succeeded(struct fe_session *s, const struct ipc_msg *msg)
{
	struct frontend *fe = s->fe;
	const char *user = ipc_msg_get(msg, "user");
	const char *address = ipc_msg_get(msg, "backend-address");
	const char *expiry = ipc_msg_get(msg, "ticket-expiry");
	const char *mac = ipc_msg_get(msg, "ticket-mac");
	free(s->user);
	s->user = xstrdup(user != NULL ? user : "?");
	if (conn_limits_try_add_user(fe->limits, s->user, fe->max_connections_per_user) == 0) {
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
			"login refused: user=%s: max-connections-per-user (%u) reached", s->user,
			fe->max_connections_per_user);
		metrics_login(METRICS_LOGIN_LIMIT);
		fe->proto->login_unavailable(s, true, "Too many connections for this user");
		free(s->user);
		s->user = NULL;
		return;
	}
	s->counted_user = true;
	if (fe->proto->backend_login == NULL) {
		fe_relay_unavailable(s, "this build has no back end for the protocol");
		return;
	}
	struct net_addr addr;
	const char *perror = NULL;
	char *error = NULL;
	if (address == NULL || *address == '\0' || net_addr_parse(address, &addr, &perror) < 0 ||
	    expiry == NULL || mac == NULL) {
		fe_relay_unavailable(s, "the directory names no usable back-end address");
		return;
	}
	free(s->ticket_expiry);
	free(s->ticket_mac);
	s->ticket_expiry = xstrdup(expiry);
	s->ticket_mac = xstrdup(mac);
	int r = net_connect_nonblock(&addr, &s->backend_fd, &error);
	if (r < 0) {
		char *why = xasprintf("%s: %s", address, error);
		fe_relay_unavailable(s, why);
		free(why);
		free(error);
		return;
	}
	/* the client's next bytes wait for the outcome */
	conn_input_pause(s->conn);
	s->backend_state = FE_BACKEND_CONNECTING;
	s->backend_ev = event_new(worker_event_base(fe->worker), s->backend_fd, EV_WRITE,
				  fe_backend_connected_cb, s);
	struct timeval tv = {r == 1 ? 0 : FE_BACKEND_CONNECT_TIMEOUT_S, 0};
	event_add(s->backend_ev, &tv);
	if (r == 1)
		event_active(s->backend_ev, EV_WRITE, 0);
}

bool fe_relay_client_closed(struct fe_session *s)
{
	if (s->backend == NULL || s->backend_state != FE_BACKEND_RELAY)
		return false;
	conn_close_after_flush(s->backend);
	return true;
}

void fe_relay_release(struct fe_session *s)
{
	if (s->backend_ev != NULL)
		event_free(s->backend_ev);
	s->backend_ev = NULL;
	if (s->backend_fd >= 0)
		close(s->backend_fd);
	s->backend_fd = -1;
	conn_free(&s->backend);
	free(s->ticket_expiry);
	free(s->ticket_mac);
	s->ticket_expiry = s->ticket_mac = NULL;
}
