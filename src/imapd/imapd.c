#include "imapd/imapd.h"

#include <event2/event.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "imapd/imapd_private.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/worker.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "store/store.h"

/* The service: sessions, their input (the IMAP parser fed with lines and
 * literal chunks), the command table, the shared per-user stores and the
 * worker hooks (authd replies, kick, shutdown). */

/* ---- output ---- */

void imapd_flush(struct imapd_session *s)
{
	if (s->out.len > 0)
		conn_write(s->conn, s->out.data, s->out.len);
	imap_buf_clear(&s->out);
}

void imapd_untagged(struct imapd_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	imap_buf_str(&s->out, "* ");
	imap_buf_vprintf(&s->out, fmt, ap);
	imap_buf_str(&s->out, "\r\n");
	va_end(ap);
	imapd_flush(s);
}

void imapd_close(struct imapd_session *s)
{
	s->closing = true;
	s->state = IMAPD_LOGOUT;
	conn_close_after_flush(s->conn);
}

void imapd_bad(struct imapd_session *s, const char *text)
{
	const char *tag = s->cmd != NULL ? s->cmd->tag : NULL;
	imap_write_status(&s->out, tag, IMAP_BAD, IMAP_CODE_NONE, NULL, "%s", text);
	imapd_flush(s);
	s->cmd = NULL;
	metrics_command_end(&s->metrics);
	if (++s->bad_commands >= IMAPD_MAX_BAD_COMMANDS) {
		imapd_untagged(s, "BYE Too many invalid commands");
		imapd_close(s);
	}
}

/* Which commands may be answered with EXPUNGE: not FETCH, STORE, SEARCH
 * (RFC 3501 7.4.1) nor any other command that takes sequence numbers,
 * except MOVE, whose expunges are its result. */
static bool imapd_expunge_allowed(const struct imap_command *cmd)
{
	if (cmd == NULL || cmd->uid)
		return true;
	return (cmd->def->flags & IMAP_CMD_FLAG_SEQ) == 0 || cmd->def->id == IMAP_CMD_MOVE;
}

void imapd_done(struct imapd_session *s, enum imap_status status, enum imap_resp_code code,
		const char *code_args, const char *fmt, ...)
{
	struct imap_command *cmd = s->cmd;
	if (s->state == IMAPD_SELECTED)
		imapd_sync(s, imapd_expunge_allowed(cmd));
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	imap_write_status(&s->out, cmd != NULL ? cmd->tag : NULL, status, code, code_args, "%s",
			  text);
	imapd_flush(s);
	if (status == IMAP_BAD) {
		if (++s->bad_commands >= IMAPD_MAX_BAD_COMMANDS) {
			imapd_untagged(s, "BYE Too many invalid commands");
			imapd_close(s);
		}
	} else {
		s->bad_commands = 0;
	}
	s->cmd = NULL;
	metrics_command_end(&s->metrics);
	if (s->async != IMAPD_ASYNC_NONE) {
		if (s->async == IMAPD_ASYNC_IDLE)
			s->u->idling--;
		s->async = IMAPD_ASYNC_NONE;
		if (!s->closing)
			conn_input_resume(s->conn);
	}
}

/* ---- the command table ---- */

void imapd_cmd_refuse(struct imapd_session *s, struct imap_command *cmd)
{
	if (cmd->def->id == IMAP_CMD_STARTTLS || cmd->def->id == IMAP_CMD_AUTHENTICATE)
		imapd_done(s, IMAP_NO, IMAP_CODE_NONE, NULL,
			   "This back end serves front ends only");
	else
		imapd_done(s, IMAP_BAD, IMAP_CODE_CLIENTBUG, NULL, "%s is not supported",
			   cmd->def->name);
}

static imapd_cmd_fn *const imapd_handlers[IMAP_CMD_COUNT_] = {
    [IMAP_CMD_CAPABILITY] = imapd_cmd_capability,
    [IMAP_CMD_NOOP] = imapd_cmd_noop,
    [IMAP_CMD_LOGOUT] = imapd_cmd_logout,
    [IMAP_CMD_STARTTLS] = imapd_cmd_refuse,
    [IMAP_CMD_AUTHENTICATE] = imapd_cmd_refuse,
    [IMAP_CMD_LOGIN] = imapd_cmd_login,
    [IMAP_CMD_ENABLE] = imapd_cmd_enable,
    [IMAP_CMD_SELECT] = imapd_cmd_select,
    [IMAP_CMD_EXAMINE] = imapd_cmd_select,
    [IMAP_CMD_CREATE] = imapd_cmd_create,
    [IMAP_CMD_DELETE] = imapd_cmd_delete,
    [IMAP_CMD_RENAME] = imapd_cmd_rename,
    [IMAP_CMD_SUBSCRIBE] = imapd_cmd_subscribe,
    [IMAP_CMD_UNSUBSCRIBE] = imapd_cmd_unsubscribe,
    [IMAP_CMD_LIST] = imapd_cmd_list,
    [IMAP_CMD_LSUB] = imapd_cmd_list,
    [IMAP_CMD_NAMESPACE] = imapd_cmd_namespace,
    [IMAP_CMD_STATUS] = imapd_cmd_status,
    [IMAP_CMD_APPEND] = imapd_cmd_append,
    [IMAP_CMD_IDLE] = imapd_cmd_idle,
    [IMAP_CMD_CHECK] = imapd_cmd_check,
    [IMAP_CMD_CLOSE] = imapd_cmd_close,
    [IMAP_CMD_UNSELECT] = imapd_cmd_unselect,
    [IMAP_CMD_EXPUNGE] = imapd_cmd_expunge,
    [IMAP_CMD_SEARCH] = imapd_cmd_search,
    [IMAP_CMD_FETCH] = imapd_cmd_fetch,
    [IMAP_CMD_STORE] = imapd_cmd_store,
    [IMAP_CMD_COPY] = imapd_cmd_copy,
    [IMAP_CMD_MOVE] = imapd_cmd_copy,
    [IMAP_CMD_SORT] = imapd_cmd_sort,
    [IMAP_CMD_THREAD] = imapd_cmd_thread,
    [IMAP_CMD_GETQUOTA] = imapd_cmd_getquota,
    [IMAP_CMD_GETQUOTAROOT] = imapd_cmd_getquotaroot,
    [IMAP_CMD_SETQUOTA] = imapd_cmd_setquota,
    [IMAP_CMD_COMPRESS] = imapd_cmd_compress,
    [IMAP_CMD_ID] = imapd_cmd_id,
};

static unsigned imapd_state_bit(const struct imapd_session *s)
{
	switch (s->state) {
	case IMAPD_AUTH:
		return IMAP_STATE_AUTH;
	case IMAPD_SELECTED:
		return IMAP_STATE_SELECTED;
	default:
		return IMAP_STATE_NOT_AUTH;
	}
}

static void imapd_execute(struct imapd_session *s, struct imap_command *cmd)
{
	s->cmd = cmd;
	metrics_command_begin(&s->metrics, cmd->def->name);
	if (!imap_command_allowed(cmd->def, imapd_state_bit(s))) {
		imapd_done(s, IMAP_BAD, IMAP_CODE_NONE, NULL, "%s not allowed %s", cmd->name,
			   s->state == IMAPD_NOT_AUTH	? "before login"
			   : s->state == IMAPD_SELECTED ? "now"
							: "without a selected mailbox");
		return;
	}
	imapd_cmd_fn *run = imapd_handlers[cmd->def->id];
	if (run == NULL)
		run = imapd_cmd_refuse;
	run(s, cmd);
}

static void imapd_parse_failed(struct imapd_session *s, const struct imap_parse_result *res)
{
	metrics_command_now(NULL);
	imap_write_parse_error(&s->out, res->error.tag, res->error.code, res->error.text,
			       res->error.bye);
	imapd_flush(s);
	if (res->error.bye) {
		imapd_close(s);
		return;
	}
	if (++s->bad_commands >= IMAPD_MAX_BAD_COMMANDS) {
		imapd_untagged(s, "BYE Too many invalid commands");
		imapd_close(s);
	}
}

static void imapd_parse_result(struct imapd_session *s, int r, struct imap_parse_result *res)
{
	if (r < 0) {
		imapd_append_stream_clear(s);
		imapd_parse_failed(s, res);
		return;
	}
	if (r == 0) {
		if (res->event != IMAP_PARSE_LITERAL)
			return;
		if (res->literal_stream && !res->literal_skip)
			imapd_append_stream_begin(s, res->literal_size);
		if (res->literal_sync && !res->literal_skip) {
			imap_write_continuation(&s->out, "Ready for literal data");
			imapd_flush(s);
		}
		if (res->literal_size > 0)
			conn_read_raw(s->conn, res->literal_size);
		return;
	}
	imapd_execute(s, res->command);
	imapd_append_stream_clear(s);
}

/* ---- connection callbacks ---- */

static void imapd_cb_ready(struct conn *conn, void *ctx)
{
	(void)conn;
	struct imapd_session *s = ctx;
	const char *banner = worker_setting(s->srv->worker, "banner");
	imapd_untagged(s, "OK [CAPABILITY %s] %s", imapd_capabilities_pre(s),
		       banner != NULL && *banner ? banner : "postern IMAP4 back end ready.");
}

static void imapd_cb_line(struct conn *conn, char *line, size_t len, void *ctx)
{
	(void)conn;
	struct imapd_session *s = ctx;
	if (s->closing)
		return;
	if (s->async == IMAPD_ASYNC_IDLE) {
		imapd_idle_line(s, line, len);
		return;
	}
	if (s->state == IMAPD_NOT_AUTH && imap_parser_idle(s->parser) && imapd_xlogin(s, line, len))
		return;
	struct imap_parse_result res;
	int r = imap_parser_line(s->parser, line, len, &res);
	imapd_parse_result(s, r, &res);
}

static void imapd_cb_raw(struct conn *conn, const unsigned char *data, size_t len, size_t remaining,
			 void *ctx)
{
	(void)conn;
	struct imapd_session *s = ctx;
	if (s->closing)
		return;
	if (s->append_streaming) {
		imapd_append_stream_write(s, data, len);
		if (remaining == 0)
			s->append_streaming = false;
	}
	struct imap_parse_result res;
	int r = imap_parser_literal(s->parser, data, len, &res);
	if (r < 0)
		imapd_parse_result(s, r, &res);
}

static void imapd_cb_line_too_long(struct conn *conn, void *ctx)
{
	(void)conn;
	struct imapd_session *s = ctx;
	struct imap_parse_result res;
	imapd_append_stream_clear(s);
	imap_parser_line_too_long(s->parser, &res);
	imapd_parse_failed(s, &res);
}

static void imapd_cb_input_error(struct conn *conn, const char *text, void *ctx)
{
	(void)conn;
	struct imapd_session *s = ctx;
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "user=%s: %s",
		s->user != NULL ? s->user : "-", text);
	if (!s->closing && s->fetch == NULL)
		imapd_untagged(s, "BYE %s", text);
	s->closing = true;
	s->state = IMAPD_LOGOUT;
}

static void imapd_cb_output_pressure(struct conn *conn, bool blocked, void *ctx)
{
	(void)conn;
	struct imapd_session *s = ctx;
	if (!blocked)
		imapd_schedule(s);
}

static void imapd_cb_timeout(struct conn *conn, void *ctx)
{
	(void)conn;
	struct imapd_session *s = ctx;
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "idle timeout user=%s",
		s->user != NULL ? s->user : "-");
	/* a literal under way cannot be interrupted by a goodbye */
	if (s->fetch == NULL)
		imapd_untagged(s, "BYE Autologout; idle for too long");
	s->closing = true;
}

static void imapd_user_detach(struct imapd_session *s);

static void imapd_session_free(struct imapd_session *s)
{
	struct imapd *srv = s->srv;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->nsessions--;
	metrics_connection_closed();
	imapd_fetch_free(s);
	imapd_store_free(s);
	imapd_append_stream_clear(s);
	imapd_unselect(s);
	if (s->async == IMAPD_ASYNC_IDLE)
		s->u->idling--;
	imapd_user_detach(s);
	imap_seqset_deinit(&s->saved);
	imap_parser_free(&s->parser);
	imap_buf_deinit(&s->out);
	if (s->resume_ev != NULL)
		event_free(s->resume_ev);
	free(s->user);
	free(s->client);
	free(s->login_tag);
	conn_free(&s->conn);
	free(s);
	if (srv->shutting_down && srv->nsessions == 0)
		worker_shutdown_done(srv->worker);
}

static void imapd_cb_closed(struct conn *conn, enum conn_close_reason reason, const char *detail,
			    void *ctx)
{
	struct imapd_session *s = ctx;
	log_msg(LOG_LEVEL_DEBUG, conn_log(conn), "disconnected (%s%s%s) user=%s",
		conn_close_reason_str(reason), *detail ? ": " : "", detail,
		s->user != NULL ? s->user : "-");
	imapd_session_free(s);
}

static const struct conn_callbacks imapd_callbacks = {
    .ready = imapd_cb_ready,
    .line = imapd_cb_line,
    .raw = imapd_cb_raw,
    .line_too_long = imapd_cb_line_too_long,
    .input_error = imapd_cb_input_error,
    .output_pressure = imapd_cb_output_pressure,
    .timeout = imapd_cb_timeout,
    .closed = imapd_cb_closed,
};

/* Continue what runs across loop turns: a FETCH or STORE slice, or the
 * updates an idling client is waiting for. */
static void imapd_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct imapd_session *s = arg;
	if (s->closing || !conn_is_open(s->conn))
		return;
	switch (s->async) {
	case IMAPD_ASYNC_FETCH:
		imapd_fetch_resume(s);
		break;
	case IMAPD_ASYNC_STORE:
		imapd_store_resume(s);
		break;
	case IMAPD_ASYNC_IDLE:
		imapd_idle_notify(s);
		break;
	case IMAPD_ASYNC_NONE:
		break;
	}
}

void imapd_schedule(struct imapd_session *s)
{
	if (s->resume_ev != NULL && !s->closing)
		event_active(s->resume_ev, 0, 0);
}

/* ---- shared stores ---- */

/* Folders the watcher could not watch are polled: say so once per worker,
 * and run the poll timer while there are any. */
static void imapd_watch_polling(struct imapd *srv)
{
	bool polling = store_watcher_polling(srv->watcher);
	if (polling && !srv->poll_logged) {
		log_warn("inotify: %s; folders without a watch are polled every %d ms",
			 store_watcher_fallback(srv->watcher), IMAPD_WATCH_POLL_MS);
		srv->poll_logged = true;
	}
	if (polling && !evtimer_pending(srv->poll_ev, NULL)) {
		struct timeval tv = {IMAPD_WATCH_POLL_MS / 1000,
				     (IMAPD_WATCH_POLL_MS % 1000) * 1000};
		evtimer_add(srv->poll_ev, &tv);
	} else if (!polling && evtimer_pending(srv->poll_ev, NULL)) {
		evtimer_del(srv->poll_ev);
	}
}

static void imapd_watch_handle(struct imapd *srv)
{
	char *error = NULL;
	if (store_watcher_handle(srv->watcher, &error) < 0) {
		log_error("reading mailbox changes: %s", error);
		free(error);
	}
	imapd_watch_polling(srv);
}

static void imapd_watch_settled_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct imapd *srv = arg;
	imapd_watch_handle(srv);
	event_add(srv->watch_ev, NULL);
}

/* A Maildir changed. Another process's delivery renames its file into
 * cur/ just before it commits the index row; reconciling in between would
 * adopt the file under a second UID. So the changes are read
 * IMAPD_WATCH_SETTLE_MS after the first event. */
static void imapd_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct imapd *srv = arg;
	event_del(srv->watch_ev);
	struct timeval tv = {0, IMAPD_WATCH_SETTLE_MS * 1000};
	evtimer_add(srv->settle_ev, &tv);
}

static void imapd_watch_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct imapd *srv = arg;
	char *error = NULL;
	if (store_watcher_poll(srv->watcher, &error) < 0) {
		log_error("polling mailbox changes: %s", error);
		free(error);
	}
	imapd_watch_polling(srv);
}

/* inotify watches this worker may hold: the kernel bounds them per user
 * id, and the service's workers share that user id. */
static unsigned imapd_max_watches(struct imapd *srv)
{
	long long limit = IMAPD_WATCHES_DEFAULT;
	FILE *fp = fopen("/proc/sys/fs/inotify/max_user_watches", "re");
	if (fp != NULL) {
		if (fscanf(fp, "%lld", &limit) != 1 || limit <= 0)
			limit = IMAPD_WATCHES_DEFAULT;
		fclose(fp);
	}
	long long workers = worker_setting_int(srv->worker, "workers", 1);
	if (workers < 1)
		workers = 1;
	limit /= workers;
	return limit > UINT_MAX ? UINT_MAX : (unsigned)limit;
}

/* The watcher is made at the first login, not at start-up: the worker
 * has dropped its privileges by then, and the inotify instance counts
 * against the user id that reads the mail. */
static void imapd_watcher_start(struct imapd *srv)
{
	if (srv->watcher != NULL)
		return;
	struct event_base *base = worker_event_base(srv->worker);
	unsigned max_watches = imapd_max_watches(srv);
	srv->watcher = store_watcher_new(max_watches);
	int fd = store_watcher_fd(srv->watcher);
	if (fd >= 0) {
		srv->watch_ev = event_new(base, fd, EV_READ | EV_PERSIST, imapd_watch_cb, srv);
		srv->settle_ev = evtimer_new(base, imapd_watch_settled_cb, srv);
		event_add(srv->watch_ev, NULL);
	}
	srv->poll_ev = evtimer_new(base, imapd_watch_poll_cb, srv);
	log_debug("watching the users' Maildirs with %s, up to %u inotify watches",
		  fd >= 0 ? "one inotify instance" : "polling only", max_watches);
}

int imapd_user_attach(struct imapd_session *s, const char *user, uint64_t quota, char **error_r)
{
	struct imapd *srv = s->srv;
	struct imapd_user *u;
	for (u = srv->users; u != NULL; u = u->next)
		if (strcasecmp(u->name, user) == 0)
			break;
	if (u == NULL) {
		struct store *store = NULL;
		if (store_open(srv->mail_root, user, quota, &store, error_r) < 0)
			return -1;
		imapd_watcher_start(srv);
		char *error = NULL;
		if (store_watch_attach(store, srv->watcher, &error) < 0) {
			/* without it, other processes' changes show at the next SELECT */
			log_error("user=%s: no change notifications: %s", user, error);
			free(error);
		}
		imapd_watch_polling(srv);
		u = xcalloc(1, sizeof(*u));
		u->srv = srv;
		u->name = xstrdup(user);
		u->store = store;
		u->next = srv->users;
		srv->users = u;
	}
	u->refs++;
	s->u = u;
	s->sub_id = store_subscribe(u->store, imapd_store_event, s);
	return 0;
}

static void imapd_user_detach(struct imapd_session *s)
{
	struct imapd_user *u = s->u;
	if (u == NULL)
		return;
	store_unsubscribe(u->store, s->sub_id);
	s->u = NULL;
	if (--u->refs > 0)
		return;
	struct imapd *srv = u->srv;
	for (struct imapd_user **p = &srv->users; *p != NULL; p = &(*p)->next)
		if (*p == u) {
			*p = u->next;
			break;
		}
	/* closing detaches it from the watcher: its watches go */
	store_close(&u->store);
	free(u->name);
	free(u);
}

struct store *imapd_store(const struct imapd_session *s)
{
	return s->u != NULL ? s->u->store : NULL;
}

void imapd_poll_changes(struct imapd_session *s)
{
	struct imapd_user *u = s->u;
	struct imapd *srv = s->srv;
	if (u == NULL || srv->watcher == NULL)
		return;
	/* changes already settled; a pending settle timer brings the rest */
	if (srv->watch_ev != NULL && !evtimer_pending(srv->settle_ev, NULL))
		imapd_watch_handle(srv);
	/* the user's polled folders: now rather than at the next tick */
	char *error = NULL;
	if (store_watch_poll(u->store, &error) < 0) {
		log_error("user=%s: polling mailbox changes: %s", u->name, error);
		free(error);
	}
}

/* ---- authd ---- */

static unsigned imapd_next_id(struct imapd *srv)
{
	if (++srv->next_request_id == 0)
		srv->next_request_id = 1;
	return srv->next_request_id;
}

int imapd_verify_ticket(struct imapd_session *s, const char *user, const char *peer,
			const char *expiry, const char *mac)
{
	s->request_id = imapd_next_id(s->srv);
	char id[16];
	snprintf(id, sizeof(id), "%u", s->request_id);
	struct ipc_field f[] = {
	    {"id", id}, {"user", user}, {"peer", peer}, {"expiry", expiry}, {"mac", mac}};
	if (worker_authd_send(s->srv->worker, IPC_TICKET_VERIFY, f, 5) < 0)
		return -1;
	s->state = IMAPD_VERIFYING;
	conn_input_pause(s->conn);
	return 0;
}

int imapd_direct_login(struct imapd_session *s, const char *admin, const char *password,
		       const char *target)
{
	s->request_id = imapd_next_id(s->srv);
	char id[16];
	snprintf(id, sizeof(id), "%u", s->request_id);
	struct ipc_field f[] = {{"id", id},
				{"service", "imap4-backend"},
				{"user", admin},
				{"password", password},
				{"peer", conn_peer(s->conn)},
				{"secured", "no"},
				{"tarpit", "yes"},
				{"act-as", target}};
	if (worker_authd_send(s->srv->worker, IPC_AUTH_REQUEST, f, 8) < 0)
		return -1;
	s->state = IMAPD_VERIFYING;
	conn_input_pause(s->conn);
	return 0;
}

bool imapd_direct_login_allowed(const struct imapd_session *s)
{
	return worker_setting_bool(s->srv->worker, "direct-admin-login", false);
}

static void imapd_authd_reply(struct worker *w, const struct ipc_msg *msg)
{
	struct imapd *srv = worker_context(w);
	/* ticket checks come back as IPC_USER_REPLY, direct admin logins as
	 * IPC_AUTH_REPLY; both carry id, result, user and quota */
	if (msg->type != IPC_USER_REPLY && msg->type != IPC_AUTH_REPLY)
		return;
	const char *id_text = ipc_msg_get(msg, "id");
	unsigned id = id_text != NULL ? (unsigned)strtoul(id_text, NULL, 10) : 0;
	for (struct imapd_session *s = srv->sessions; s != NULL && id != 0; s = s->next) {
		if (s->request_id != id || s->state != IMAPD_VERIFYING)
			continue;
		s->request_id = 0;
		const char *result = ipc_msg_get(msg, "result");
		const char *quota = ipc_msg_get(msg, "quota");
		const char *reason = ipc_msg_get(msg, "reason");
		imapd_login_verified(s, result != NULL && strcmp(result, "ok") == 0,
				     ipc_msg_get(msg, "user"),
				     quota != NULL ? strtoull(quota, NULL, 10) : 0,
				     reason != NULL ? reason : (result != NULL ? result : "?"));
		return;
	}
}

/* ---- the worker hooks ---- */

static void imapd_parser_limits(struct imapd *srv, struct imap_parser_limits *limits)
{
	imap_parser_limits_default(limits);
	limits->max_message = srv->append_limit;
	limits->literal_minus = srv->literal_minus;
	/* APPEND messages go to tmp/ files as they arrive, not to memory */
	limits->stream_messages = true;
	if (limits->max_append_total < limits->max_message)
		limits->max_append_total = limits->max_message;
	/* a command's lines and non-message literals: the line bound and a
	 * few literals of names and search strings */
	limits->max_command = IMAP_PARSER_DEFAULT_MAX_COMMAND > srv->max_command_size
				  ? IMAP_PARSER_DEFAULT_MAX_COMMAND
				  : srv->max_command_size;
}

static void imapd_load_settings(struct imapd *srv)
{
	struct worker *w = srv->worker;
	long long pre = worker_setting_int(w, "pre-authenticated-connection-timeout", 60);
	long long post = worker_setting_int(w, "authenticated-connection-timeout", 1800);
	srv->pre_auth_timeout_ms = (unsigned)(pre > 0 ? pre : 60) * 1000;
	srv->auth_timeout_ms = (unsigned)(post > 0 ? post : 1800) * 1000;
	long long size = worker_setting_int(w, "max-command-size", 10240);
	srv->max_command_size = (unsigned)(size > 0 ? size : 10240);
	long long limit = worker_setting_int(w, "max-message-size", IMAPD_DEFAULT_APPEND_LIMIT);
	srv->append_limit = (uint64_t)(limit > 0 ? limit : IMAPD_DEFAULT_APPEND_LIMIT);
	const char *literals = worker_setting(w, "non-synchronizing-literals");
	srv->literal_minus = literals != NULL && strcasecmp(literals, "literal-minus") == 0;
}

static int imapd_init(struct worker *w, char **error_r)
{
	(void)error_r;
	struct imapd *srv = xcalloc(1, sizeof(*srv));
	srv->worker = w;
	srv->mail_root = xasprintf("%s/mail", worker_datadir(w));
	worker_set_context(w, srv);
	imapd_load_settings(srv);
	return 0;
}

static void imapd_settings_changed(struct worker *w)
{
	imapd_load_settings(worker_context(w));
}

static void imapd_accepted(struct worker *w, int fd, const struct sockaddr *peer,
			   socklen_t peer_len, bool implicit_tls, const char *local)
{
	(void)peer;
	(void)peer_len;
	(void)local;
	struct imapd *srv = worker_context(w);
	if (implicit_tls || srv->shutting_down) {
		/* the back end's TLS binding needs the certificate: not offered */
		close(fd);
		return;
	}
	struct imapd_session *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	struct conn_settings set = {
	    .service = "imap4-backend",
	    .max_line = srv->max_command_size,
	    .idle_timeout_ms = srv->pre_auth_timeout_ms,
	};
	char *error = NULL;
	s->conn = conn_new(worker_event_base(w), fd, &set, &imapd_callbacks, s, &error);
	if (s->conn == NULL) {
		log_error("cannot set up a connection: %s", error);
		free(error);
		free(s);
		return;
	}
	struct imap_parser_limits limits;
	imapd_parser_limits(srv, &limits);
	s->parser = imap_parser_new(&limits);
	imap_buf_init(&s->out);
	imap_seqset_init(&s->saved, NULL);
	s->resume_ev = event_new(worker_event_base(w), -1, 0, imapd_resume_cb, s);
	s->next = srv->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	metrics_connection_opened();
}

static void imapd_shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct imapd *srv = arg;
	worker_shutdown_done(srv->worker);
}

/* End a session with a goodbye unless a literal is being streamed (a
 * goodbye would land inside it). */
static void imapd_goodbye(struct imapd_session *s, const char *text)
{
	if (s->fetch == NULL)
		imapd_untagged(s, "BYE %s", text);
	imapd_close(s);
}

static void imapd_shutdown(struct worker *w)
{
	struct imapd *srv = worker_context(w);
	srv->shutting_down = true;
	if (srv->nsessions == 0)
		worker_shutdown_done(w);
	for (struct imapd_session *s = srv->sessions; s != NULL; s = s->next)
		if (!s->closing)
			imapd_goodbye(s, "[UNAVAILABLE] Server shutting down");
	srv->shutdown_ev = event_new(worker_event_base(w), -1, 0, imapd_shutdown_timeout_cb, srv);
	struct timeval tv = {IMAPD_SHUTDOWN_GRACE_MS / 1000,
			     (IMAPD_SHUTDOWN_GRACE_MS % 1000) * 1000};
	event_add(srv->shutdown_ev, &tv);
}

static void imapd_kick(struct worker *w, const char *user)
{
	struct imapd *srv = worker_context(w);
	for (struct imapd_session *s = srv->sessions; s != NULL; s = s->next) {
		if (s->user == NULL || strcasecmp(s->user, user) != 0 || s->closing)
			continue;
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
			"user=%s: session ended by the administrator", s->user);
		imapd_goodbye(s, "Session ended by the administrator");
	}
}

static unsigned imapd_connection_count(struct worker *w)
{
	struct imapd *srv = worker_context(w);
	return srv != NULL ? srv->nsessions : 0;
}

const struct worker_service_ops imap4_backend_ops = {
    .name = "imap4-backend",
    .init = imapd_init,
    .settings_changed = imapd_settings_changed,
    .accepted = imapd_accepted,
    .authd_reply = imapd_authd_reply,
    .shutdown = imapd_shutdown,
    .kick = imapd_kick,
    .connection_count = imapd_connection_count,
};
