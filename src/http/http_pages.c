#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_private.h"
#include "lib/log.h"
#include "lib/settings.h"
#include "lib/worker.h"
#include "lib/xalloc.h"
#include "lib/metrics.h"
#include "net/cidr.h"
#include "net/conn.h"

/* Sign-in, sign-out and the users' settings page. Passwords go to authd
 * with the same policy as the mail front ends (failure delay, tarpit for
 * untrusted sources, guests refused); authd keeps the session. */

#define HTTP_LOGIN_COOKIE "postern_login"
#define HTTP_MAX_USER	  320
#define HTTP_MAX_PASSWORD 1024

static bool http_is_admin(const struct http_conn *c)
{
	return c->user.signed_in && c->user.kind != NULL && strcmp(c->user.kind, "admin") == 0;
}

bool http_require_admin(struct http_conn *c)
{
	if (!c->user.signed_in) {
		http_redirect(c, "/login");
		return false;
	}
	if (!http_is_admin(c)) {
		http_send_error(c, 403, "The admin centre is for administrator accounts only.");
		return false;
	}
	return true;
}

/* The Origin of a browser's POST, when sent, names this host. */
static bool http_origin_ok(const struct http_conn *c)
{
	const char *origin = http_request_header(http_req(c), "Origin");
	const char *host = http_request_header(http_req(c), "Host");
	if (origin == NULL)
		return true;
	const char *authority = strstr(origin, "://");
	return host != NULL && authority != NULL && strcasecmp(authority + 3, host) == 0;
}

bool http_require_csrf(struct http_conn *c)
{
	char *token = http_param(c, "csrf");
	bool ok = c->user.signed_in && http_token_equal(token, c->user.csrf) && http_origin_ok(c);
	free(token);
	if (!ok) {
		log_msg(LOG_LEVEL_WARN, conn_log(c->conn), "POST %s refused: no valid CSRF token",
			http_req(c)->path);
		http_send_error(
		    c, 403, "This form is not valid any more: open the page again and resend it.");
	}
	return ok;
}

void http_page_root(struct http_conn *c)
{
	http_redirect(c, c->user.signed_in ? "/settings" : "/login");
}

/* ---- sign-in ---- */

/* Whether credentials may be sent on this connection (login-type). */
static bool http_login_allowed(const struct http_conn *c)
{
	return http_tls(c) || c->hd->login_type == HTTP_LOGIN_PLAIN_TEXT;
}

/* https://HOST[:PORT]/login from the Host header and the first SSL
 * binding, or NULL when the service has none. */
static char *http_secure_url(const struct http_conn *c, const char *path)
{
	const char *bindings = worker_setting(c->hd->worker, "ssl-bindings");
	const char *host = http_request_header(http_req(c), "Host");
	if (bindings == NULL || *bindings == '\0' || host == NULL)
		return NULL;
	unsigned n;
	char **items = settings_list_split(bindings, &n);
	const char *colon = n > 0 ? strrchr(items[0], ':') : NULL;
	unsigned port = colon != NULL ? (unsigned)strtoul(colon + 1, NULL, 10) : 0;
	settings_list_free(&items);
	if (port == 0)
		return NULL;
	/* the host without its port; [v6] keeps its brackets */
	size_t hlen = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
	if (hlen > strlen(host))
		hlen = strlen(host);
	char port_text[16] = "";
	if (port != 443)
		snprintf(port_text, sizeof(port_text), ":%u", port);
	return xasprintf("https://%.*s%s%s", (int)hlen, host, port_text, path);
}

static void http_login_form(struct http_conn *c, int status, const char *error)
{
	c->status = status;
	http_page_begin(c, "Sign in", "login");
	struct evbuffer *o = c->out;
	evbuffer_add_printf(o, "<h1>Sign in</h1>\n");
	if (!http_login_allowed(c)) {
		char *url = http_secure_url(c, "/login");
		evbuffer_add_printf(o,
				    "<p class=\"error\" role=\"alert\">Signing in needs a secure "
				    "connection. ");
		if (url != NULL) {
			evbuffer_add_printf(o, "Continue at <a href=\"");
			http_html_escape(o, url);
			evbuffer_add_printf(o, "\">");
			http_html_escape(o, url);
			evbuffer_add_printf(o, "</a>.");
		} else {
			evbuffer_add_printf(o, "This server has no secure address configured; ask "
					       "your administrator.");
		}
		evbuffer_add_printf(o, "</p>\n");
		free(url);
		http_page_end(c);
		http_send(c);
		return;
	}
	char token[65];
	if (http_random_token(token) < 0) {
		evbuffer_drain(o, evbuffer_get_length(o));
		http_send_error(c, 500, "The random generator failed.");
		return;
	}
	/* the form's token must match this cookie: a login form posted from
	 * another site has neither (SameSite=Strict) */
	http_set_cookie(c, HTTP_LOGIN_COOKIE, token);
	evbuffer_add_printf(o, "<p>Sign in with your mailbox's user name and password to see "
			       "the settings for your mail program.</p>\n");
	if (error != NULL) {
		evbuffer_add_printf(o, "<p class=\"error\" role=\"alert\" id=\"login-error\">");
		http_html_escape(o, error);
		evbuffer_add_printf(o, "</p>\n");
	}
	evbuffer_add_printf(
	    o,
	    "<form method=\"post\" action=\"/login\" class=\"card\">\n"
	    "<input type=\"hidden\" name=\"csrf\" value=\"%s\">\n"
	    "<label for=\"user\">User name</label>\n"
	    "<input type=\"text\" id=\"user\" name=\"user\" autocomplete=\"username\" "
	    "autocapitalize=\"none\" spellcheck=\"false\" required maxlength=\"%d\">\n"
	    "<label for=\"password\">Password</label>\n"
	    "<input type=\"password\" id=\"password\" name=\"password\" "
	    "autocomplete=\"current-password\" required maxlength=\"%d\">\n"
	    "<p><button type=\"submit\">Sign in</button></p>\n</form>\n",
	    token, HTTP_MAX_USER, HTTP_MAX_PASSWORD);
	http_page_end(c);
	http_send(c);
}

static void http_login_answered(struct http_conn *c, const struct ipc_msg *msg)
{
	const char *result = msg != NULL ? ipc_msg_get(msg, "result") : NULL;
	if (result != NULL && strcmp(result, "ok") == 0) {
		const char *session = ipc_msg_get(msg, "session");
		const char *kind = ipc_msg_get(msg, "kind");
		if (session == NULL) {
			http_send_error(c, 503, "No session could be started.");
			return;
		}
		http_set_cookie(c, HTTP_LOGIN_COOKIE, NULL);
		http_header_add(c,
				"Set-Cookie: postern_session=%s; Path=/; HttpOnly; "
				"SameSite=Strict%s",
				session, http_tls(c) ? "; Secure" : "");
		metrics_login(METRICS_LOGIN_OK);
		http_redirect(c,
			      kind != NULL && strcmp(kind, "admin") == 0 ? "/admin" : "/settings");
		return;
	}
	metrics_login_authd_failure(result != NULL ? result : "tempfail",
				    msg != NULL ? ipc_msg_get(msg, "cause") : NULL);
	if (result == NULL || strcmp(result, "tempfail") == 0) {
		http_send_error(c, 503, "Signing in is not possible right now; try again later.");
		return;
	}
	http_login_form(c, 403,
			strcmp(result, "refused") == 0
			    ? "This account may not sign in here."
			    : "The user name or password is not correct.");
}

void http_page_login(struct http_conn *c)
{
	const struct http_request *r = http_req(c);
	if (r->method != HTTP_POST) {
		if (c->user.signed_in)
			http_redirect(c, "/settings");
		else
			http_login_form(c, 200, NULL);
		return;
	}
	if (!http_login_allowed(c)) {
		log_msg(LOG_LEVEL_INFO, conn_log(c->conn),
			"sign-in refused: credentials on an unencrypted connection (login-type)");
		metrics_login(METRICS_LOGIN_LOGIN_TYPE);
		http_login_form(c, 403, NULL);
		return;
	}
	char *token = http_param(c, "csrf");
	char *cookie = http_cookie_get(r, HTTP_LOGIN_COOKIE);
	bool token_ok = http_token_equal(token, cookie) && http_origin_ok(c);
	free(token);
	free(cookie);
	if (!token_ok) {
		log_msg(LOG_LEVEL_INFO, conn_log(c->conn), "sign-in refused: %s",
			!http_origin_ok(c) ? "the Origin is another site's"
					   : "the form's token does not match its cookie");
		http_send_error(c, 403,
				"This sign-in form is not valid any more: open the sign-in "
				"page again.");
		return;
	}
	char *user = http_param(c, "user");
	char *password = http_param(c, "password");
	if (user == NULL || password == NULL || *user == '\0' || *password == '\0' ||
	    strlen(user) > HTTP_MAX_USER || strlen(password) > HTTP_MAX_PASSWORD) {
		free(user);
		free(password);
		http_login_form(c, 400, "Enter your user name and your password.");
		return;
	}
	struct httpd *hd = c->hd;
	char delay[16], idle[16], lifetime[16];
	snprintf(delay, sizeof(delay), "%u", hd->failure_delay_s);
	snprintf(idle, sizeof(idle), "%u", hd->session_timeout_s);
	snprintf(lifetime, sizeof(lifetime), "%u", hd->session_lifetime_s);
	bool trusted = net_cidr_match(hd->trusted, hd->trusted_count,
				      conn_peer_sockaddr(c->conn, &(socklen_t){0}));
	struct ipc_field f[] = {
	    {0},
	    {"service", "http"},
	    {"user", user},
	    {"password", password},
	    {"peer", conn_peer(c->conn)},
	    {"secured", http_tls(c) ? "yes" : "no"},
	    {"tarpit", trusted ? "no" : "yes"},
	    {"failure-delay", delay},
	    {"session-timeout", idle},
	    {"session-lifetime", lifetime},
	};
	int r2 = http_ask_authd(c, IPC_AUTH_REQUEST, f, 10, http_login_answered);
	memset(password, 0, strlen(password));
	free(password);
	free(user);
	if (r2 < 0)
		http_send_error(c, 503, "Signing in is not possible right now; try again later.");
}

static void http_logout_answered(struct http_conn *c, const struct ipc_msg *msg)
{
	(void)msg;
	http_set_cookie(c, "postern_session", NULL);
	http_redirect(c, "/login");
}

void http_page_logout(struct http_conn *c)
{
	if (!c->user.signed_in) {
		http_set_cookie(c, "postern_session", NULL);
		http_redirect(c, "/login");
		return;
	}
	if (!http_require_csrf(c))
		return;
	struct ipc_field f[2] = {{0}, {"session", c->session_id}};
	if (http_ask_authd(c, IPC_SESSION_END, f, 2, http_logout_answered) < 0)
		http_logout_answered(c, NULL);
}

/* ---- the settings page ---- */

static void http_dl_row(struct evbuffer *o, const char *id, const char *label, const char *value)
{
	evbuffer_add_printf(o, "<dt>%s</dt><dd id=\"%s\">", label, id);
	http_html_escape(o, value);
	evbuffer_add_printf(o, "</dd>\n");
}

/* a name with a domain is an address already */
char *http_user_address(const struct http_conn *c)
{
	const char *name = c->user.name != NULL ? c->user.name : "";
	if (strchr(name, '@') != NULL || c->user.domain == NULL || *c->user.domain == '\0')
		return xstrdup(name);
	return xasprintf("%s@%s", name, c->user.domain);
}

static void http_protocol_card(struct http_conn *c, const char *id, const char *title,
			       const char *service, bool user_switch)
{
	struct evbuffer *o = c->out;
	struct http_endpoint e[HTTP_MAX_ENDPOINTS];
	size_t n = http_service_endpoints(c->hd, service, e, HTTP_MAX_ENDPOINTS, NULL);
	bool admin = http_is_admin(c);
	const char *status, *status_class = "off";
	if (admin)
		status = "Not available for administrator accounts";
	else if (!user_switch)
		status = "Disabled for your account";
	else if (!http_service_offered(c->hd, service))
		status = "Not running on this server";
	else {
		status = "Enabled";
		status_class = "on";
	}
	evbuffer_add_printf(o,
			    "<section class=\"card\" aria-labelledby=\"%s-title\">\n"
			    "<h2 id=\"%s-title\">%s</h2>\n"
			    "<p>Status: <span id=\"%s-status\" class=\"%s\">%s</span></p>\n",
			    id, id, title, id, status_class, status);
	if (n == 0) {
		evbuffer_add_printf(o,
				    "<p id=\"%s-server\">No connection settings are published "
				    "for %s; ask your administrator.</p>\n</section>\n",
				    id, title);
		return;
	}
	/* the first SSL entry, else the first TLS one, as Exchange shows them */
	char port[16];
	snprintf(port, sizeof(port), "%u", e[0].port);
	char key[32];
	evbuffer_add_printf(o, "<dl>\n");
	snprintf(key, sizeof(key), "%s-server", id);
	http_dl_row(o, key, "Server name", e[0].host);
	snprintf(key, sizeof(key), "%s-port", id);
	http_dl_row(o, key, "Port", port);
	snprintf(key, sizeof(key), "%s-encryption", id);
	http_dl_row(o, key, "Encryption method", http_encryption_text(e[0].enc));
	snprintf(key, sizeof(key), "%s-user", id);
	http_dl_row(o, key, "User name", c->user.name);
	evbuffer_add_printf(o, "<dt>Authentication</dt><dd>Password (normal)</dd>\n</dl>\n");
	evbuffer_add_printf(o, "</section>\n");
}

void http_page_settings(struct http_conn *c)
{
	if (!c->user.signed_in) {
		http_redirect(c, "/login");
		return;
	}
	http_page_begin(c, "Mail settings", "settings");
	struct evbuffer *o = c->out;
	char *address = http_user_address(c);
	evbuffer_add_printf(o, "<h1>Settings for your mail program</h1>\n"
			       "<p>Use these settings to set up POP3, IMAP4 and SMTP for ");
	http_html_escape(o, address);
	evbuffer_add_printf(o, " in Outlook, Thunderbird, Apple Mail or any other mail "
			       "program. Your password is the one you signed in with.</p>\n"
			       "<div class=\"cards\">\n");
	http_protocol_card(c, "imap4", "IMAP4", "imap4", c->user.imap4);
	http_protocol_card(c, "pop3", "POP3", "pop3", c->user.pop3);
	http_protocol_card(c, "smtp", "SMTP", "submission", c->user.smtp);
	evbuffer_add_printf(
	    o, "</div>\n<h2>Automatic setup</h2>\n<ul>\n"
	       "<li>Thunderbird finds these settings by itself from your address.</li>\n"
	       "<li>Outlook finds them through Autodiscover.</li>\n"
	       "<li>iPhone, iPad and Mac: <a href=\"/mail.mobileconfig\" "
	       "id=\"mobileconfig\">download the configuration profile</a> and open it.</li>\n"
	       "</ul>\n<p class=\"help\">The settings document for this address is at "
	       "<a href=\"/mail/config-v1.1.xml?emailaddress=");
	http_url_escape(o, address);
	evbuffer_add_printf(o, "\">/mail/config-v1.1.xml</a>.</p>\n");
	if (http_is_admin(c))
		evbuffer_add_printf(o, "<p><a href=\"/admin\">Go to the admin centre</a></p>\n");
	free(address);
	http_page_end(c);
	http_send(c);
}
