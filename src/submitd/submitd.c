#include "submitd/submitd.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/settings.h"
#include "lib/worker.h"
#include "lib/xalloc.h"
#include "net/cidr.h"
#include "net/conn.h"
#include "net/conn_limits.h"
#include "net/tls.h"
#include "proto/smtp/smtp_server.h"
#include "queue/queue.h"
#include "queue/queue_runner.h"
#include "submitd/submitd_private.h"

/* The submission service's sessions: settings, TLS, connection limits,
 * conn glue and worker hooks. The protocol is the shared SMTP engine
 * (proto/smtp); AUTH is submitd_auth.c, the transaction submitd_mail.c.
 *
 * Input: command lines come from conn's line reader (bounded by
 * max-command-size). While the engine reads a body, or holds bytes
 * pipelined after one, conn hands out raw bytes instead, because only the
 * engine's byte reader may decide where DATA ends ("\r\n.\r\n" only). */

/* ---- settings ---- */

static unsigned sd_count(struct worker *w, const char *key, unsigned def)
{
	long long n = worker_setting_int(w, key, def);
	return n < 0 ? def : n > 0x7fffffff ? 0x7fffffff : (unsigned)n;
}

/* "user:password" from the smarthost-auth-file, or nothing. */
static void sd_read_auth_file(struct submitd *sd, char **user_r, char **password_r)
{
	*user_r = *password_r = NULL;
	const char *v = worker_setting(sd->worker, "smarthost-auth-file");
	if (v == NULL || *v == '\0')
		return;
	char *path = v[0] == '/' ? xstrdup(v) : xasprintf("%s/%s", worker_datadir(sd->worker), v);
	FILE *f = fopen(path, "re");
	char line[1024] = "";
	if (f == NULL || fgets(line, sizeof(line), f) == NULL) {
		log_error("smarthost-auth-file %s: %s", path,
			  f == NULL ? strerror(errno) : "empty");
		if (f != NULL)
			fclose(f);
		free(path);
		return;
	}
	fclose(f);
	free(path);
	line[strcspn(line, "\r\n")] = '\0';
	char *colon = strchr(line, ':');
	if (colon == NULL) {
		log_error("smarthost-auth-file: expected one line 'user:password'");
		return;
	}
	*colon = '\0';
	*user_r = xstrdup(line);
	*password_r = xstrdup(colon + 1);
	memset(line, 0, sizeof(line));
}

static void sd_runner_settings(struct submitd *sd)
{
	struct worker *w = sd->worker;
	const char *tls = worker_setting(w, "smarthost-tls");
	char *user, *password;
	sd_read_auth_file(sd, &user, &password);
	struct queue_runner_settings set = {
	    .hostname = sd->hostname,
	    .smarthost = worker_setting(w, "smarthost"),
	    .smarthost_tls = tls != NULL && strcmp(tls, "required") == 0 ? SMTP_CLIENT_TLS_REQUIRED
			     : tls != NULL && strcmp(tls, "none") == 0
				 ? SMTP_CLIENT_TLS_NONE
				 : SMTP_CLIENT_TLS_OPPORTUNISTIC,
	    .smarthost_user = user,
	    .smarthost_password = password,
	    .retry_s = sd_count(w, "queue-retry-interval", 60),
	    .max_retry_s = sd_count(w, "queue-max-retry-interval", 3600),
	    .lifetime_s = sd_count(w, "queue-lifetime", 432000),
	    .resolvers = worker_setting(w, "dns-resolvers"),
	    .mx_port = sd_count(w, "mx-port", 25),
	};
	if (sd->runner == NULL)
		sd->runner = queue_runner_new(worker_event_base(w), sd->queue_dir, &set);
	else
		queue_runner_set_settings(sd->runner, &set);
	free(user);
	if (password != NULL)
		memset(password, 0, strlen(password));
	free(password);
}

static void sd_load_settings(struct submitd *sd)
{
	struct worker *w = sd->worker;
	const char *lt = worker_setting(w, "login-type");
	if (lt != NULL && strcmp(lt, "plain-text-login") == 0)
		sd->login_type = SUBMIT_LOGIN_PLAIN_TEXT_LOGIN;
	else if (lt != NULL && strcmp(lt, "plain-text-authentication") == 0)
		sd->login_type = SUBMIT_LOGIN_PLAIN_TEXT_AUTHENTICATION;
	else
		sd->login_type = SUBMIT_LOGIN_SECURE;
	sd->max_connections = sd_count(w, "max-connections", 0);
	sd->max_connections_per_ip = sd_count(w, "max-connections-from-single-ip", 0);
	sd->max_connections_per_user = sd_count(w, "max-connections-per-user", 16);
	unsigned t = sd_count(w, "pre-authenticated-connection-timeout", 60);
	sd->pre_auth_timeout_ms = (t == 0 ? 60 : t) * 1000;
	t = sd_count(w, "authenticated-connection-timeout", 1800);
	sd->auth_timeout_ms = (t == 0 ? 1800 : t) * 1000;
	sd->max_command_size = sd_count(w, "max-command-size", 4096);
	if (sd->max_command_size < 512)
		sd->max_command_size = 512;
	sd->failure_delay_s = sd_count(w, "authentication-failure-delay", 2);
	sd->offer_scram = worker_setting_bool(w, "sasl-scram-sha-256", true);
	sd->max_recipients = sd_count(w, "max-recipients", 100);
	if (sd->max_recipients == 0)
		sd->max_recipients = 100;
	long long size = worker_setting_int(w, "max-message-size", 36700160);
	sd->max_message_size = size < 1024 ? 36700160 : (uint64_t)size;
	const char *save = worker_setting(w, "save-sent");
	sd->save_sent =
	    save != NULL && settings_parse_bool(save, &sd->save_sent) == 0 && sd->save_sent;
	settings_list_free(&sd->local_domains);
	const char *ld = worker_setting(w, "local-domains");
	sd->local_domains = settings_list_split(ld != NULL ? ld : "", NULL);
	net_cidr_list_replace("proxy-protocol-trusted", worker_setting(w, "proxy-protocol-trusted"),
			      &sd->proxy_trusted, &sd->proxy_trusted_count);
	net_cidr_list_replace("trusted-networks", worker_setting(w, "trusted-networks"),
			      &sd->trusted, &sd->trusted_count);
}

static int sd_load_tls(struct submitd *sd, char **error_r)
{
	return tls_server_load_settings(sd->worker, &sd->tls, error_r);
}

/* ---- helpers for the other files ---- */

void submitd_close(struct submit_session *s)
{
	s->closing = true;
	conn_close_after_flush(s->conn);
}

void submitd_date(char *buf, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	long off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	snprintf(buf, size, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
		 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 sign, off / 60, off % 60);
}

static void sd_authd_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct submit_session *s = arg;
	if (s->auth_id != 0) {
		s->auth_id = 0;
		submitd_auth_timeout(s);
	} else if (s->lookup_id != 0) {
		s->lookup_id = 0;
		submitd_lookup_timeout(s);
	}
	submitd_sync_input(s);
}

unsigned submitd_authd_send(struct submit_session *s, int type, const void *fields,
			    unsigned nfields)
{
	struct submitd *sd = s->sd;
	if (++sd->next_id == 0)
		sd->next_id = 1;
	/* the id is the first field: the caller leaves room for it */
	struct ipc_field *f = (struct ipc_field *)fields;
	char id[16];
	snprintf(id, sizeof(id), "%u", sd->next_id);
	f[0].key = "id";
	f[0].value = id;
	if (worker_authd_send(sd->worker, type, f, nfields) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "authd unreachable");
		return 0;
	}
	if (s->authd_timer == NULL)
		s->authd_timer = evtimer_new(worker_event_base(sd->worker), sd_authd_timeout_cb, s);
	struct timeval tv = {SUBMIT_AUTHD_TIMEOUT_S, 0};
	evtimer_add(s->authd_timer, &tv);
	return sd->next_id;
}

/* ---- the engine's events ---- */

static void sd_ev_write(void *ctx, const void *data, size_t len)
{
	struct submit_session *s = ctx;
	conn_write(s->conn, data, len);
}

static bool sd_auth_offered(const struct submit_session *s)
{
	return conn_tls_active(s->conn) || s->sd->login_type == SUBMIT_LOGIN_PLAIN_TEXT_LOGIN;
}

/* The EHLO keywords of this connection: STARTTLS only before TLS, AUTH only
 * where login-type allows credentials. */
static void sd_set_extensions(struct submit_session *s)
{
	char size_kw[40];
	snprintf(size_kw, sizeof(size_kw), "SIZE %llu",
		 (unsigned long long)s->sd->max_message_size);
	const char *kw[12];
	size_t n = 0;
	kw[n++] = "PIPELINING";
	kw[n++] = size_kw;
	if (!conn_tls_active(s->conn) && s->sd->tls != NULL)
		kw[n++] = "STARTTLS";
	if (sd_auth_offered(s))
		kw[n++] = s->sd->offer_scram ? "AUTH PLAIN LOGIN SCRAM-SHA-256" : "AUTH PLAIN LOGIN";
	kw[n++] = "ENHANCEDSTATUSCODES";
	kw[n++] = "8BITMIME";
	kw[n++] = "DSN";
	kw[n++] = "SMTPUTF8";
	kw[n++] = "CHUNKING";
	kw[n] = NULL;
	smtp_server_set_extensions(s->srv, kw);
}

static int sd_ev_hello(void *ctx, enum smtp_hello_kind kind, const char *domain)
{
	(void)kind;
	struct submit_session *s = ctx;
	free(s->helo);
	s->helo = xstrdup(domain);
	return 1;
}

static int sd_ev_mail(void *ctx, const struct smtp_mail *mail)
{
	return submitd_mail(ctx, mail);
}

static int sd_ev_rcpt(void *ctx, const struct smtp_rcpt *rcpt)
{
	return submitd_rcpt(ctx, rcpt);
}

static int sd_ev_data_begin(void *ctx, bool chunked)
{
	(void)chunked;
	return submitd_data_begin(ctx);
}

static void sd_ev_data(void *ctx, const void *data, size_t len)
{
	submitd_data(ctx, data, len);
}

static int sd_ev_data_end(void *ctx, const struct smtp_data_result *result)
{
	return submitd_data_end(ctx, result);
}

static void sd_ev_reset(void *ctx)
{
	submitd_reset(ctx);
}

static int sd_ev_starttls(void *ctx)
{
	struct submit_session *s = ctx;
	const char *error;
	if (s->sd->tls == NULL || conn_tls_active(s->conn)) {
		smtp_server_reply(s->srv, 454, "4.7.0", "TLS not available");
		return -1;
	}
	smtp_server_reply(s->srv, 220, "2.0.0", "Ready to start TLS");
	if (conn_starttls(s->conn, tls_server_ctx(s->sd->tls), &error) < 0) {
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "STARTTLS: %s", error);
		submitd_close(s);
		return -1;
	}
	return 1;
}

static int sd_ev_auth(void *ctx, const char *mechanism, const char *initial)
{
	return submitd_auth_start(ctx, mechanism, initial);
}

static void sd_ev_auth_line(void *ctx, const char *line)
{
	submitd_auth_line(ctx, line);
}

static void sd_ev_quit(void *ctx)
{
	submitd_close(ctx);
}

static const struct smtp_server_callbacks sd_engine_callbacks = {
    .write = sd_ev_write,
    .hello = sd_ev_hello,
    .mail = sd_ev_mail,
    .rcpt = sd_ev_rcpt,
    .data_begin = sd_ev_data_begin,
    .data = sd_ev_data,
    .data_end = sd_ev_data_end,
    .reset = sd_ev_reset,
    .starttls = sd_ev_starttls,
    .auth = sd_ev_auth,
    .auth_line = sd_ev_auth_line,
    .quit = sd_ev_quit,
};

/* ---- sessions ---- */

void submitd_sync_input(struct submit_session *s)
{
	if (s->closing || !conn_is_open(s->conn))
		return;
	bool raw = smtp_server_wants_raw(s->srv);
	if (raw != s->raw) {
		s->raw = raw;
		if (raw)
			conn_read_raw(s->conn, CONN_RAW_UNLIMITED);
		else
			conn_read_lines(s->conn);
	}
	bool paused = smtp_server_paused(s->srv);
	if (paused != s->paused) {
		s->paused = paused;
		if (paused)
			conn_input_pause(s->conn);
		else
			conn_input_resume(s->conn);
	}
}

static void sd_session_free(struct submit_session *s)
{
	struct submitd *sd = s->sd;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sd->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	sd->nsessions--;
	metrics_connection_closed();
	if (s->counted_total)
		conn_limits_remove_total(sd->limits);
	if (s->counted_ip)
		conn_limits_remove_ip(sd->limits, (struct sockaddr *)&s->peer);
	if (s->counted_user)
		conn_limits_remove_user(sd->limits, s->user);
	if (sd->runner != NULL)
		queue_runner_forget(sd->runner, s);
	submitd_reset(s);
	if (s->authd_timer != NULL)
		event_free(s->authd_timer);
	smtp_server_free(&s->srv);
	fe_sasl_reset(&s->sasl);
	free(s->helo);
	free(s->user);
	free(s->address);
	free(s->domain);
	free(s->send_as);
	free(s->user_lmtp);
	free(s->save_sent);
	conn_free(&s->conn);
	free(s);
	if (sd->shutting_down && sd->nsessions == 0)
		worker_shutdown_done(sd->worker);
}

static void sd_cb_ready(struct conn *conn, void *ctx)
{
	struct submit_session *s = ctx;
	struct submitd *sd = s->sd;
	socklen_t len;
	const struct sockaddr *peer = conn_peer_sockaddr(conn, &len);
	if (len <= sizeof(s->peer))
		memcpy(&s->peer, peer, len);
	if (!s->counted_total) {
		log_msg(LOG_LEVEL_INFO, conn_log(conn), "refused: max-connections (%u) reached",
			sd->max_connections);
		smtp_server_reply(s->srv, 421, "4.3.2", "%s Too many connections, try again later",
				  sd->hostname);
		submitd_close(s);
		return;
	}
	if (conn_limits_try_add_ip(sd->limits, (struct sockaddr *)&s->peer,
				   sd->max_connections_per_ip) == 0) {
		log_msg(LOG_LEVEL_INFO, conn_log(conn),
			"refused: max-connections-from-single-ip (%u) reached",
			sd->max_connections_per_ip);
		smtp_server_reply(s->srv, 421, "4.7.0", "%s Too many connections from your address",
				  sd->hostname);
		submitd_close(s);
		return;
	}
	s->counted_ip = true;
	sd_set_extensions(s);
	log_msg(LOG_LEVEL_DEBUG, conn_log(conn), "connected on %s%s", conn_local(conn),
		conn_tls_active(conn) ? " (TLS)" : "");
	const char *banner = worker_setting(sd->worker, "banner");
	smtp_server_greet(s->srv, banner != NULL && *banner != '\0'
				      ? banner
				      : "postern ESMTP submission service ready");
}

static void sd_cb_line(struct conn *conn, char *line, size_t len, void *ctx)
{
	(void)conn;
	struct submit_session *s = ctx;
	if (s->closing)
		return;
	if (smtp_server_line(s->srv, line, len) < 0) {
		submitd_close(s);
		return;
	}
	submitd_sync_input(s);
}

static void sd_cb_line_too_long(struct conn *conn, void *ctx)
{
	(void)conn;
	struct submit_session *s = ctx;
	if (s->closing)
		return;
	smtp_server_line_too_long(s->srv);
	submitd_sync_input(s);
}

static void sd_cb_raw(struct conn *conn, const unsigned char *data, size_t len, size_t remaining,
		      void *ctx)
{
	(void)conn;
	(void)remaining;
	struct submit_session *s = ctx;
	if (s->closing)
		return;
	if (smtp_server_input(s->srv, data, len) < 0) {
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "too much pipelined input; closing");
		submitd_close(s);
		return;
	}
	submitd_sync_input(s);
}

static void sd_cb_starttls_done(struct conn *conn, void *ctx)
{
	struct submit_session *s = ctx;
	log_msg(LOG_LEVEL_DEBUG, conn_log(conn), "TLS: %s %s", conn_tls_version(conn),
		conn_tls_cipher(conn));
	/* RFC 3207 4.2: the client starts over with EHLO; the keywords change */
	sd_set_extensions(s);
	submitd_sync_input(s);
}

static void sd_cb_timeout(struct conn *conn, void *ctx)
{
	struct submit_session *s = ctx;
	log_msg(LOG_LEVEL_INFO, conn_log(conn), "idle timeout%s",
		s->user != NULL ? "" : " before login");
	smtp_server_reply(s->srv, 421, "4.4.2", "%s Idle timeout, closing connection",
			  s->sd->hostname);
	s->closing = true;
}

static void sd_cb_closed(struct conn *conn, enum conn_close_reason reason, const char *detail,
			 void *ctx)
{
	log_msg(LOG_LEVEL_DEBUG, conn_log(conn), "disconnected (%s%s%s)",
		conn_close_reason_str(reason), *detail ? ": " : "", detail);
	sd_session_free(ctx);
}

static const struct conn_callbacks sd_conn_callbacks = {
    .ready = sd_cb_ready,
    .line = sd_cb_line,
    .line_too_long = sd_cb_line_too_long,
    .raw = sd_cb_raw,
    .starttls_done = sd_cb_starttls_done,
    .timeout = sd_cb_timeout,
    .closed = sd_cb_closed,
};

static void sd_accepted(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
			bool implicit_tls, const char *local)
{
	(void)local;
	struct submitd *sd = worker_context(w);
	if (sd->tls != NULL)
		tls_server_maybe_reload(sd->tls, time(NULL));
	if ((implicit_tls && sd->tls == NULL) || sd->shutting_down) {
		close(fd);
		return;
	}
	struct submit_session *s = xcalloc(1, sizeof(*s));
	s->sd = sd;
	if (peer_len <= sizeof(s->peer))
		memcpy(&s->peer, peer, peer_len);
	fe_sasl_reset(&s->sasl);
	struct conn_settings set = {
	    .service = "submission",
	    .tls_ctx = implicit_tls ? tls_server_ctx(sd->tls) : NULL,
	    .proxy_trusted = sd->proxy_trusted,
	    .proxy_trusted_count = sd->proxy_trusted_count,
	    .max_line = sd->max_command_size,
	    .idle_timeout_ms = sd->pre_auth_timeout_ms,
	};
	char *error = NULL;
	s->conn = conn_new(worker_event_base(w), fd, &set, &sd_conn_callbacks, s, &error);
	if (s->conn == NULL) {
		log_error("cannot set up a connection: %s", error);
		free(error);
		free(s);
		return;
	}
	struct smtp_server_settings eset = {
	    .protocol = SMTP_PROTOCOL_SMTP,
	    .hostname = sd->hostname,
	    .max_line = sd->max_command_size,
	    .max_message_line = SUBMIT_MAX_MESSAGE_LINE,
	    .max_message_size = sd->max_message_size,
	    .max_recipients = sd->max_recipients,
	    .max_bad_commands = SUBMIT_MAX_BAD_COMMANDS,
	};
	s->srv = smtp_server_new(&eset, &sd_engine_callbacks, s);
	s->next = sd->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	sd->sessions = s;
	sd->nsessions++;
	metrics_connection_opened();
	s->counted_total = conn_limits_try_add_total(sd->limits, sd->max_connections) == 1;
}

/* ---- worker hooks ---- */

static void sd_authd_reply(struct worker *w, const struct ipc_msg *msg)
{
	struct submitd *sd = worker_context(w);
	const char *id_text = ipc_msg_get(msg, "id");
	unsigned id = id_text != NULL ? (unsigned)strtoul(id_text, NULL, 10) : 0;
	if (id == 0)
		return;
	for (struct submit_session *s = sd->sessions; s != NULL; s = s->next) {
		if (s->auth_id == id && msg->type == IPC_AUTH_REPLY) {
			s->auth_id = 0;
			evtimer_del(s->authd_timer);
			if (!s->closing)
				submitd_auth_reply(s, msg);
		} else if (s->lookup_id == id && msg->type == IPC_USER_REPLY) {
			evtimer_del(s->authd_timer);
			if (!s->closing)
				submitd_lookup_reply(s, msg);
			else
				s->lookup_id = 0;
		} else {
			continue;
		}
		submitd_sync_input(s);
		return;
	}
	/* the session left while authd was deciding */
}

static int sd_init(struct worker *w, char **error_r)
{
	struct submitd *sd = xcalloc(1, sizeof(*sd));
	sd->worker = w;
	sd->limits = conn_limits_new();
	worker_set_context(w, sd);
	if (gethostname(sd->hostname, sizeof(sd->hostname) - 1) < 0 || sd->hostname[0] == '\0')
		strcpy(sd->hostname, "localhost");
	/* the name appears in replies and Received headers: keep it a plain name */
	for (char *p = sd->hostname; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '(' || *p == ')' || *p == ';')
			*p = '-';
	sd_load_settings(sd);
	if (sd_load_tls(sd, error_r) < 0)
		return -1;
	if (queue_dir_open(worker_datadir(w), &sd->queue_dir, error_r) < 0)
		return -1;
	sd_runner_settings(sd);
	queue_runner_scan_start(sd->runner);
	return 0;
}

static void sd_settings_changed(struct worker *w)
{
	struct submitd *sd = worker_context(w);
	sd_load_settings(sd);
	sd_runner_settings(sd);
	char *error = NULL;
	if (sd_load_tls(sd, &error) < 0) {
		log_error("keeping the old certificate: %s", error);
		free(error);
	}
}

static void sd_shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct submitd *sd = arg;
	worker_shutdown_done(sd->worker);
}

static void sd_shutdown(struct worker *w)
{
	struct submitd *sd = worker_context(w);
	sd->shutting_down = true;
	/* deliveries in progress stop here; their entries stay queued */
	queue_runner_free(&sd->runner);
	if (sd->nsessions == 0)
		worker_shutdown_done(w);
	for (struct submit_session *s = sd->sessions; s != NULL; s = s->next) {
		if (s->closing)
			continue;
		smtp_server_reply(s->srv, 421, "4.3.2", "%s Server shutting down", sd->hostname);
		submitd_close(s);
	}
	sd->shutdown_ev = event_new(worker_event_base(w), -1, 0, sd_shutdown_timeout_cb, sd);
	struct timeval tv = {SUBMIT_SHUTDOWN_GRACE_MS / 1000,
			     (SUBMIT_SHUTDOWN_GRACE_MS % 1000) * 1000};
	event_add(sd->shutdown_ev, &tv);
}

static void sd_kick(struct worker *w, const char *user)
{
	struct submitd *sd = worker_context(w);
	for (struct submit_session *s = sd->sessions; s != NULL; s = s->next) {
		if (s->user == NULL || strcasecmp(s->user, user) != 0 || s->closing)
			continue;
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
			"user=%s: session ended by the administrator", s->user);
		smtp_server_reply(s->srv, 421, "4.7.0", "%s Session ended by the administrator",
				  sd->hostname);
		submitd_close(s);
	}
}

static unsigned sd_connection_count(struct worker *w)
{
	struct submitd *sd = worker_context(w);
	return sd != NULL ? sd->nsessions : 0;
}

const struct worker_service_ops submission_service_ops = {
    .name = "submission",
    .init = sd_init,
    .settings_changed = sd_settings_changed,
    .accepted = sd_accepted,
    .authd_reply = sd_authd_reply,
    .shutdown = sd_shutdown,
    .kick = sd_kick,
    .connection_count = sd_connection_count,
};
