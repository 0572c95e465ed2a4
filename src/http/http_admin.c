#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin/admin.h"
#include "http/http_private.h"
#include "lib/log.h"
#include "lib/net_addr.h"
#include "lib/settings.h"
#include "lib/worker.h"
#include "lib/xalloc.h"
#include "net/conn.h"

/* The admin centre, for administrator accounts. Mailboxes are listed and
 * switched by authd (the only process with directory.db), which checks
 * the session's administrator again on every request; services are
 * started, stopped and configured by the master through the same handlers
 * as posternctl's control socket and `settings set`. */

#define HTTP_USER_LIST_LIMIT 200

static const char *const http_client_protocols[][2] = {
    {"pop3", "POP3"}, {"imap4", "IMAP4"}, {"smtp", "SMTP"}};

static void http_note(struct http_conn *c, const char *cls, const char *text)
{
	evbuffer_add_printf(c->out, "<p class=\"%s\" role=\"%s\">", cls,
			    strcmp(cls, "error") == 0 ? "alert" : "status");
	http_html_escape(c->out, text);
	evbuffer_add_printf(c->out, "</p>\n");
}

/* the reply text of a control request: its lines, and whether it ended ok */
static bool http_control_ok(const char *reply)
{
	if (reply == NULL)
		return false;
	const char *last = reply, *p = reply;
	while ((p = strchr(p, '\n')) != NULL && p[1] != '\0')
		last = ++p;
	return strncmp(last, "ok", 2) == 0;
}

/* The reply's lines a person wants to read: errors, warnings, applied. */
static char *http_control_text(const char *reply)
{
	struct evbuffer *b = evbuffer_new();
	char *copy = xstrdup(reply != NULL ? reply : "error no answer from the master");
	char *save = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "error ", 6) == 0 || strncmp(l, "warning ", 8) == 0)
			evbuffer_add_printf(b, "%s%s", evbuffer_get_length(b) ? "; " : "",
					    strchr(l, ' ') + 1);
		else if (strncmp(l, "applied ", 8) == 0)
			evbuffer_add_printf(b, "%sapplied to the running %s service",
					    evbuffer_get_length(b) ? "; " : "", l + 8);
	}
	free(copy);
	evbuffer_add(b, "", 1);
	char *text = xstrdup((const char *)evbuffer_pullup(b, -1));
	evbuffer_free(b);
	return text;
}

/* ---- home ---- */

void http_admin_home(struct http_conn *c)
{
	if (!http_require_admin(c))
		return;
	http_page_begin(c, "Admin centre", "admin");
	struct evbuffer *o = c->out;
	evbuffer_add_printf(
	    o, "<h1>Admin centre</h1>\n"
	       "<div class=\"cards\">\n"
	       "<section class=\"card\"><h2><a href=\"/admin/users\">Mailboxes</a></h2>"
	       "<p>Find mailboxes and switch POP3, IMAP4 and SMTP on or off for each.</p>"
	       "</section>\n"
	       "<section class=\"card\"><h2><a href=\"/admin/services\">Services</a></h2>"
	       "<p>Start, stop and restart services and see their status.</p></section>\n"
	       "<section class=\"card\"><h2><a href=\"/admin/settings\">Protocol "
	       "settings</a></h2><p>View and change each service's settings; changes "
	       "apply at once.</p></section>\n"
	       "<section class=\"card\"><h2><a href=\"/admin/test\">Connectivity "
	       "test</a></h2><p>Sign in to POP3 or IMAP4 as a user and time each step."
	       "</p></section>\n</div>\n"
	       "<h2>Services at a glance</h2>\n<div class=\"table\"><table>\n"
	       "<thead><tr><th scope=\"col\">Service</th><th scope=\"col\">State</th>"
	       "<th scope=\"col\">Startup type</th></tr></thead>\n<tbody>\n");
	for (const char *const *s = settings_services; *s != NULL; s++) {
		const struct http_service_info *info = http_service(c->hd, *s);
		const char *state = info != NULL ? info->state : "unknown";
		const char *startup = http_service_setting(c->hd, *s, "startup");
		evbuffer_add_printf(o, "<tr><th scope=\"row\">%s</th><td class=\"%s\">%s</td><td>",
				    *s, strcmp(state, "running") == 0 ? "on" : "off", state);
		http_html_escape(o, startup != NULL ? startup : "?");
		evbuffer_add_printf(o, "</td></tr>\n");
	}
	evbuffer_add_printf(o, "</tbody></table></div>\n");
	http_page_end(c);
	http_send(c);
}

/* ---- mailboxes ---- */

struct http_user_row {
	char *words[7]; /* name kind pop3 imap4 smtp backend quota */
};

static bool http_user_row_parse(const char *text, struct http_user_row *row, char *buf, size_t size)
{
	snprintf(buf, size, "%s", text);
	char *save = NULL;
	size_t n = 0;
	for (char *w = strtok_r(buf, " ", &save); w != NULL && n < 7;
	     w = strtok_r(NULL, " ", &save))
		row->words[n++] = w;
	return n == 7;
}

static void http_switch_cell(struct evbuffer *o, const char *label, const char *state)
{
	bool on = strcmp(state, "on") == 0;
	evbuffer_add_printf(o, "<td data-label=\"%s\" class=\"%s\">%s</td>", label,
			    on ? "on" : "off", on ? "Enabled" : "Disabled");
}

static void http_users_listed(struct http_conn *c, const struct ipc_msg *msg)
{
	const char *result = msg != NULL ? ipc_msg_get(msg, "result") : NULL;
	if (result == NULL || strcmp(result, "ok") != 0) {
		http_send_error(c, result != NULL && strcmp(result, "denied") == 0 ? 403 : 503,
				"The mailbox list is not available right now.");
		return;
	}
	char *query = http_query_param(c, "q");
	http_page_begin(c, "Mailboxes", "users");
	struct evbuffer *o = c->out;
	evbuffer_add_printf(o, "<h1>Mailboxes</h1>\n<form method=\"get\" action=\"/admin/users\" "
			       "role=\"search\">\n<label for=\"q\">Search by name</label>\n"
			       "<input type=\"search\" id=\"q\" name=\"q\" value=\"");
	http_html_escape(o, query);
	const char *total = ipc_msg_get(msg, "total");
	evbuffer_add_printf(o,
			    "\">\n<p><button type=\"submit\">Search</button></p>\n</form>\n"
			    "<p id=\"user-count\">%s mailbox(es) found",
			    total != NULL ? total : "0");
	size_t shown = 0;
	for (size_t i = 0; i < msg->nfields; i++)
		shown += strcmp(msg->fields[i].key, "user") == 0;
	if (total != NULL && strtoul(total, NULL, 10) > shown)
		evbuffer_add_printf(o, "; the first %zu are shown, narrow the search", shown);
	evbuffer_add_printf(
	    o, ".</p>\n<div class=\"table\"><table id=\"users\" class=\"stack\">\n<thead><tr>"
	       "<th scope=\"col\">Name</th><th scope=\"col\">Kind</th>"
	       "<th scope=\"col\">POP3</th><th scope=\"col\">IMAP4</th>"
	       "<th scope=\"col\">SMTP</th><th scope=\"col\">Back end</th></tr></thead>\n"
	       "<tbody>\n");
	for (size_t i = 0; i < msg->nfields; i++) {
		if (strcmp(msg->fields[i].key, "user") != 0)
			continue;
		struct http_user_row row;
		char buf[512];
		if (!http_user_row_parse(msg->fields[i].value, &row, buf, sizeof(buf)))
			continue;
		evbuffer_add_printf(o, "<tr><th scope=\"row\"><a href=\"/admin/user?name=");
		http_url_escape(o, row.words[0]);
		evbuffer_add_printf(o, "\">");
		http_html_escape(o, row.words[0]);
		evbuffer_add_printf(o, "</a></th><td data-label=\"Kind\">");
		http_html_escape(o, row.words[1]);
		evbuffer_add_printf(o, "</td>");
		http_switch_cell(o, "POP3", row.words[2]);
		http_switch_cell(o, "IMAP4", row.words[3]);
		http_switch_cell(o, "SMTP", row.words[4]);
		evbuffer_add_printf(o, "<td data-label=\"Back end\">");
		http_html_escape(o, row.words[5]);
		evbuffer_add_printf(o, "</td></tr>\n");
	}
	evbuffer_add_printf(o, "</tbody></table></div>\n");
	free(query);
	http_page_end(c);
	http_send(c);
}

/* exact: the one mailbox of that name, else every name holding query */
static void http_ask_users(struct http_conn *c, const char *query, bool exact,
			   http_resume_fn resume)
{
	char limit[16];
	snprintf(limit, sizeof(limit), "%d", HTTP_USER_LIST_LIMIT);
	struct ipc_field f[5] = {{0},
				 {"session", c->session_id},
				 {"query", query != NULL ? query : ""},
				 {"limit", limit},
				 {"exact", exact ? "yes" : "no"}};
	if (http_ask_authd(c, IPC_USER_LIST, f, 5, resume) < 0)
		http_send_error(c, 503, "The directory cannot be reached.");
}

void http_admin_users(struct http_conn *c)
{
	if (!http_require_admin(c))
		return;
	char *query = http_query_param(c, "q");
	if (query != NULL && strlen(query) > 64)
		query[64] = '\0';
	http_ask_users(c, query, false, http_users_listed);
	free(query);
}

/* one mailbox's "Email connectivity" */
static void http_user_shown(struct http_conn *c, const struct ipc_msg *msg)
{
	const char *result = msg != NULL ? ipc_msg_get(msg, "result") : NULL;
	if (result == NULL || strcmp(result, "ok") != 0) {
		http_send_error(c, 503, "The mailbox is not available right now.");
		return;
	}
	char *name = http_param(c, "name");
	struct http_user_row row;
	char buf[512];
	bool found = false;
	for (size_t i = 0; i < msg->nfields && !found; i++)
		found = strcmp(msg->fields[i].key, "user") == 0 &&
			http_user_row_parse(msg->fields[i].value, &row, buf, sizeof(buf)) &&
			name != NULL && strcasecmp(row.words[0], name) == 0;
	free(name);
	if (!found) {
		http_send_error(c, 404, "There is no such mailbox.");
		return;
	}
	http_page_begin(c, row.words[0], "users");
	struct evbuffer *o = c->out;
	evbuffer_add_printf(o, "<h1>");
	http_html_escape(o, row.words[0]);
	evbuffer_add_printf(o, "</h1>\n");
	if (c->note != NULL)
		http_note(c, "note", c->note);
	evbuffer_add_printf(o, "<p>Kind: ");
	http_html_escape(o, row.words[1]);
	evbuffer_add_printf(o, " &middot; back end: ");
	http_html_escape(o, row.words[5]);
	evbuffer_add_printf(o, "</p>\n");
	if (strcmp(row.words[1], "admin") == 0 || strcmp(row.words[1], "guest") == 0)
		evbuffer_add_printf(o,
				    "<p class=\"note\">Guest and administrator accounts can never "
				    "use POP3 or IMAP4, whatever the switches say.</p>\n");
	evbuffer_add_printf(
	    o, "<h2>Email connectivity</h2>\n<div class=\"table\"><table class=\"stack\">\n"
	       "<thead><tr><th scope=\"col\">Protocol</th><th scope=\"col\">State</th>"
	       "<th scope=\"col\">Action</th></tr></thead>\n<tbody>\n");
	for (size_t i = 0; i < 3; i++) {
		const char *proto = http_client_protocols[i][0];
		const char *title = http_client_protocols[i][1];
		bool on = strcmp(row.words[2 + i], "on") == 0;
		evbuffer_add_printf(o,
				    "<tr><th scope=\"row\">%s</th><td data-label=\"State\" "
				    "id=\"%s-state\" class=\"%s\">%s</td><td data-label=\"Action\">"
				    "<form method=\"post\" action=\"/admin/user\" "
				    "class=\"inline\">\n",
				    title, proto, on ? "on" : "off", on ? "Enabled" : "Disabled");
		http_csrf_field(c);
		evbuffer_add_printf(o, "<input type=\"hidden\" name=\"name\" value=\"");
		http_html_escape(o, row.words[0]);
		evbuffer_add_printf(o,
				    "\">\n<input type=\"hidden\" name=\"protocol\" value=\"%s\">\n"
				    "<input type=\"hidden\" name=\"value\" value=\"%s\">\n"
				    "<button type=\"submit\" id=\"%s-toggle\"%s>%s %s</button>\n"
				    "</form></td></tr>\n",
				    proto, on ? "off" : "on", proto,
				    on ? " class=\"secondary\"" : "", on ? "Disable" : "Enable",
				    title);
	}
	evbuffer_add_printf(
	    o, "</tbody></table></div>\n<p class=\"help\">Disabling a protocol also "
	       "ends the mailbox's open sessions at once; enabling applies to the next "
	       "login.</p>\n<p><a href=\"/admin/users\">Back to the mailboxes</a></p>\n");
	http_page_end(c);
	http_send(c);
}

static void http_user_redirect(struct http_conn *c)
{
	char *name = http_param(c, "name");
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "/admin/user?name=");
	http_url_escape(b, name != NULL ? name : "");
	evbuffer_add(b, "", 1);
	free(name);
	http_redirect(c, (const char *)evbuffer_pullup(b, -1));
	evbuffer_free(b);
}

static void http_user_kicked(struct http_conn *c, const struct ipc_msg *msg)
{
	(void)msg;
	http_user_redirect(c);
}

static void http_user_changed(struct http_conn *c, const struct ipc_msg *msg)
{
	const char *result = msg != NULL ? ipc_msg_get(msg, "result") : NULL;
	if (result == NULL || strcmp(result, "ok") != 0) {
		const char *reason = msg != NULL ? ipc_msg_get(msg, "reason") : NULL;
		http_send_error(c,
				result != NULL && strcmp(result, "unknown") == 0  ? 404
				: result != NULL && strcmp(result, "denied") == 0 ? 403
										  : 503,
				reason != NULL ? reason : "The change could not be made.");
		return;
	}
	char *value = http_param(c, "value");
	bool off = value != NULL && strcmp(value, "off") == 0;
	free(value);
	const char *user = ipc_msg_get(msg, "user");
	if (!off || user == NULL) {
		http_user_redirect(c);
		return;
	}
	/* as `posternctl user set --kick`: open sessions end now */
	char *command = xasprintf("kick %s", user);
	struct ipc_field f[2] = {{0}, {"command", command}};
	int r = http_ask_master(c, IPC_CONTROL_REQUEST, f, 2, http_user_kicked);
	free(command);
	if (r < 0)
		http_user_redirect(c);
}

void http_admin_user(struct http_conn *c)
{
	if (!http_require_admin(c))
		return;
	char *name = http_param(c, "name");
	if (name == NULL || *name == '\0' || strlen(name) > 64) {
		free(name);
		http_send_error(c, 400, "Name a mailbox.");
		return;
	}
	if (http_req(c)->method != HTTP_POST) {
		http_ask_users(c, name, true, http_user_shown);
		free(name);
		return;
	}
	if (!http_require_csrf(c)) {
		free(name);
		return;
	}
	char *protocol = http_param(c, "protocol");
	char *value = http_param(c, "value");
	bool ok = protocol != NULL && value != NULL &&
		  (strcmp(value, "on") == 0 || strcmp(value, "off") == 0) &&
		  (strcmp(protocol, "pop3") == 0 || strcmp(protocol, "imap4") == 0 ||
		   strcmp(protocol, "smtp") == 0);
	if (!ok) {
		http_send_error(c, 400, "Name a protocol (pop3, imap4, smtp) and on or off.");
	} else {
		struct ipc_field f[4] = {
		    {0}, {"session", c->session_id}, {"user", name}, {protocol, value}};
		if (http_ask_authd(c, IPC_USER_SET, f, 4, http_user_changed) < 0)
			http_send_error(c, 503, "The directory cannot be reached.");
	}
	free(protocol);
	free(value);
	free(name);
}

/* ---- services ---- */

/* one value of a status line: "service=imap4\tstate=running\t..." */
static void http_status_value(const char *line, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	out[0] = '\0';
	for (const char *p = line; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, "\t");
		if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			size_t vlen = n - klen - 1;
			if (vlen >= size)
				vlen = size - 1;
			memcpy(out, p + klen + 1, vlen);
			out[vlen] = '\0';
			return;
		}
		p += n;
		if (*p == '\t')
			p++;
	}
}

static void http_services_status(struct http_conn *c, const struct ipc_msg *msg)
{
	const char *reply = msg != NULL ? ipc_msg_get(msg, "reply") : NULL;
	if (!http_control_ok(reply)) {
		http_send_error(c, 503, "The master did not answer.");
		return;
	}
	http_page_begin(c, "Services", "services");
	struct evbuffer *o = c->out;
	evbuffer_add_printf(o, "<h1>Services</h1>\n");
	if (c->note != NULL)
		http_note(c, c->status == 409 ? "error" : "note", c->note);
	evbuffer_add_printf(
	    o, "<div class=\"table\"><table id=\"services\" class=\"stack\">\n<thead><tr>"
	       "<th scope=\"col\">Service</th><th scope=\"col\">State</th>"
	       "<th scope=\"col\">Startup</th><th scope=\"col\">Connections</th>"
	       "<th scope=\"col\">Listeners</th><th scope=\"col\">Actions</th></tr>"
	       "</thead>\n<tbody>\n");
	char *copy = xstrdup(reply);
	char *save = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "service=", 8) != 0)
			continue;
		char name[64], state[32], startup[32], conns[16], listeners[1024], error[512],
		    available[8];
		http_status_value(l, "service", name, sizeof(name));
		http_status_value(l, "state", state, sizeof(state));
		http_status_value(l, "startup", startup, sizeof(startup));
		http_status_value(l, "connections", conns, sizeof(conns));
		http_status_value(l, "listeners", listeners, sizeof(listeners));
		http_status_value(l, "error", error, sizeof(error));
		http_status_value(l, "available", available, sizeof(available));
		if (!settings_service_known(name))
			continue;
		evbuffer_add_printf(o,
				    "<tr><th scope=\"row\">%s</th><td data-label=\"State\" "
				    "id=\"state-%s\" class=\"%s\">",
				    name, name, strcmp(state, "running") == 0 ? "on" : "off");
		http_html_escape(o, state);
		if (*error != '\0') {
			evbuffer_add_printf(o, "<br><small>");
			http_html_escape(o, error);
			evbuffer_add_printf(o, "</small>");
		}
		evbuffer_add_printf(o, "</td><td data-label=\"Startup\">");
		http_html_escape(o, startup);
		evbuffer_add_printf(o, "</td><td data-label=\"Connections\">");
		http_html_escape(o, conns);
		evbuffer_add_printf(o, "</td><td data-label=\"Listeners\"><code>");
		/* one listener per line where the width is short */
		for (char *p = listeners; *p != '\0'; p++)
			if (*p == ',')
				*p = ' ';
		http_html_escape(o, *listeners != '\0' ? listeners : "-");
		evbuffer_add_printf(
		    o, "</code></td><td data-label=\"Actions\"><div class=\"actions\">");
		if (strcmp(name, "http") == 0) {
			evbuffer_add_printf(o, "<small>serves this page: use posternctl</small>");
		} else if (strcmp(available, "no") == 0) {
			evbuffer_add_printf(o, "<small>not in this build</small>");
		} else {
			static const char *const actions[] = {"start", "stop", "restart"};
			for (size_t i = 0; i < 3; i++) {
				bool running = strcmp(state, "running") == 0;
				if ((i == 0 && running) || (i > 0 && !running))
					continue;
				evbuffer_add_printf(
				    o, "<form method=\"post\" action=\"/admin/services\" "
				       "class=\"inline\">\n");
				http_csrf_field(c);
				evbuffer_add_printf(o,
						    "<input type=\"hidden\" name=\"service\" "
						    "value=\"%s\">\n<input type=\"hidden\" "
						    "name=\"action\" value=\"%s\">\n<button "
						    "type=\"submit\" id=\"%s-%s\"%s>%c%s</button>\n"
						    "</form>\n",
						    name, actions[i], actions[i], name,
						    i == 0 ? "" : " class=\"secondary\"",
						    toupper((unsigned char)actions[i][0]),
						    actions[i] + 1);
			}
		}
		evbuffer_add_printf(o, "</div></td></tr>\n");
	}
	free(copy);
	evbuffer_add_printf(o,
			    "</tbody></table></div>\n<p class=\"help\">Startup types are "
			    "protocol settings: <a href=\"/admin/settings\">change them there</a>."
			    "</p>\n");
	http_page_end(c);
	http_send(c);
}

static void http_ask_status(struct http_conn *c)
{
	struct ipc_field f[2] = {{0}, {"command", "status"}};
	if (http_ask_master(c, IPC_CONTROL_REQUEST, f, 2, http_services_status) < 0)
		http_send_error(c, 503, "The master cannot be reached.");
}

static void http_service_acted(struct http_conn *c, const struct ipc_msg *msg)
{
	const char *reply = msg != NULL ? ipc_msg_get(msg, "reply") : NULL;
	char *service = http_param(c, "service");
	char *action = http_param(c, "action");
	bool ok = http_control_ok(reply);
	char *text = http_control_text(reply);
	c->note = xasprintf("%s %s: %s%s%s", action, service, ok ? "done" : "failed",
			    *text != '\0' ? " - " : "", text);
	if (!ok)
		c->status = 409;
	free(text);
	free(service);
	free(action);
	http_ask_status(c);
}

void http_admin_services(struct http_conn *c)
{
	if (!http_require_admin(c))
		return;
	if (http_req(c)->method != HTTP_POST) {
		http_ask_status(c);
		return;
	}
	if (!http_require_csrf(c))
		return;
	char *service = http_param(c, "service");
	char *action = http_param(c, "action");
	if (service == NULL || action == NULL || !settings_service_known(service) ||
	    (strcmp(action, "start") != 0 && strcmp(action, "stop") != 0 &&
	     strcmp(action, "restart") != 0)) {
		http_send_error(c, 400, "Name a service and start, stop or restart.");
	} else if (strcmp(service, "http") == 0) {
		http_send_error(c, 409,
				"The http service serves this page: stop or restart it with "
				"posternctl.");
	} else {
		char *command = xasprintf("%s %s", action, service);
		struct ipc_field f[2] = {{0}, {"command", command}};
		log_msg(LOG_LEVEL_INFO, conn_log(c->conn), "administrator %s: %s", c->user.name,
			command);
		if (http_ask_master(c, IPC_CONTROL_REQUEST, f, 2, http_service_acted) < 0)
			http_send_error(c, 503, "The master cannot be reached.");
		free(command);
	}
	free(service);
	free(action);
}

/* ---- protocol settings ---- */

struct http_settings_form {
	struct http_conn *c;
	const char *service;
	bool from_post; /* show the values just sent */
};

static void http_settings_field(void *ctx, const char *key, const char *help)
{
	struct http_settings_form *f = ctx;
	struct http_conn *c = f->c;
	struct evbuffer *o = c->out;
	char *posted = f->from_post ? http_param(c, key) : NULL;
	const char *value = posted != NULL ? posted : http_service_setting(c->hd, f->service, key);
	evbuffer_add_printf(o,
			    "<label for=\"k-%s\">%s</label>\n<input type=\"text\" id=\"k-%s\" "
			    "name=\"%s\" value=\"",
			    key, key, key, key);
	http_html_escape(o, value != NULL ? value : "");
	evbuffer_add_printf(o, "\" aria-describedby=\"h-%s\">\n<p class=\"help\" id=\"h-%s\">", key,
			    key);
	http_html_escape(o, help);
	evbuffer_add_printf(o, " (default: '");
	http_html_escape(o, settings_default(f->service, key));
	evbuffer_add_printf(o, "')</p>\n");
	free(posted);
}

static void http_settings_page(struct http_conn *c, const char *service, bool from_post,
			       const char *cls, const char *text)
{
	http_page_begin(c, "Protocol settings", "protocols");
	struct evbuffer *o = c->out;
	evbuffer_add_printf(o, "<h1>Protocol settings</h1>\n<nav aria-label=\"services\"><p>");
	for (const char *const *s = settings_services; *s != NULL; s++)
		evbuffer_add_printf(
		    o, "<a href=\"/admin/settings?service=%s\"%s>%s</a> ", *s,
		    service != NULL && strcmp(*s, service) == 0 ? " aria-current=\"page\"" : "",
		    *s);
	evbuffer_add_printf(o, "</p></nav>\n");
	if (text != NULL)
		http_note(c, cls, text);
	if (service == NULL) {
		evbuffer_add_printf(o,
				    "<p>Choose a service. The values are validated as "
				    "<code>posternctl settings set</code> validates them and apply "
				    "to the running service at once.</p>\n");
		http_page_end(c);
		http_send(c);
		return;
	}
	const struct http_service_info *info = http_service(c->hd, service);
	evbuffer_add_printf(o,
			    "<h2>%s</h2>\n<p>State: %s</p>\n"
			    "<form method=\"post\" action=\"/admin/settings\" class=\"card\">\n",
			    service, info != NULL ? info->state : "unknown");
	http_csrf_field(c);
	evbuffer_add_printf(o, "<input type=\"hidden\" name=\"service\" value=\"%s\">\n", service);
	struct http_settings_form form = {c, service, from_post};
	settings_foreach_key(service, http_settings_field, &form);
	evbuffer_add_printf(o,
			    "<p><button type=\"submit\" id=\"save\">Save</button></p>\n</form>\n");
	http_page_end(c);
	http_send(c);
}

static void http_settings_saved(struct http_conn *c, const struct ipc_msg *msg)
{
	const char *reply = msg != NULL ? ipc_msg_get(msg, "reply") : NULL;
	char *service = http_param(c, "service");
	bool ok = http_control_ok(reply);
	char *text = http_control_text(reply);
	char *note =
	    xasprintf("%s%s%s", ok ? "Saved" : "Not saved", *text != '\0' ? ": " : ".", text);
	if (!ok)
		c->status = 400;
	/* on error the form keeps what was sent, for correcting it */
	http_settings_page(c, service, !ok, ok ? "note" : "error", note);
	free(note);
	free(text);
	free(service);
}

struct http_settings_change {
	struct http_conn *c;
	const char *service;
	struct ipc_field fields[IPC_MAX_FIELDS];
	char *values[IPC_MAX_FIELDS];
	unsigned n;
};

static void http_settings_collect(void *ctx, const char *key, const char *help)
{
	(void)help;
	struct http_settings_change *ch = ctx;
	char *value = http_param(ch->c, key);
	const char *current = http_service_setting(ch->c->hd, ch->service, key);
	/* only what the administrator changed is sent */
	if (value == NULL || ch->n == IPC_MAX_FIELDS ||
	    (current != NULL && strcmp(current, value) == 0)) {
		free(value);
		return;
	}
	ch->values[ch->n] = value;
	ch->fields[ch->n] = (struct ipc_field){key, value};
	ch->n++;
}

void http_admin_settings(struct http_conn *c)
{
	if (!http_require_admin(c))
		return;
	char *service = http_param(c, "service");
	if (service != NULL && !settings_service_known(service)) {
		free(service);
		http_send_error(c, 404, "There is no such service.");
		return;
	}
	if (http_req(c)->method != HTTP_POST) {
		http_settings_page(c, service, false, NULL, NULL);
		free(service);
		return;
	}
	if (!http_require_csrf(c)) {
		free(service);
		return;
	}
	if (service == NULL) {
		http_send_error(c, 400, "Name a service.");
		return;
	}
	struct http_settings_change *ch = xcalloc(1, sizeof(*ch));
	ch->c = c;
	ch->service = service;
	ch->fields[0] = (struct ipc_field){0};
	ch->fields[1] = (struct ipc_field){"service", service};
	ch->n = 2;
	settings_foreach_key(service, http_settings_collect, ch);
	if (ch->n == 2) {
		http_settings_page(c, service, false, "note", "Nothing changed.");
	} else {
		log_msg(LOG_LEVEL_INFO, conn_log(c->conn),
			"administrator %s changes %u setting(s) of %s", c->user.name, ch->n - 2,
			service);
		if (http_ask_master(c, IPC_SETTINGS_CHANGE, ch->fields, ch->n,
				    http_settings_saved) < 0)
			http_send_error(c, 503, "The master cannot be reached.");
	}
	for (unsigned i = 2; i < ch->n; i++)
		free(ch->values[i]);
	free(ch);
	free(service);
}

/* ---- connectivity test ---- */

static void http_test_form(struct http_conn *c)
{
	struct evbuffer *o = c->out;
	evbuffer_add_printf(o, "<form method=\"post\" action=\"/admin/test\" class=\"card\">\n");
	http_csrf_field(c);
	evbuffer_add_printf(
	    o, "<label for=\"protocol\">Protocol</label>\n<select id=\"protocol\" "
	       "name=\"protocol\"><option value=\"imap4\">IMAP4</option>"
	       "<option value=\"pop3\">POP3</option></select>\n"
	       "<label for=\"connection\">Connection</label>\n<select id=\"connection\" "
	       "name=\"connection\"><option value=\"ssl\">SSL (implicit TLS)</option>"
	       "<option value=\"tls\">TLS (STARTTLS)</option><option value=\"plaintext\">"
	       "Plain text</option></select>\n"
	       "<label for=\"test-user\">User name</label>\n<input type=\"text\" "
	       "id=\"test-user\" name=\"user\" required autocomplete=\"off\">\n"
	       "<label for=\"test-password\">Password</label>\n<input type=\"password\" "
	       "id=\"test-password\" name=\"password\" required autocomplete=\"off\">\n"
	       "<label for=\"server\">Server (default: the service's own listener)</label>\n"
	       "<input type=\"text\" id=\"server\" name=\"server\">\n"
	       "<label for=\"port\">Port</label>\n<input type=\"text\" id=\"port\" "
	       "name=\"port\" inputmode=\"numeric\">\n"
	       "<p><label><input type=\"checkbox\" name=\"trust-any\" value=\"yes\" checked> "
	       "Accept any certificate (self-signed)</label></p>\n"
	       "<p><button type=\"submit\" id=\"run-test\">Run the test</button></p>\n"
	       "</form>\n");
}

void http_admin_test_finished(struct http_conn *c, bool timed_out)
{
	evbuffer_add(c->test_out, "", 1);
	char *output = xstrdup((const char *)evbuffer_pullup(c->test_out, -1));
	evbuffer_free(c->test_out);
	c->test_out = NULL;
	evtimer_del(c->timer);
	http_page_begin(c, "Connectivity test", "test");
	struct evbuffer *o = c->out;
	evbuffer_add_printf(o, "<h1>Connectivity test</h1>\n");
	if (timed_out)
		http_note(c, "error", "The test did not finish in time.");
	evbuffer_add_printf(
	    o, "<div class=\"table\"><table id=\"test-result\" class=\"stack\">\n<thead><tr>"
	       "<th scope=\"col\">Scenario</th><th scope=\"col\">Result</th>"
	       "<th scope=\"col\">Latency</th><th scope=\"col\">Error</th></tr></thead>"
	       "\n<tbody>\n");
	/* posternctl test --json: one object per step, fixed keys */
	unsigned steps = 0, failures = 0;
	for (char *obj = strchr(output, '{'); obj != NULL; obj = strchr(obj + 1, '{')) {
		char *end = strchr(obj, '}');
		if (end == NULL)
			break;
		*end = '\0';
		static const char *const keys[] = {"\"scenario\":\"", "\"result\":\"",
						   "\"error\":\""};
		char values[3][300];
		for (size_t k = 0; k < 3; k++) {
			values[k][0] = '\0';
			char *v = strstr(obj, keys[k]);
			if (v == NULL)
				continue;
			v += strlen(keys[k]);
			size_t n = 0;
			for (; *v != '\0' && *v != '"' && n + 1 < sizeof(values[k]); v++) {
				if (*v == '\\' && v[1] != '\0')
					v++;
				values[k][n++] = *v;
			}
			values[k][n] = '\0';
		}
		char *lat = strstr(obj, "\"latency_ms\":");
		double ms = lat != NULL ? strtod(lat + 13, NULL) : 0;
		bool ok = strcmp(values[1], "Failure") != 0;
		failures += !ok;
		steps++;
		evbuffer_add_printf(o, "<tr><th scope=\"row\">");
		http_html_escape(o, values[0]);
		evbuffer_add_printf(o, "</th><td data-label=\"Result\" class=\"%s\">",
				    !ok					? "off"
				    : strcmp(values[1], "Success") == 0 ? "on"
									: "");
		http_html_escape(o, values[1]);
		evbuffer_add_printf(o,
				    "</td><td data-label=\"Latency\">%.1f ms</td>"
				    "<td data-label=\"Error\">",
				    ms);
		http_html_escape(o, values[2]);
		evbuffer_add_printf(o, "</td></tr>\n");
		obj = end;
	}
	evbuffer_add_printf(o,
			    "</tbody></table></div>\n<p id=\"test-summary\" class=\"%s\">%s</p>\n",
			    steps > 0 && failures == 0 && !timed_out ? "on" : "off",
			    steps > 0 && failures == 0 && !timed_out ? "Every step succeeded."
								     : "The test failed.");
	free(output);
	evbuffer_add_printf(o, "<h2>Run again</h2>\n");
	http_test_form(c);
	http_page_end(c);
	http_send(c);
}

static void http_test_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct http_conn *c = arg;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		if (evbuffer_get_length(c->test_out) < HTTP_MAX_CONNTEST_OUTPUT)
			evbuffer_add(c->test_out, buf, (size_t)n);
		return;
	}
	http_admin_test_finished(c, false);
}

/* The first address of a service's binding list as host and port; a
 * wildcard is reached through loopback. */
static bool http_first_binding(const struct http_conn *c, const char *service, const char *key,
			       char *host, size_t hsize, char *port, size_t psize)
{
	const char *value = http_service_setting(c->hd, service, key);
	struct net_addr *addrs = NULL;
	size_t n = 0;
	char *error = NULL;
	if (value == NULL || net_addr_parse_list(value, &addrs, &n, &error) < 0 || n == 0) {
		free(error);
		free(addrs);
		return false;
	}
	char text[160];
	net_addr_format(&addrs[0], text, sizeof(text));
	free(addrs);
	char *colon = strrchr(text, ':');
	if (colon == NULL)
		return false;
	*colon = '\0';
	char *h = text;
	if (h[0] == '[') {
		h++;
		h[strlen(h) - 1] = '\0';
	}
	if (strcmp(h, "0.0.0.0") == 0)
		h = (char *)"127.0.0.1";
	else if (strcmp(h, "::") == 0)
		h = (char *)"::1";
	snprintf(host, hsize, "%s", h);
	snprintf(port, psize, "%s", colon + 1);
	return true;
}

static bool http_test_arg_ok(const char *s, size_t max)
{
	if (s == NULL || *s == '\0' || strlen(s) > max)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return false;
	return true;
}

/* posternctl's connectivity test (src/admin/admin_test.c) in a child, so
 * its blocking client never stops this worker's loop; its JSON comes back
 * through a pipe. */
static void http_test_start(struct http_conn *c, const char *protocol, const char *connection,
			    const char *user, const char *password, const char *server,
			    const char *port, bool trust_any)
{
	int out[2], in[2];
	if (pipe2(out, O_CLOEXEC) < 0) {
		http_send_error(c, 500, "Cannot start the test.");
		return;
	}
	if (pipe2(in, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		http_send_error(c, 500, "Cannot start the test.");
		return;
	}
	char timeout[16];
	snprintf(timeout, sizeof(timeout), "%d", HTTP_CONNTEST_TIMEOUT_S - 5);
	char *argv[] = {"test",
			(char *)protocol,
			"--user",
			(char *)user,
			"--light",
			"--json",
			"--timeout",
			timeout,
			"--server",
			(char *)server,
			"--port",
			(char *)port,
			"--connection",
			(char *)connection,
			trust_any ? "--trust-any-certificate" : NULL,
			NULL};
	int argc = trust_any ? 15 : 14;
	pid_t pid = fork();
	if (pid < 0) {
		close(out[0]);
		close(out[1]);
		close(in[0]);
		close(in[1]);
		http_send_error(c, 500, "Cannot start the test.");
		return;
	}
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		/* the worker's sockets are none of the test's business */
		close_range(3, ~0U, 0);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_IGN);
		alarm(HTTP_CONNTEST_TIMEOUT_S);
		int r = admin_test_main(worker_datadir(c->hd->worker), argc, argv);
		fflush(stdout);
		_exit(r);
	}
	close(in[0]);
	close(out[1]);
	char *line = xasprintf("%s\n", password);
	ssize_t w = write(in[1], line, strlen(line));
	(void)w;
	memset(line, 0, strlen(line));
	free(line);
	close(in[1]);
	c->test_pid = pid;
	c->test_fd = out[0];
	fcntl(c->test_fd, F_SETFL, O_NONBLOCK);
	c->test_out = evbuffer_new();
	c->test_ev = event_new(worker_event_base(c->hd->worker), c->test_fd, EV_READ | EV_PERSIST,
			       http_test_read_cb, c);
	event_add(c->test_ev, NULL);
	struct timeval tv = {HTTP_CONNTEST_TIMEOUT_S, 0};
	evtimer_add(c->timer, &tv);
	log_msg(LOG_LEVEL_INFO, conn_log(c->conn),
		"administrator %s: connectivity test %s %s as %s", c->user.name, protocol,
		connection, user);
}

void http_admin_test(struct http_conn *c)
{
	if (!http_require_admin(c))
		return;
	if (http_req(c)->method != HTTP_POST) {
		http_page_begin(c, "Connectivity test", "test");
		evbuffer_add_printf(c->out,
				    "<h1>Connectivity test</h1>\n<p>Signs in to POP3 or IMAP4 "
				    "through the front end as a user and reports each step with "
				    "its latency, as <code>posternctl test --light</code> does."
				    "</p>\n");
		http_test_form(c);
		http_page_end(c);
		http_send(c);
		return;
	}
	if (!http_require_csrf(c))
		return;
	char *protocol = http_param(c, "protocol");
	char *connection = http_param(c, "connection");
	char *user = http_param(c, "user");
	char *password = http_param(c, "password");
	char *server = http_param(c, "server");
	char *port = http_param(c, "port");
	char *trust = http_param(c, "trust-any");
	char host[256] = "", portbuf[16] = "";
	bool ok = protocol != NULL && connection != NULL &&
		  (strcmp(protocol, "imap4") == 0 || strcmp(protocol, "pop3") == 0) &&
		  (strcmp(connection, "ssl") == 0 || strcmp(connection, "tls") == 0 ||
		   strcmp(connection, "plaintext") == 0) &&
		  http_test_arg_ok(user, 320) && password != NULL && *password != '\0' &&
		  strlen(password) < 500 && strchr(password, '\n') == NULL;
	if (ok) {
		if (!http_first_binding(c, protocol,
					strcmp(connection, "ssl") == 0
					    ? "ssl-bindings"
					    : "unencrypted-or-tls-bindings",
					host, sizeof(host), portbuf, sizeof(portbuf))) {
			host[0] = portbuf[0] = '\0';
		}
		if (server != NULL && *server != '\0')
			snprintf(host, sizeof(host), "%s", server);
		if (port != NULL && *port != '\0')
			snprintf(portbuf, sizeof(portbuf), "%s", port);
		ok = http_test_arg_ok(host, 253) && http_test_arg_ok(portbuf, 5) &&
		     strspn(portbuf, "0123456789") == strlen(portbuf);
	}
	if (!ok)
		http_send_error(c, 400,
				"Give a protocol, a connection type, a user name and "
				"password, and a server and port when the service has no "
				"listener of that kind.");
	else
		http_test_start(c, protocol, connection, user, password, host, portbuf,
				trust != NULL);
	if (password != NULL)
		memset(password, 0, strlen(password));
	free(protocol);
	free(connection);
	free(user);
	free(password);
	free(server);
	free(port);
	free(trust);
}
