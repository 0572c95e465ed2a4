#include "http/http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "http/http_private.h"
#include "lib/log.h"
#include "lib/worker.h"
#include "lib/xalloc.h"
#include "lib/metrics.h"
#include "net/cidr.h"
#include "net/conn.h"
#include "net/conn_limits.h"
#include "net/tls.h"

/* The http service's connections: a small, strict HTTP/1.1 server on conn
 * (TLS, PROXY header, bounded lines, idle time), keep-alive, the routes,
 * and the questions a request asks authd or the master while its
 * connection waits. One request is answered at a time per connection;
 * input is paused meanwhile, so pipelined requests wait their turn. */

#define HTTP_SESSION_COOKIE "postern_session"

struct http_route {
	const char *path;
	unsigned methods;
	bool any_case; /* the path matches ignoring case (Autodiscover) */
	bool session;  /* ask authd about the session cookie first */
	void (*handler)(struct http_conn *c);
};

static const struct http_route http_routes[] = {
    {"/", HTTP_GET | HTTP_HEAD, false, true, http_page_root},
    {"/login", HTTP_GET | HTTP_HEAD | HTTP_POST, false, true, http_page_login},
    {"/logout", HTTP_POST, false, true, http_page_logout},
    {"/settings", HTTP_GET | HTTP_HEAD, false, true, http_page_settings},
    {"/style.css", HTTP_GET | HTTP_HEAD, false, false, http_page_style},
    {"/mail/config-v1.1.xml", HTTP_GET | HTTP_HEAD, false, true, http_autoconfig_mozilla},
    {"/.well-known/autoconfig/mail/config-v1.1.xml", HTTP_GET | HTTP_HEAD, false, true,
     http_autoconfig_mozilla},
    {"/autodiscover/autodiscover.xml", HTTP_POST, true, true, http_autoconfig_autodiscover},
    {"/mail.mobileconfig", HTTP_GET | HTTP_HEAD, false, true, http_autoconfig_apple},
    {"/admin", HTTP_GET | HTTP_HEAD, false, true, http_admin_home},
    {"/admin/users", HTTP_GET | HTTP_HEAD, false, true, http_admin_users},
    {"/admin/user", HTTP_GET | HTTP_HEAD | HTTP_POST, false, true, http_admin_user},
    {"/admin/services", HTTP_GET | HTTP_HEAD | HTTP_POST, false, true, http_admin_services},
    {"/admin/settings", HTTP_GET | HTTP_HEAD | HTTP_POST, false, true, http_admin_settings},
    {"/admin/test", HTTP_GET | HTTP_HEAD | HTTP_POST, false, true, http_admin_test},
    {"/metrics", HTTP_GET | HTTP_HEAD, false, false, http_metrics},
};

/* ---- settings ---- */

static unsigned http_count(struct worker *w, const char *key, unsigned def)
{
	long long n = worker_setting_int(w, key, def);
	return n < 0 ? def : n > 0x7fffffff ? 0x7fffffff : (unsigned)n;
}

static void http_load_settings(struct httpd *hd)
{
	struct worker *w = hd->worker;
	const char *lt = worker_setting(w, "login-type");
	hd->login_type = lt != NULL && strcmp(lt, "plain-text-login") == 0 ? HTTP_LOGIN_PLAIN_TEXT
									   : HTTP_LOGIN_SECURE;
	hd->max_connections = http_count(w, "max-connections", 0);
	hd->max_connections_per_ip = http_count(w, "max-connections-from-single-ip", 0);
	unsigned t = http_count(w, "keep-alive-timeout", 15);
	hd->keep_alive_ms = (t == 0 ? 15 : t) * 1000;
	hd->failure_delay_s = http_count(w, "authentication-failure-delay", 2);
	hd->session_timeout_s = http_count(w, "session-timeout", 1800);
	hd->session_lifetime_s = http_count(w, "session-lifetime", 28800);
	net_cidr_list_replace("proxy-protocol-trusted", worker_setting(w, "proxy-protocol-trusted"),
			      &hd->proxy_trusted, &hd->proxy_trusted_count);
	net_cidr_list_replace("trusted-networks", worker_setting(w, "trusted-networks"),
			      &hd->trusted, &hd->trusted_count);
	net_cidr_list_replace("metrics-networks", worker_setting(w, "metrics-networks"),
			      &hd->metrics_networks, &hd->metrics_networks_count);
}

static int http_load_tls(struct httpd *hd, char **error_r)
{
	return tls_server_load_settings(hd->worker, &hd->tls, error_r);
}

/* ---- helpers for the pages ---- */

const struct http_request *http_req(const struct http_conn *c)
{
	return &c->parser.req;
}

const char *http_body(const struct http_conn *c, size_t *len_r)
{
	/* http_dispatch() added a NUL after the body, not counted here */
	size_t n = evbuffer_get_length(c->body);
	*len_r = n > 0 ? n - 1 : 0;
	return n == 0 ? "" : (const char *)evbuffer_pullup(c->body, -1);
}

char *http_query_param(const struct http_conn *c, const char *name)
{
	const char *q = c->parser.req.query;
	return http_form_get(q, strlen(q), name);
}

char *http_param(const struct http_conn *c, const char *name)
{
	if (c->parser.req.method != HTTP_POST)
		return http_query_param(c, name);
	size_t len;
	const char *body = http_body(c, &len);
	return http_form_get(body, len, name);
}

bool http_tls(const struct http_conn *c)
{
	return conn_tls_active(c->conn);
}

bool http_token_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return false;
	size_t n = strlen(a);
	return n > 0 && n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

int http_random_token(char *out)
{
	unsigned char b[32];
	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(out + i * 2, 3, "%02x", b[i]);
	return 0;
}

const char *http_status_text(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 303:
		return "See Other";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 417:
		return "Expectation Failed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

void http_header_add(struct http_conn *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(c->headers, fmt, ap);
	va_end(ap);
	evbuffer_add(c->headers, "\r\n", 2);
}

void http_set_cookie(struct http_conn *c, const char *name, const char *value)
{
	http_header_add(c, "Set-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Strict%s%s", name,
			value != NULL ? value : "", http_tls(c) ? "; Secure" : "",
			value == NULL ? "; Max-Age=0" : "");
}

void http_redirect(struct http_conn *c, const char *path)
{
	c->status = 303;
	http_header_add(c, "Location: %s", path);
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	c->content_type = NULL;
	http_send(c);
}

void http_send_error(struct http_conn *c, int status, const char *text)
{
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	c->status = status;
	char title[64];
	snprintf(title, sizeof(title), "%d %s", status, http_status_text(status));
	http_page_begin(c, title, NULL);
	evbuffer_add_printf(c->out, "<h1>%s</h1>\n<p>", title);
	http_html_escape(c->out, text);
	evbuffer_add_printf(c->out, "</p>\n");
	http_page_end(c);
	http_send(c);
}

/* ---- connections ---- */

static void http_conn_free(struct http_conn *c);
static void http_next_request(struct http_conn *c);

static void http_test_reap(struct http_conn *c)
{
	if (c->test_ev != NULL)
		event_free(c->test_ev);
	c->test_ev = NULL;
	if (c->test_fd >= 0)
		close(c->test_fd);
	c->test_fd = -1;
	if (c->test_pid > 0) {
		if (waitpid(c->test_pid, NULL, WNOHANG) == 0) {
			kill(c->test_pid, SIGKILL);
			waitpid(c->test_pid, NULL, 0);
		}
	}
	c->test_pid = 0;
	if (c->test_out != NULL)
		evbuffer_free(c->test_out);
	c->test_out = NULL;
}

static void http_user_clear(struct http_user *u)
{
	free(u->name);
	free(u->kind);
	if (u->csrf != NULL)
		OPENSSL_cleanse(u->csrf, strlen(u->csrf));
	free(u->csrf);
	free(u->domain);
	free(u->hostname);
	memset(u, 0, sizeof(*u));
}

/* what one request leaves behind */
static void http_request_clear(struct http_conn *c)
{
	http_user_clear(&c->user);
	free(c->session_id);
	c->session_id = NULL;
	free(c->note);
	c->note = NULL;
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	evbuffer_drain(c->headers, evbuffer_get_length(c->headers));
	evbuffer_drain(c->body, evbuffer_get_length(c->body));
	c->status = 0;
	c->content_type = NULL;
	c->cacheable = false;
	c->wait_id = 0;
	c->resume = NULL;
	c->handler = NULL;
	http_test_reap(c);
	evtimer_del(c->timer);
}

void http_send(struct http_conn *c)
{
	struct httpd *hd = c->hd;
	const struct http_request *r = &c->parser.req;
	bool keep = r->keep_alive && c->parser.state == HTTP_PARSE_DONE && !hd->shutting_down &&
		    c->requests < HTTP_MAX_REQUESTS_PER_CONN && !c->closing;
	if (c->status == 0)
		c->status = 200;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	size_t len = evbuffer_get_length(c->out);
	struct evbuffer *head = evbuffer_new();
	evbuffer_add_printf(head, "HTTP/1.1 %d %s\r\nDate: %s\r\n", c->status,
			    http_status_text(c->status), date);
	if (c->content_type != NULL)
		evbuffer_add_printf(head, "Content-Type: %s\r\n", c->content_type);
	evbuffer_add_printf(head,
			    "Content-Length: %zu\r\n"
			    "Connection: %s\r\n"
			    "Cache-Control: %s\r\n"
			    "Content-Security-Policy: default-src 'none'; style-src 'self'; "
			    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
			    "base-uri 'none'\r\n"
			    "X-Content-Type-Options: nosniff\r\n"
			    "X-Frame-Options: DENY\r\n"
			    "Referrer-Policy: same-origin\r\n",
			    len, keep ? "keep-alive" : "close",
			    c->cacheable ? "public, max-age=3600" : "no-store");
	if (http_tls(c))
		evbuffer_add_printf(head, "Strict-Transport-Security: max-age=31536000\r\n");
	evbuffer_add_buffer(head, c->headers);
	evbuffer_add(head, "\r\n", 2);
	if (r->method != HTTP_HEAD)
		evbuffer_add_buffer(head, c->out);
	size_t total = evbuffer_get_length(head);
	conn_write(c->conn, evbuffer_pullup(head, -1), total);
	evbuffer_free(head);
	log_msg(LOG_LEVEL_DEBUG, conn_log(c->conn), "%s %s %d %zu", r->method_text,
		r->path != NULL ? r->path : "-", c->status, len);
	http_request_clear(c);
	c->busy = false;
	if (!keep) {
		c->closing = true;
		conn_close_after_flush(c->conn);
		return;
	}
	http_next_request(c);
}

static void http_next_request(struct http_conn *c)
{
	http_parser_reset(&c->parser);
	conn_read_lines(c->conn);
	conn_set_idle_timeout(c->conn, c->hd->keep_alive_ms);
	conn_input_resume(c->conn);
}

/* ---- questions to authd and the master ---- */

static void http_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct http_conn *c = arg;
	if (c->test_pid > 0) {
		http_admin_test_finished(c, true);
		return;
	}
	if (c->wait_id != 0) {
		http_resume_fn resume = c->resume;
		c->wait_id = 0;
		c->resume = NULL;
		log_msg(LOG_LEVEL_WARN, conn_log(c->conn), "no answer from %s in %d s",
			"authd or the master", HTTP_BACKEND_TIMEOUT_S);
		resume(c, NULL);
		return;
	}
	if (!c->busy) {
		/* the client took too long to send its request */
		c->closing = true;
		c->parser.req.keep_alive = false;
		c->busy = true;
		conn_input_pause(c->conn);
		http_send_error(c, 408, "The request took too long to arrive.");
	}
}

static int http_ask(struct http_conn *c, bool master, enum ipc_type type, struct ipc_field *fields,
		    unsigned n, http_resume_fn resume)
{
	struct httpd *hd = c->hd;
	if (++hd->next_id == 0)
		hd->next_id = 1;
	char id[16];
	snprintf(id, sizeof(id), "%u", hd->next_id);
	fields[0].key = "id";
	fields[0].value = id;
	int r = master ? worker_master_send(hd->worker, type, fields, n)
		       : worker_authd_send(hd->worker, type, fields, n);
	if (r < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(c->conn), "%s unreachable",
			master ? "the master" : "authd");
		return -1;
	}
	c->wait_id = hd->next_id;
	c->resume = resume;
	struct timeval tv = {HTTP_BACKEND_TIMEOUT_S, 0};
	evtimer_add(c->timer, &tv);
	return 0;
}

int http_ask_authd(struct http_conn *c, enum ipc_type type, struct ipc_field *fields, unsigned n,
		   http_resume_fn resume)
{
	return http_ask(c, false, type, fields, n, resume);
}

int http_ask_master(struct http_conn *c, enum ipc_type type, struct ipc_field *fields, unsigned n,
		    http_resume_fn resume)
{
	return http_ask(c, true, type, fields, n, resume);
}

/* an answer to a question: the connection that waits for it resumes */
static void http_answer(struct httpd *hd, const struct ipc_msg *msg)
{
	const char *id_text = ipc_msg_get(msg, "id");
	unsigned id = id_text != NULL ? (unsigned)strtoul(id_text, NULL, 10) : 0;
	if (id == 0)
		return;
	for (struct http_conn *c = hd->conns; c != NULL; c = c->next) {
		if (c->wait_id != id)
			continue;
		http_resume_fn resume = c->resume;
		c->wait_id = 0;
		c->resume = NULL;
		evtimer_del(c->timer);
		resume(c, msg);
		return;
	}
	/* the connection left while the answer was on its way */
}

/* ---- dispatch ---- */

static void http_user_fill(struct http_user *u, const struct ipc_msg *msg)
{
	const char *v;
	u->domain = xstrdup((v = ipc_msg_get(msg, "domain")) != NULL ? v : "");
	u->hostname = xstrdup((v = ipc_msg_get(msg, "hostname")) != NULL ? v : "");
	v = ipc_msg_get(msg, "result");
	if (v == NULL || strcmp(v, "ok") != 0 || ipc_msg_get(msg, "user") == NULL)
		return;
	u->signed_in = true;
	u->name = xstrdup(ipc_msg_get(msg, "user"));
	u->kind = xstrdup((v = ipc_msg_get(msg, "kind")) != NULL ? v : "user");
	u->csrf = xstrdup((v = ipc_msg_get(msg, "csrf")) != NULL ? v : "");
	u->pop3 = (v = ipc_msg_get(msg, "pop3")) != NULL && strcmp(v, "on") == 0;
	u->imap4 = (v = ipc_msg_get(msg, "imap4")) != NULL && strcmp(v, "on") == 0;
	u->smtp = (v = ipc_msg_get(msg, "smtp")) != NULL && strcmp(v, "on") == 0;
}

static void http_session_checked(struct http_conn *c, const struct ipc_msg *msg)
{
	const char *result = msg != NULL ? ipc_msg_get(msg, "result") : NULL;
	if (result == NULL || strcmp(result, "tempfail") == 0) {
		http_send_error(c, 503, "The directory cannot be reached; try again in a moment.");
		return;
	}
	http_user_fill(&c->user, msg);
	c->handler(c);
}

static void http_dispatch(struct http_conn *c)
{
	struct httpd *hd = c->hd;
	const struct http_request *r = &c->parser.req;
	evtimer_del(c->timer);
	conn_input_pause(c->conn);
	conn_set_idle_timeout(c->conn, CONN_NO_TIMEOUT);
	c->busy = true;
	c->requests++;
	/* a NUL after the body, so a form body is a C string */
	evbuffer_add(c->body, "", 1);
	const struct http_route *route = NULL;
	bool path_known = false;
	for (size_t i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]); i++) {
		const struct http_route *rt = &http_routes[i];
		bool match = rt->any_case ? strcasecmp(rt->path, r->path) == 0
					  : strcmp(rt->path, r->path) == 0;
		if (!match)
			continue;
		path_known = true;
		if ((rt->methods & r->method) != 0)
			route = rt;
	}
	if (!path_known) {
		http_send_error(c, 404, "There is no such page here.");
		return;
	}
	if (route == NULL) {
		for (size_t i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]); i++) {
			const struct http_route *rt = &http_routes[i];
			if (strcasecmp(rt->path, r->path) != 0)
				continue;
			http_header_add(
			    c, "Allow: %s%s%s", (rt->methods & HTTP_GET) ? "GET, HEAD" : "",
			    (rt->methods & HTTP_GET) && (rt->methods & HTTP_POST) ? ", " : "",
			    (rt->methods & HTTP_POST) ? "POST" : "");
			break;
		}
		/* a method HTTP defines is not allowed here; others are unknown */
		static const char *const known[] = {"PUT",     "DELETE",  "PATCH",
						    "OPTIONS", "CONNECT", "TRACE"};
		bool is_known = r->method != HTTP_OTHER;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			is_known = is_known || strcmp(r->method_text, known[i]) == 0;
		http_send_error(c, is_known ? 405 : 501, "This page does not answer that method.");
		return;
	}
	if (hd->tls != NULL)
		tls_server_maybe_reload(hd->tls, time(NULL));
	if (!route->session) {
		route->handler(c);
		return;
	}
	c->handler = route->handler;
	c->session_id = http_cookie_get(r, HTTP_SESSION_COOKIE);
	struct ipc_field f[2] = {{0}, {"session", c->session_id != NULL ? c->session_id : ""}};
	if (http_ask_authd(c, IPC_SESSION_CHECK, f, 2, http_session_checked) < 0)
		http_send_error(c, 503, "The directory cannot be reached; try again in a moment.");
}

/* ---- conn callbacks ---- */

static void http_fail_request(struct http_conn *c, int status, const char *text)
{
	/* the stream cannot be trusted after a bad request: answer, then close */
	log_msg(LOG_LEVEL_DEBUG, conn_log(c->conn), "bad request: %d %s", status, text);
	c->parser.req.keep_alive = false;
	c->closing = true;
	c->busy = true;
	conn_input_pause(c->conn);
	evtimer_del(c->timer);
	http_send_error(c, status, text);
}

static void http_head_complete(struct http_conn *c)
{
	const struct http_request *r = &c->parser.req;
	const char *expect = http_request_header(r, "Expect");
	if (expect != NULL) {
		if (strcasecmp(expect, "100-continue") != 0) {
			http_fail_request(c, 417, "Only 'Expect: 100-continue' is understood.");
			return;
		}
		if (r->content_length > 0)
			conn_printf(c->conn, "HTTP/1.1 100 Continue\r\n\r\n");
	}
	if (r->content_length > 0) {
		conn_read_raw(c->conn, (size_t)r->content_length);
		return;
	}
	http_dispatch(c);
}

static void http_cb_ready(struct conn *conn, void *ctx)
{
	struct http_conn *c = ctx;
	struct httpd *hd = c->hd;
	socklen_t len;
	const struct sockaddr *peer = conn_peer_sockaddr(conn, &len);
	if (len <= sizeof(c->peer))
		memcpy(&c->peer, peer, len);
	const char *limit = NULL;
	if (!c->counted_total)
		limit = "max-connections";
	else if (conn_limits_try_add_ip(hd->limits, (struct sockaddr *)&c->peer,
					hd->max_connections_per_ip) == 0)
		limit = "max-connections-from-single-ip";
	else
		c->counted_ip = true;
	if (limit != NULL) {
		log_msg(LOG_LEVEL_INFO, conn_log(conn), "refused: %s reached", limit);
		c->parser.req.keep_alive = false;
		c->closing = true;
		c->busy = true;
		http_send_error(c, 503, "Too many connections; try again later.");
		return;
	}
	http_next_request(c);
}

static void http_cb_line(struct conn *conn, char *line, size_t len, void *ctx)
{
	(void)conn;
	struct http_conn *c = ctx;
	if (c->busy || c->closing)
		return;
	if (c->parser.state == HTTP_PARSE_REQUEST_LINE && len > 0 &&
	    !evtimer_pending(c->timer, NULL)) {
		/* the whole request must arrive in bounded time */
		struct timeval tv = {HTTP_REQUEST_TIMEOUT_S, 0};
		evtimer_add(c->timer, &tv);
		conn_set_idle_timeout(c->conn, HTTP_REQUEST_TIMEOUT_S * 1000);
	}
	int r = http_parser_line(&c->parser, line, len);
	if (r < 0)
		http_fail_request(c, c->parser.error_status, c->parser.error_text);
	else if (r > 0)
		http_head_complete(c);
}

static void http_cb_line_too_long(struct conn *conn, void *ctx)
{
	(void)conn;
	struct http_conn *c = ctx;
	if (c->busy || c->closing)
		return;
	int status = http_parser_line_too_long_status(&c->parser);
	http_fail_request(c, status,
			  status == 414 ? "The request line is too long."
					: "A header line is too long.");
}

static void http_cb_raw(struct conn *conn, const unsigned char *data, size_t len, size_t remaining,
			void *ctx)
{
	(void)conn;
	struct http_conn *c = ctx;
	if (c->busy || c->closing)
		return;
	evbuffer_add(c->body, data, len);
	if (remaining == 0)
		http_dispatch(c);
}

static void http_cb_timeout(struct conn *conn, void *ctx)
{
	(void)conn;
	struct http_conn *c = ctx;
	/* idle between requests: close without a word (RFC 9112 9.5) */
	c->closing = true;
}

static void http_cb_closed(struct conn *conn, enum conn_close_reason reason, const char *detail,
			   void *ctx)
{
	log_msg(LOG_LEVEL_DEBUG, conn_log(conn), "disconnected (%s%s%s)",
		conn_close_reason_str(reason), *detail ? ": " : "", detail);
	http_conn_free(ctx);
}

static const struct conn_callbacks http_conn_callbacks = {
    .ready = http_cb_ready,
    .line = http_cb_line,
    .line_too_long = http_cb_line_too_long,
    .raw = http_cb_raw,
    .timeout = http_cb_timeout,
    .closed = http_cb_closed,
};

static void http_conn_free(struct http_conn *c)
{
	struct httpd *hd = c->hd;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		hd->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	hd->nconns--;
	metrics_connection_closed();
	if (c->counted_total)
		conn_limits_remove_total(hd->limits);
	if (c->counted_ip)
		conn_limits_remove_ip(hd->limits, (struct sockaddr *)&c->peer);
	http_request_clear(c);
	http_parser_reset(&c->parser);
	event_free(c->timer);
	evbuffer_free(c->out);
	evbuffer_free(c->headers);
	evbuffer_free(c->body);
	conn_free(&c->conn);
	free(c);
	if (hd->shutting_down && hd->nconns == 0)
		worker_shutdown_done(hd->worker);
}

static void http_accepted(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len,
			  bool implicit_tls, const char *local)
{
	(void)local;
	struct httpd *hd = worker_context(w);
	if (hd->tls != NULL)
		tls_server_maybe_reload(hd->tls, time(NULL));
	if ((implicit_tls && hd->tls == NULL) || hd->shutting_down) {
		close(fd);
		return;
	}
	struct http_conn *c = xcalloc(1, sizeof(*c));
	c->hd = hd;
	c->test_fd = -1;
	if (peer_len <= sizeof(c->peer))
		memcpy(&c->peer, peer, peer_len);
	struct conn_settings set = {
	    .service = "http",
	    .tls_ctx = implicit_tls ? tls_server_ctx(hd->tls) : NULL,
	    .proxy_trusted = hd->proxy_trusted,
	    .proxy_trusted_count = hd->proxy_trusted_count,
	    .max_line = HTTP_MAX_LINE,
	    .idle_timeout_ms = hd->keep_alive_ms,
	};
	char *error = NULL;
	c->conn = conn_new(worker_event_base(w), fd, &set, &http_conn_callbacks, c, &error);
	if (c->conn == NULL) {
		log_error("cannot set up a connection: %s", error);
		free(error);
		free(c);
		return;
	}
	c->timer = evtimer_new(worker_event_base(w), http_timer_cb, c);
	c->out = evbuffer_new();
	c->headers = evbuffer_new();
	c->body = evbuffer_new();
	http_parser_reset(&c->parser);
	c->next = hd->conns;
	if (c->next != NULL)
		c->next->prev = c;
	hd->conns = c;
	hd->nconns++;
	metrics_connection_opened();
	c->counted_total = conn_limits_try_add_total(hd->limits, hd->max_connections) == 1;
}

/* ---- worker hooks ---- */

static int http_init(struct worker *w, char **error_r)
{
	struct httpd *hd = xcalloc(1, sizeof(*hd));
	hd->worker = w;
	hd->limits = conn_limits_new();
	worker_set_context(w, hd);
	http_load_settings(hd);
	/* the children of connectivity tests are reaped by their pipe's end */
	signal(SIGCHLD, SIG_DFL);
	return http_load_tls(hd, error_r);
}

static void http_settings_changed(struct worker *w)
{
	struct httpd *hd = worker_context(w);
	http_load_settings(hd);
	char *error = NULL;
	if (http_load_tls(hd, &error) < 0) {
		log_error("keeping the old certificate: %s", error);
		free(error);
	}
}

static void http_authd_reply(struct worker *w, const struct ipc_msg *msg)
{
	http_answer(worker_context(w), msg);
}

static void http_master_message(struct worker *w, const struct ipc_msg *msg)
{
	struct httpd *hd = worker_context(w);
	if (msg->type == IPC_SERVICE_INFO)
		http_services_update(hd, msg);
	else if (msg->type == IPC_CONTROL_REPLY)
		http_answer(hd, msg);
	else
		log_warn("unexpected message %d from the master; ignored", (int)msg->type);
}

static void http_shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct httpd *hd = arg;
	worker_shutdown_done(hd->worker);
}

static void http_shutdown(struct worker *w)
{
	struct httpd *hd = worker_context(w);
	hd->shutting_down = true;
	if (hd->nconns == 0)
		worker_shutdown_done(w);
	/* idle connections close now; a request in progress is answered first
	 * (with Connection: close) */
	for (struct http_conn *c = hd->conns; c != NULL; c = c->next) {
		if (!c->busy && !c->closing) {
			c->closing = true;
			conn_close_after_flush(c->conn);
		}
	}
	hd->shutdown_ev = event_new(worker_event_base(w), -1, 0, http_shutdown_timeout_cb, hd);
	struct timeval tv = {HTTP_SHUTDOWN_GRACE_MS / 1000, (HTTP_SHUTDOWN_GRACE_MS % 1000) * 1000};
	event_add(hd->shutdown_ev, &tv);
}

static unsigned http_connection_count(struct worker *w)
{
	struct httpd *hd = worker_context(w);
	return hd != NULL ? hd->nconns : 0;
}

const struct worker_service_ops http_service_ops = {
    .name = "http",
    .init = http_init,
    .settings_changed = http_settings_changed,
    .accepted = http_accepted,
    .authd_reply = http_authd_reply,
    .shutdown = http_shutdown,
    .connection_count = http_connection_count,
    .master_message = http_master_message,
};
