#include "pop3d/pop3d.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/protolog.h"
#include "lib/worker.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "pop3d/pop3d_private.h"

#define POP3D_SHUTDOWN_GRACE_MS 3000

static void pop3d_session_free(struct pop3d_session *s)
{
	struct pop3d *srv = s->srv;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->nsessions--;
	metrics_connection_closed();
	pop3d_session_release(s);
	free(s->user);
	free(s->client);
	free(s->direct_user);
	conn_free(&s->conn);
	free(s);
	if (srv->shutting_down && srv->nsessions == 0)
		worker_shutdown_done(srv->worker);
}

static void pop3d_cb_ready(struct conn *conn, void *ctx)
{
	(void)conn;
	struct pop3d_session *s = ctx;
	const char *banner = worker_setting(s->srv->worker, "banner");
	pop3d_reply(s, "+OK %s", banner != NULL && *banner ? banner : "postern POP3 back end ready.");
}

static void pop3d_cb_line(struct conn *conn, char *line, size_t len, void *ctx)
{
	(void)conn;
	struct pop3d_session *s = ctx;
	if (s->closing)
		return;
	pop3d_command(s, line, len);
	/* answered, unless a message is being sent or authd decides */
	if (s->retr_fd < 0 && s->state != POP3D_VERIFYING)
		metrics_command_end(&s->metrics);
}

static void pop3d_cb_line_too_long(struct conn *conn, void *ctx)
{
	(void)conn;
	struct pop3d_session *s = ctx;
	pop3d_reply(s, "-ERR Command line too long");
	if (++s->bad_commands >= POP3D_MAX_BAD_COMMANDS)
		pop3d_close(s);
}

static void pop3d_cb_output_pressure(struct conn *conn, bool blocked, void *ctx)
{
	(void)conn;
	struct pop3d_session *s = ctx;
	if (!blocked && s->retr_fd >= 0)
		pop3d_retr_continue(s);
}

static void pop3d_cb_timeout(struct conn *conn, void *ctx)
{
	(void)conn;
	struct pop3d_session *s = ctx;
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "idle timeout user=%s",
		s->user != NULL ? s->user : "-");
	pop3d_reply(s, "-ERR Autologout; idle for too long");
}

static void pop3d_cb_closed(struct conn *conn, enum conn_close_reason reason, const char *detail,
			    void *ctx)
{
	struct pop3d_session *s = ctx;
	log_msg(LOG_LEVEL_DEBUG, conn_log(conn), "disconnected (%s%s%s)",
		conn_close_reason_str(reason), *detail ? ": " : "", detail);
	pop3d_session_free(s);
}

static const struct conn_callbacks pop3d_callbacks = {
	.ready = pop3d_cb_ready,
	.line = pop3d_cb_line,
	.line_too_long = pop3d_cb_line_too_long,
	.output_pressure = pop3d_cb_output_pressure,
	.timeout = pop3d_cb_timeout,
	.closed = pop3d_cb_closed,
};

void pop3d_close(struct pop3d_session *s)
{
	s->closing = true;
	conn_close_after_flush(s->conn);
}

static void pop3d_load_settings(struct pop3d *srv)
{
	struct worker *w = srv->worker;
	long long pre = worker_setting_int(w, "pre-authenticated-connection-timeout", 60);
	long long post = worker_setting_int(w, "authenticated-connection-timeout", 1800);
	srv->pre_auth_timeout_ms = (unsigned)(pre > 0 ? pre : 60) * 1000;
	srv->auth_timeout_ms = (unsigned)(post > 0 ? post : 1800) * 1000;
	long long size = worker_setting_int(w, "max-command-size", 512);
	srv->max_command_size = (unsigned)(size > 0 ? size : 512);
	protolog_enable(srv->protolog, worker_setting_bool(w, "protocol-log-enabled", false));
}

static int pop3d_init(struct worker *w, char **error_r)
{
	(void)error_r;
	struct pop3d *srv = xcalloc(1, sizeof(*srv));
	srv->worker = w;
	srv->mail_root = xasprintf("%s/mail", worker_datadir(w));
	srv->protolog = protolog_new(worker_datadir(w), "pop3-backend");
	worker_set_context(w, srv);
	pop3d_load_settings(srv);
	return 0;
}

static void pop3d_settings_changed(struct worker *w)
{
	pop3d_load_settings(worker_context(w));
}

static void pop3d_accepted(struct worker *w, int fd, const struct sockaddr *peer,
			   socklen_t peer_len, bool implicit_tls, const char *local)
{
	(void)peer;
	(void)peer_len;
	(void)local;
	struct pop3d *srv = worker_context(w);
	if (implicit_tls) {
		/* the back end's TLS binding needs the certificate: not offered */
		close(fd);
		return;
	}
	struct pop3d_session *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->retr_fd = -1;
	struct conn_settings set = {
		.service = "pop3-backend",
		.max_line = srv->max_command_size,
		.idle_timeout_ms = srv->pre_auth_timeout_ms,
	};
	char *error = NULL;
	s->conn = conn_new(worker_event_base(w), fd, &set, &pop3d_callbacks, s, &error);
	if (s->conn == NULL) {
		log_error("cannot set up a connection: %s", error);
		free(error);
		free(s);
		return;
	}
	s->next = srv->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	metrics_connection_opened();
}

static void pop3d_authd_reply(struct worker *w, const struct ipc_msg *msg)
{
	struct pop3d *srv = worker_context(w);
	/* ticket checks come back as IPC_USER_REPLY, direct admin logins as
	 * IPC_AUTH_REPLY; both carry id, result, user and quota */
	if (msg->type != IPC_USER_REPLY && msg->type != IPC_AUTH_REPLY)
		return;
	const char *id_text = ipc_msg_get(msg, "id");
	unsigned id = id_text != NULL ? (unsigned)strtoul(id_text, NULL, 10) : 0;
	for (struct pop3d_session *s = srv->sessions; s != NULL && id != 0; s = s->next) {
		if (s->request_id != id || s->state != POP3D_VERIFYING)
			continue;
		s->request_id = 0;
		const char *result = ipc_msg_get(msg, "result");
		const char *quota = ipc_msg_get(msg, "quota");
		const char *reason = ipc_msg_get(msg, "reason");
		pop3d_login_verified(s, result != NULL && strcmp(result, "ok") == 0,
				     ipc_msg_get(msg, "user"),
				     quota != NULL ? strtoull(quota, NULL, 10) : 0,
				     reason != NULL ? reason : (result != NULL ? result : "?"));
		return;
	}
}

static void pop3d_shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pop3d *srv = arg;
	worker_shutdown_done(srv->worker);
}

static void pop3d_shutdown(struct worker *w)
{
	struct pop3d *srv = worker_context(w);
	srv->shutting_down = true;
	if (srv->nsessions == 0)
		worker_shutdown_done(w);
	for (struct pop3d_session *s = srv->sessions; s != NULL; s = s->next) {
		if (s->closing)
			continue;
		/* no UPDATE state: messages marked for deletion stay */
		if (s->retr_fd < 0)
			pop3d_reply(s, "-ERR [SYS/TEMP] Server shutting down");
		pop3d_close(s);
	}
	srv->shutdown_ev = event_new(worker_event_base(w), -1, 0, pop3d_shutdown_timeout_cb, srv);
	struct timeval tv = {POP3D_SHUTDOWN_GRACE_MS / 1000, (POP3D_SHUTDOWN_GRACE_MS % 1000) * 1000};
	event_add(srv->shutdown_ev, &tv);
}

static void pop3d_kick(struct worker *w, const char *user)
{
	struct pop3d *srv = worker_context(w);
	for (struct pop3d_session *s = srv->sessions; s != NULL; s = s->next) {
		if (s->user == NULL || strcasecmp(s->user, user) != 0 || s->closing)
			continue;
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "user=%s: session ended by the administrator",
			s->user);
		/* no UPDATE: nothing marked for deletion is removed */
		if (s->retr_fd < 0)
			pop3d_reply(s, "-ERR [SYS/TEMP] Session ended by the administrator");
		pop3d_close(s);
	}
}

static unsigned pop3d_connection_count(struct worker *w)
{
	struct pop3d *srv = worker_context(w);
	return srv != NULL ? srv->nsessions : 0;
}

int pop3d_verify_ticket(struct pop3d_session *s, const char *user, const char *peer,
			const char *expiry, const char *mac)
{
	struct pop3d *srv = s->srv;
	if (++srv->next_request_id == 0)
		srv->next_request_id = 1;
	s->request_id = srv->next_request_id;
	char id[16];
	snprintf(id, sizeof(id), "%u", s->request_id);
	struct ipc_field f[] = {{"id", id},	    {"user", user}, {"peer", peer},
				{"expiry", expiry}, {"mac", mac}};
	if (worker_authd_send(srv->worker, IPC_TICKET_VERIFY, f, 5) < 0)
		return -1;
	s->state = POP3D_VERIFYING;
	conn_input_pause(s->conn);
	return 0;
}

int pop3d_direct_login(struct pop3d_session *s, const char *admin, const char *password,
		       const char *target)
{
	struct pop3d *srv = s->srv;
	if (++srv->next_request_id == 0)
		srv->next_request_id = 1;
	s->request_id = srv->next_request_id;
	char id[16];
	snprintf(id, sizeof(id), "%u", s->request_id);
	struct ipc_field f[] = {{"id", id},	  {"service", "pop3-backend"},
				{"user", admin},  {"password", password},
				{"peer", conn_peer(s->conn)}, {"secured", "no"},
				{"tarpit", "yes"}, {"act-as", target}};
	if (worker_authd_send(srv->worker, IPC_AUTH_REQUEST, f, 8) < 0)
		return -1;
	s->state = POP3D_VERIFYING;
	conn_input_pause(s->conn);
	return 0;
}

bool pop3d_direct_login_allowed(const struct pop3d_session *s)
{
	return worker_setting_bool(s->srv->worker, "direct-admin-login", false);
}

void pop3d_session_set_authenticated_timeout(struct pop3d_session *s)
{
	conn_set_idle_timeout(s->conn, s->srv->auth_timeout_ms);
}

const char *pop3d_mail_root(const struct pop3d_session *s)
{
	return s->srv->mail_root;
}

const struct worker_service_ops pop3_backend_ops = {
	.name = "pop3-backend",
	.init = pop3d_init,
	.settings_changed = pop3d_settings_changed,
	.accepted = pop3d_accepted,
	.authd_reply = pop3d_authd_reply,
	.shutdown = pop3d_shutdown,
	.kick = pop3d_kick,
	.connection_count = pop3d_connection_count,
};
