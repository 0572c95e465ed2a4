#ifndef POSTERN_HTTP_PRIVATE_H
#define POSTERN_HTTP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "http/http_request.h"
#include "lib/ipc.h"

struct conn;
struct conn_limits;
struct event;
struct evbuffer;
struct ipc_msg;
struct net_cidr;
struct tls_server;
struct worker;
struct http_conn;

/* Bounds of the http service (docs/LIMITS.md); the request bounds are in
 * http_request.h. */
#define HTTP_REQUEST_TIMEOUT_S	   30	/* to send one whole request: 408 after */
#define HTTP_BACKEND_TIMEOUT_S	   90	/* authd (failure delay + tarpit) or the master: 503 */
#define HTTP_MAX_REQUESTS_PER_CONN 1000 /* then the connection closes */
#define HTTP_SHUTDOWN_GRACE_MS	   3000
#define HTTP_CONNTEST_TIMEOUT_S	   15 /* one connectivity test from the admin centre */
#define HTTP_MAX_CONNTEST_OUTPUT   (32 * 1024)
#define HTTP_MAX_SERVICES	   16

/* login-type: form logins over plain HTTP only with plain-text-login (HTTP
 * has no SASL: plain-text-authentication is as strict as secure-login). */
enum http_login_type { HTTP_LOGIN_PLAIN_TEXT, HTTP_LOGIN_SECURE };

/* What the master told of one service (IPC_SERVICE_INFO). */
struct http_service_info {
	char *name;
	char *state; /* "running", "stopped", ... */
	size_t n;
	char **keys;
	char **values;
};

struct httpd {
	struct worker *worker;
	struct tls_server *tls;
	struct conn_limits *limits;
	struct http_conn *conns;
	unsigned nconns;
	unsigned next_id;
	bool shutting_down;
	struct event *shutdown_ev;

	/* settings, re-read on every change */
	enum http_login_type login_type;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	unsigned keep_alive_ms;
	unsigned failure_delay_s;
	unsigned session_timeout_s;
	unsigned session_lifetime_s;
	struct net_cidr *proxy_trusted;
	size_t proxy_trusted_count;
	struct net_cidr *trusted;
	size_t trusted_count;
	struct net_cidr *metrics_networks; /* who may read /metrics */
	size_t metrics_networks_count;

	struct http_service_info services[HTTP_MAX_SERVICES];
	size_t nservices;
};

/* What a session check told (authd: IPC_SESSION_REPLY). */
struct http_user {
	bool signed_in;
	char *name;
	char *kind;
	char *csrf;
	bool pop3, imap4, smtp; /* the user's switches */
	char *domain;		/* the instance's mail domain and host name */
	char *hostname;
};

typedef void (*http_resume_fn)(struct http_conn *c, const struct ipc_msg *msg);

struct http_conn {
	struct httpd *hd;
	struct conn *conn;
	struct http_conn *prev, *next;
	struct sockaddr_storage peer;
	bool counted_total, counted_ip;
	bool closing;
	bool busy; /* a complete request is being answered */
	struct http_parser parser;
	struct evbuffer *body; /* the request body as it arrives */
	unsigned requests;
	struct event *timer; /* the request's timeout, or the backend's */

	/* a question to authd or the master this request waits for */
	unsigned wait_id;
	http_resume_fn resume;
	void (*handler)(struct http_conn *c); /* runs after the session check */

	/* the answer */
	int status;
	const char *content_type;
	struct evbuffer *headers; /* extra header lines */
	struct evbuffer *out;	  /* the body */
	bool cacheable;		  /* Cache-Control: public, else no-store */

	/* the request's signed-in user, after the session check */
	struct http_user user;
	char *session_id; /* the session cookie's value */

	/* a connectivity test run for the admin centre */
	pid_t test_pid;
	int test_fd;
	struct event *test_ev;
	struct evbuffer *test_out;
	char *note; /* a handler's text to show on the next page it renders */
};

/* http_server.c */
/* The request, its body (NUL-terminated) and the form fields of a POST or
 * the query of a GET. */
const struct http_request *http_req(const struct http_conn *c);
const char *http_body(const struct http_conn *c, size_t *len_r);
/* A form field (POST body) or query parameter (GET), decoded, malloc'ed;
 * NULL when absent. */
char *http_param(const struct http_conn *c, const char *name);
char *http_query_param(const struct http_conn *c, const char *name);
bool http_tls(const struct http_conn *c);
/* Answer: set c->status/content_type/out (and headers), then send. */
void http_header_add(struct http_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void http_send(struct http_conn *c);
/* An error page for status with one sentence of text. */
void http_send_error(struct http_conn *c, int status, const char *text);
/* 303 See Other to a local path. */
void http_redirect(struct http_conn *c, const char *path);
/* A cookie: value NULL deletes it. HttpOnly, SameSite=Strict, Path=/,
 * Secure on TLS. */
void http_set_cookie(struct http_conn *c, const char *name, const char *value);
/* Ask authd / the master; fields[0] is left free for the id. resume runs
 * with the reply, or with NULL when none came (timeout, unreachable).
 * Returns 0, or -1 (resume is not called; answer 503). */
int http_ask_authd(struct http_conn *c, enum ipc_type type, struct ipc_field *fields, unsigned n,
		   http_resume_fn resume);
int http_ask_master(struct http_conn *c, enum ipc_type type, struct ipc_field *fields, unsigned n,
		    http_resume_fn resume);
/* The login type and the constant-time comparison of two tokens. */
bool http_token_equal(const char *a, const char *b);
/* 32 random bytes in hex into out (65 bytes). Returns 0 or -1. */
int http_random_token(char *out);
/* The text of a status code. */
const char *http_status_text(int status);

/* http_html.c */
void http_html_escape(struct evbuffer *out, const char *text);
void http_html_escape_n(struct evbuffer *out, const char *text, size_t len);
/* Percent-encode for a query value (the result needs no HTML escaping). */
void http_url_escape(struct evbuffer *out, const char *text);
/* The signed-in user's mail address, malloc'ed. */
char *http_user_address(const struct http_conn *c);
/* XML text and attribute values: the same five characters */
#define http_xml_escape http_html_escape
/* The page's head and navigation; section names the active link. */
void http_page_begin(struct http_conn *c, const char *title, const char *section);
void http_page_end(struct http_conn *c);
/* A hidden CSRF field with the session's token. */
void http_csrf_field(struct http_conn *c);
/* The stylesheet (served as /style.css). */
extern const char http_stylesheet[];

/* http_services.c: the other services, as the master told */
void http_services_update(struct httpd *hd, const struct ipc_msg *msg);
const struct http_service_info *http_service(const struct httpd *hd, const char *name);
const char *http_service_setting(const struct httpd *hd, const char *service, const char *key);
/* Started and not disabled: what autoconfiguration offers. */
bool http_service_offered(const struct httpd *hd, const char *service);

enum http_encryption { HTTP_ENC_SSL, HTTP_ENC_TLS, HTTP_ENC_NONE };
struct http_endpoint {
	char host[256];
	unsigned port;
	enum http_encryption enc;
};
#define HTTP_MAX_ENDPOINTS 8
/* What users are told to connect to for a client service (imap4, pop3,
 * submission): external-connection-settings, or internal-connection-
 * settings when none is set, SSL entries first, then TLS, then none.
 * Returns the count (0: nothing configured); *key_r names the setting. */
size_t http_service_endpoints(const struct httpd *hd, const char *service,
			      struct http_endpoint *out, size_t max, const char **key_r);
/* "SSL/TLS", "STARTTLS", "none" */
const char *http_encryption_text(enum http_encryption enc);
/* The login name for an address: the local part in the instance's domain,
 * the whole address elsewhere (as the submission service maps a user to
 * its address). */
char *http_login_name(const char *address, const char *instance_domain);

/* the handlers */
void http_page_root(struct http_conn *c);
void http_page_login(struct http_conn *c);
void http_page_logout(struct http_conn *c);
void http_page_settings(struct http_conn *c);
void http_page_style(struct http_conn *c);
void http_autoconfig_mozilla(struct http_conn *c);
void http_autoconfig_autodiscover(struct http_conn *c);
void http_autoconfig_apple(struct http_conn *c);
void http_admin_home(struct http_conn *c);
void http_admin_users(struct http_conn *c);
void http_admin_user(struct http_conn *c);
void http_admin_services(struct http_conn *c);
void http_admin_settings(struct http_conn *c);
void http_admin_test(struct http_conn *c);
/* http_metrics.c */
void http_metrics(struct http_conn *c);
/* http_admin.c: the connectivity test child ended or timed out */
void http_admin_test_finished(struct http_conn *c, bool timed_out);
/* a reply to a control request, for the admin pages */
/* true when the signed-in user is an administrator; else answers 403 */
bool http_require_admin(struct http_conn *c);
/* true when the POST carries the session's CSRF token; else answers 403 */
bool http_require_csrf(struct http_conn *c);

#endif
