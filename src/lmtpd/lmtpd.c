#include "lmtpd/lmtpd.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/worker.h"
#include "lib/xalloc.h"
#include "lmtpd/lmtpd_private.h"
#include "net/conn.h"
#include "proto/smtp/smtp_server.h"

/* The lmtp service's sessions: conn glue, settings and worker hooks. The
 * protocol is the shared SMTP engine (proto/smtp); what a delivery does is
 * lmtp_delivery.c.
 *
 * Input: command lines come from conn's line reader (bounded by
 * max-command-size). While the engine reads a body, or holds bytes
 * pipelined after one, conn hands out raw bytes instead
 * (conn_read_raw(CONN_RAW_UNLIMITED)), because only the engine's own byte
 * reader may decide where DATA ends ("\r\n.\r\n", never a bare LF). */

/* ---- settings ---- */

static unsigned lmtpd_setting_count(struct worker *w, const char *key, unsigned def)
{
	long long n = worker_setting_int(w, key, def);
	return n < 0 ? def : n > 0x7fffffff ? 0x7fffffff : (unsigned)n;
}

static void lmtpd_load_settings(struct lmtpd *lm)
{
	struct worker *w = lm->worker;
	lm->max_connections = lmtpd_setting_count(w, "max-connections", 0);
	unsigned timeout = lmtpd_setting_count(w, "pre-authenticated-connection-timeout", 300);
	lm->idle_timeout_ms = (timeout == 0 ? 300 : timeout) * 1000;
	lm->max_command_size = lmtpd_setting_count(w, "max-command-size", 4096);
	if (lm->max_command_size < 512)
		lm->max_command_size = 512;
	long long size = worker_setting_int(w, "max-message-size", 36700160);
	lm->max_message_size = size < 1024 ? 36700160 : (uint64_t)size;
}

/* ---- the engine's events ---- */

static void lmtpd_close(struct lmtp_session *s)
{
	s->closing = true;
	conn_close_after_flush(s->conn);
}

static void lmtpd_ev_write(void *ctx, const void *data, size_t len)
{
	struct lmtp_session *s = ctx;
	conn_write(s->conn, data, len);
}

static int lmtpd_ev_hello(void *ctx, enum smtp_hello_kind kind, const char *domain)
{
	(void)kind;
	struct lmtp_session *s = ctx;
	free(s->lhlo);
	s->lhlo = xstrdup(domain);
	return 1;
}

static int lmtpd_ev_mail(void *ctx, const struct smtp_mail *mail)
{
	return lmtp_delivery_mail(ctx, mail);
}

static int lmtpd_ev_rcpt(void *ctx, const struct smtp_rcpt *rcpt)
{
	return lmtp_delivery_rcpt(ctx, rcpt);
}

static int lmtpd_ev_data_begin(void *ctx, bool chunked)
{
	(void)chunked;
	return lmtp_delivery_data_begin(ctx);
}

static void lmtpd_ev_data(void *ctx, const void *data, size_t len)
{
	lmtp_delivery_data(ctx, data, len);
}

static int lmtpd_ev_data_end(void *ctx, const struct smtp_data_result *result)
{
	return lmtp_delivery_data_end(ctx, result);
}

static void lmtpd_ev_reset(void *ctx)
{
	lmtp_delivery_reset(ctx);
}

static void lmtpd_ev_quit(void *ctx)
{
	lmtpd_close(ctx);
}

static const struct smtp_server_callbacks lmtpd_engine_callbacks = {
    .write = lmtpd_ev_write,
    .hello = lmtpd_ev_hello,
    .mail = lmtpd_ev_mail,
    .rcpt = lmtpd_ev_rcpt,
    .data_begin = lmtpd_ev_data_begin,
    .data = lmtpd_ev_data,
    .data_end = lmtpd_ev_data_end,
    .reset = lmtpd_ev_reset,
    .quit = lmtpd_ev_quit,
};

/* ---- sessions ---- */

void lmtpd_sync_input(struct lmtp_session *s)
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

static void lmtpd_session_free(struct lmtp_session *s)
{
	struct lmtpd *lm = s->lm;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		lm->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	lm->nsessions--;
	metrics_connection_closed();
	lmtp_delivery_reset(s);
	if (s->lookup_timer != NULL)
		event_free(s->lookup_timer);
	smtp_server_free(&s->srv);
	free(s->lhlo);
	conn_free(&s->conn);
	free(s);
	if (lm->shutting_down && lm->nsessions == 0)
		worker_shutdown_done(lm->worker);
}

static void lmtpd_cb_ready(struct conn *conn, void *ctx)
{
	struct lmtp_session *s = ctx;
	struct lmtpd *lm = s->lm;
	if (lm->max_connections != 0 && lm->nsessions > lm->max_connections) {
		log_msg(LOG_LEVEL_INFO, conn_log(conn), "refused: max-connections (%u) reached",
			lm->max_connections);
		smtp_server_reply(s->srv, 421, "4.3.2", "%s Too many connections, try again later",
				  lm->hostname);
		lmtpd_close(s);
		return;
	}
	const char *banner = worker_setting(lm->worker, "banner");
	log_msg(LOG_LEVEL_DEBUG, conn_log(conn), "connected on %s", conn_local(conn));
	smtp_server_greet(s->srv, banner != NULL && *banner != '\0' ? banner
								    : "postern LMTP service ready");
}

static void lmtpd_cb_line(struct conn *conn, char *line, size_t len, void *ctx)
{
	(void)conn;
	struct lmtp_session *s = ctx;
	if (s->closing)
		return;
	if (smtp_server_line(s->srv, line, len) < 0) {
		lmtpd_close(s);
		return;
	}
	lmtpd_sync_input(s);
}

static void lmtpd_cb_line_too_long(struct conn *conn, void *ctx)
{
	(void)conn;
	struct lmtp_session *s = ctx;
	if (s->closing)
		return;
	smtp_server_line_too_long(s->srv);
	lmtpd_sync_input(s);
}

static void lmtpd_cb_raw(struct conn *conn, const unsigned char *data, size_t len, size_t remaining,
			 void *ctx)
{
	(void)conn;
	(void)remaining;
	struct lmtp_session *s = ctx;
	if (s->closing)
		return;
	if (smtp_server_input(s->srv, data, len) < 0) {
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "too much pipelined input; closing");
		lmtpd_close(s);
		return;
	}
	lmtpd_sync_input(s);
}

static void lmtpd_cb_timeout(struct conn *conn, void *ctx)
{
	struct lmtp_session *s = ctx;
	log_msg(LOG_LEVEL_INFO, conn_log(conn), "idle timeout");
	smtp_server_reply(s->srv, 421, "4.4.2", "%s Idle timeout, closing connection",
			  s->lm->hostname);
	s->closing = true;
}

static void lmtpd_cb_closed(struct conn *conn, enum conn_close_reason reason, const char *detail,
			    void *ctx)
{
	struct lmtp_session *s = ctx;
	log_msg(LOG_LEVEL_DEBUG, conn_log(conn), "disconnected (%s%s%s)",
		conn_close_reason_str(reason), *detail ? ": " : "", detail);
	lmtpd_session_free(s);
}

static const struct conn_callbacks lmtpd_conn_callbacks = {
    .ready = lmtpd_cb_ready,
    .line = lmtpd_cb_line,
    .line_too_long = lmtpd_cb_line_too_long,
    .raw = lmtpd_cb_raw,
    .timeout = lmtpd_cb_timeout,
    .closed = lmtpd_cb_closed,
};

static void lmtpd_accepted(struct worker *w, int fd, const struct sockaddr *peer,
			   socklen_t peer_len, bool implicit_tls, const char *local)
{
	(void)peer;
	(void)peer_len;
	(void)local;
	struct lmtpd *lm = worker_context(w);
	if (implicit_tls || lm->shutting_down) {
		/* LMTP has no TLS listeners (the service has no ssl-bindings) */
		close(fd);
		return;
	}
	struct lmtp_session *s = xcalloc(1, sizeof(*s));
	s->lm = lm;
	struct conn_settings set = {
	    .service = "lmtp",
	    .max_line = lm->max_command_size,
	    .idle_timeout_ms = lm->idle_timeout_ms,
	};
	char *error = NULL;
	s->conn = conn_new(worker_event_base(w), fd, &set, &lmtpd_conn_callbacks, s, &error);
	if (s->conn == NULL) {
		log_error("cannot set up a connection: %s", error);
		free(error);
		free(s);
		return;
	}
	struct smtp_server_settings eset = {
	    .protocol = SMTP_PROTOCOL_LMTP,
	    .hostname = lm->hostname,
	    .max_line = lm->max_command_size,
	    .max_message_line = LMTP_MAX_MESSAGE_LINE,
	    .max_message_size = lm->max_message_size,
	    .max_recipients = LMTP_MAX_RECIPIENTS,
	    .max_bad_commands = LMTP_MAX_BAD_COMMANDS,
	};
	s->srv = smtp_server_new(&eset, &lmtpd_engine_callbacks, s);
	char size_kw[40];
	snprintf(size_kw, sizeof(size_kw), "SIZE %llu", (unsigned long long)lm->max_message_size);
	const char *const keywords[] = {
	    "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", size_kw, "CHUNKING", "SMTPUTF8",
	    /* copies for the submitter's Sent folder, with authd's authorisation */
	    "XSENTCOPY", NULL};
	smtp_server_set_extensions(s->srv, keywords);
	s->next = lm->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	lm->sessions = s;
	lm->nsessions++;
	metrics_connection_opened();
}

/* ---- worker hooks ---- */

static void lmtpd_authd_reply(struct worker *w, const struct ipc_msg *msg)
{
	struct lmtpd *lm = worker_context(w);
	if (msg->type != IPC_USER_REPLY)
		return;
	const char *id_text = ipc_msg_get(msg, "id");
	unsigned id = id_text != NULL ? (unsigned)strtoul(id_text, NULL, 10) : 0;
	if (id == 0)
		return;
	for (struct lmtp_session *s = lm->sessions; s != NULL; s = s->next) {
		if (s->lookup_id != id)
			continue;
		if (s->closing) {
			s->lookup_id = 0;
			return;
		}
		lmtp_delivery_lookup_reply(s, msg);
		lmtpd_sync_input(s);
		return;
	}
	/* the session left while authd was looking */
}

static int lmtpd_init(struct worker *w, char **error_r)
{
	(void)error_r;
	struct lmtpd *lm = xcalloc(1, sizeof(*lm));
	lm->worker = w;
	worker_set_context(w, lm);
	if (gethostname(lm->hostname, sizeof(lm->hostname) - 1) < 0 || lm->hostname[0] == '\0')
		strcpy(lm->hostname, "localhost");
	/* the name appears in replies and Received headers: keep it a plain name */
	for (char *p = lm->hostname; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '(' || *p == ')' || *p == ';')
			*p = '-';
	lm->mail_root = xasprintf("%s/mail", worker_datadir(w));
	lmtpd_load_settings(lm);
	return 0;
}

static void lmtpd_settings_changed(struct worker *w)
{
	lmtpd_load_settings(worker_context(w));
}

static void lmtpd_shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct lmtpd *lm = arg;
	worker_shutdown_done(lm->worker);
}

static void lmtpd_shutdown(struct worker *w)
{
	struct lmtpd *lm = worker_context(w);
	lm->shutting_down = true;
	if (lm->nsessions == 0)
		worker_shutdown_done(w);
	for (struct lmtp_session *s = lm->sessions; s != NULL; s = s->next) {
		if (s->closing)
			continue;
		/* a transaction in progress is dropped: nothing was acknowledged
		 * yet, the client tries again later */
		smtp_server_reply(s->srv, 421, "4.3.2", "%s Server shutting down", lm->hostname);
		lmtpd_close(s);
	}
	lm->shutdown_ev = event_new(worker_event_base(w), -1, 0, lmtpd_shutdown_timeout_cb, lm);
	struct timeval tv = {LMTP_SHUTDOWN_GRACE_MS / 1000, (LMTP_SHUTDOWN_GRACE_MS % 1000) * 1000};
	event_add(lm->shutdown_ev, &tv);
}

static unsigned lmtpd_connection_count(struct worker *w)
{
	struct lmtpd *lm = worker_context(w);
	return lm != NULL ? lm->nsessions : 0;
}

const struct worker_service_ops lmtp_service_ops = {
    .name = "lmtp",
    .init = lmtpd_init,
    .settings_changed = lmtpd_settings_changed,
    .accepted = lmtpd_accepted,
    .authd_reply = lmtpd_authd_reply,
    .shutdown = lmtpd_shutdown,
    .connection_count = lmtpd_connection_count,
};
