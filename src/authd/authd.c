#include "authd/authd.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <unistd.h>

#include "authd/authd_scram.h"
#include "authd/authd_session.h"
#include "authd/authd_tarpit.h"
#include "authd/authd_ticket.h"
#include "directory/directory.h"
#include "directory/password.h"
#include "directory/password_scram.h"
#include "lib/base64.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/proc.h"
#include "lib/xalloc.h"

#define AUTHD_MAX_CLIENTS 1024
#define AUTHD_DEFAULT_FAILURE_DELAY_MS 2000

struct authd_client {
	struct authd *authd;
	int fd;
	unsigned generation; /* a delayed reply goes only to the client it was for */
	struct event *ev;
	char service[32];
};

struct authd {
	struct event_base *base;
	const char *datadir;
	struct directory *dir;
	int channel;
	struct event *channel_ev;
	struct authd_client clients[AUTHD_MAX_CLIENTS];
	unsigned next_generation;
	struct ipc_msg *msg;
	/* verified against when the user does not exist, so a missing name
	 * costs the same time as a wrong password */
	char *dummy_hash;
	struct authd_tickets tickets;
	char *domain; /* the instance's mail domain (directory meta), "" when unset */
	char *hostname; /* the instance's host name (directory meta), "" when unset */
	struct authd_sessions sessions; /* the http service's signed-in sessions */
	bool dir_writable; /* SCRAM keys can be stored at a password login */
	struct authd_scram scram;
	struct event *scram_sweep;
};

/* a reply held back by the failure delay */
struct authd_delayed {
	struct authd_client *client;
	unsigned generation;
	struct event *ev;
	size_t nfields;
	struct ipc_field fields[6];
	char *strings[12];
};

static void authd_client_close(struct authd_client *c)
{
	if (c->ev != NULL)
		event_free(c->ev);
	c->ev = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->generation = 0;
}

static void authd_send_type(struct authd_client *c, enum ipc_type type,
			    const struct ipc_field *fields, size_t n)
{
	if (c->fd < 0)
		return;
	if (ipc_send(c->fd, type, -1, fields, n, 1000) < 0) {
		log_warn("cannot answer %s worker: %s; dropping its channel", c->service,
			 strerror(errno));
		authd_client_close(c);
	}
}

static void authd_send(struct authd_client *c, const struct ipc_field *fields, size_t n)
{
	authd_send_type(c, IPC_AUTH_REPLY, fields, n);
}

static void authd_delayed_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct authd_delayed *d = arg;
	if (d->client->generation == d->generation)
		authd_send(d->client, d->fields, d->nfields);
	event_free(d->ev);
	for (size_t i = 0; i < d->nfields * 2; i++)
		free(d->strings[i]);
	free(d);
}

static void authd_reply_later(struct authd_client *c, long long delay_ms,
			      const struct ipc_field *fields, size_t n)
{
	if (delay_ms <= 0) {
		authd_send(c, fields, n);
		return;
	}
	struct authd_delayed *d = xcalloc(1, sizeof(*d));
	d->client = c;
	d->generation = c->generation;
	d->nfields = n;
	for (size_t i = 0; i < n; i++) {
		d->strings[i * 2] = xstrdup(fields[i].key);
		d->strings[i * 2 + 1] = xstrdup(fields[i].value);
		d->fields[i].key = d->strings[i * 2];
		d->fields[i].value = d->strings[i * 2 + 1];
	}
	d->ev = event_new(c->authd->base, -1, 0, authd_delayed_cb, d);
	struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
	event_add(d->ev, &tv);
}

/* which per-user switch a service is governed by */
static const char *authd_protocol_name(const char *service)
{
	if (strncmp(service, "imap4", 5) == 0)
		return "IMAP4";
	if (strncmp(service, "pop3", 4) == 0)
		return "POP3";
	if (strcmp(service, "submission") == 0)
		return "SMTP";
	if (strcmp(service, "http") == 0)
		return "HTTP";
	return NULL;
}

static bool authd_switch_on(const struct directory_user *u, const char *protocol)
{
	if (strcmp(protocol, "IMAP4") == 0)
		return u->imap4_enabled;
	if (strcmp(protocol, "POP3") == 0)
		return u->pop3_enabled;
	return u->smtp_enabled;
}

static bool authd_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* An administrator's direct login at a back end, as another user (the
 * back ends' debugging mode, off unless direct-admin-login is set there).
 * admin is verified already. */
static void authd_act_as(struct authd_client *c, const struct ipc_msg *msg, const char *id,
			 const struct directory_user *admin, const char *target,
			 const struct log_ctx *ctx)
{
	const char *service = ipc_msg_get(msg, "service");
	if (!authd_ends_with(service, "-backend") || admin->kind != DIRECTORY_KIND_ADMIN) {
		log_msg(LOG_LEVEL_WARN, ctx, "login refused: user=%s: only administrators may log "
					     "in as another user, and only at a back end",
			admin->name);
		struct ipc_field f[] = {{"id", id},
					{"result", "refused"},
					{"code", "CONTACTADMIN"},
					{"reason", "not allowed to log in as another user"}};
		authd_send(c, f, 4);
		return;
	}
	struct directory_user *u = NULL;
	char *error = NULL;
	int found = directory_user_get(c->authd->dir, target, &u, &error);
	if (found <= 0) {
		struct ipc_field f[] = {{"id", id},
					{"result", found < 0 ? "tempfail" : "fail"},
					{"reason", found < 0 ? error : "no such user"}};
		authd_send(c, f, 3);
		free(error);
		return;
	}
	char quota[24];
	snprintf(quota, sizeof(quota), "%llu", u->quota_bytes);
	log_msg(LOG_LEVEL_WARN, ctx, "administrator %s logged in directly as %s", admin->name,
		u->name);
	struct ipc_field f[] = {{"id", id}, {"result", "ok"}, {"user", u->name},
				{"kind", directory_kind_name(u->kind)}, {"quota", quota}};
	authd_send(c, f, 5);
	directory_user_free(&u);
}

/* What every login request carries besides the credentials. */
struct authd_request {
	const char *id;
	const char *service;
	const char *peer;
	bool tarpit;
	long long base_delay; /* ms */
	const char *protocol; /* the per-user switch, NULL for back ends */
	struct log_ctx ctx;
};

/* Returns false (after dropping the channel) when the request is
 * malformed. */
static bool authd_request_parse(struct authd_client *c, const struct ipc_msg *msg,
				struct authd_request *r)
{
	r->id = ipc_msg_get(msg, "id");
	r->service = ipc_msg_get(msg, "service");
	r->peer = ipc_msg_get(msg, "peer");
	const char *tarpit = ipc_msg_get(msg, "tarpit");
	const char *delay_text = ipc_msg_get(msg, "failure-delay");
	if (r->id == NULL || r->service == NULL) {
		log_error("malformed request from a %s worker; dropping its channel", c->service);
		authd_client_close(c);
		return false;
	}
	if (r->peer == NULL)
		r->peer = "?";
	r->tarpit = tarpit == NULL || strcmp(tarpit, "no") != 0;
	r->base_delay = delay_text != NULL ? strtoll(delay_text, NULL, 10) * 1000
					   : AUTHD_DEFAULT_FAILURE_DELAY_MS;
	r->protocol = authd_protocol_name(r->service);
	r->ctx = (struct log_ctx){r->service, NULL, r->peer};
	return true;
}

/* names that stand for "no account" never log in, whatever exists: true
 * when user is one and the refusal was sent */
static bool authd_refuse_anonymous(struct authd_client *c, const struct authd_request *r,
				   const char *user)
{
	if (r->protocol == NULL || strcmp(r->protocol, "SMTP") == 0 ||
	    (strcasecmp(user, "anonymous") != 0 && strcasecmp(user, "guest") != 0))
		return false;
	log_msg(LOG_LEVEL_INFO, &r->ctx, "login refused: user=%s: anonymous and guest logins "
					 "are never allowed", user);
	metrics_auth(r->service, METRICS_AUTH_REFUSED, false);
	struct ipc_field f[] = {{"id", r->id},
				{"result", "refused"},
				{"code", "CONTACTADMIN"},
				{"reason", "anonymous and guest logins are not allowed"},
				{"cause", "account-kind"}};
	authd_reply_later(c, r->base_delay, f, 5);
	return true;
}

/* A failed login: counted against the source, answered after the failure
 * delay and the tarpit's. One answer for every cause. */
static void authd_login_failed(struct authd_client *c, const struct authd_request *r,
			       const char *user, enum metrics_auth verdict, const char *why)
{
	char key[64];
	authd_tarpit_key(r->peer, key, sizeof(key));
	unsigned failures = r->tarpit ? authd_tarpit_fail(key, proc_now_ms()) : 0;
	long long delay = r->base_delay + authd_tarpit_delay_ms(failures, r->base_delay);
	metrics_auth(r->service, verdict, delay > r->base_delay);
	log_msg(LOG_LEVEL_INFO, &r->ctx,
		"login failed: user=%s: %s (failures from %s: %u, delay %lld ms)", user, why, key,
		failures, delay);
	struct ipc_field f[] = {{"id", r->id}, {"result", "fail"}};
	authd_reply_later(c, delay, f, 2);
}

/* Why a verified user may not use the request's protocol, into reason; NULL
 * when they may. */
static const char *authd_refusal(const struct authd_request *r, const struct directory_user *u,
				 char *reason, size_t size, const char **cause_r)
{
	*cause_r = "account-kind";
	if (r->protocol != NULL && strcmp(r->protocol, "HTTP") == 0) {
		/* the settings page and the admin centre: administrators are
		 * welcome, guests are not; the protocol switches do not apply */
		return u->kind == DIRECTORY_KIND_GUEST ? "guest accounts may not sign in" : NULL;
	}
	if (u->kind == DIRECTORY_KIND_GUEST || u->kind == DIRECTORY_KIND_ADMIN) {
		if (r->protocol == NULL)
			return NULL;
		snprintf(reason, size, "%s accounts may not use %s",
			 u->kind == DIRECTORY_KIND_GUEST ? "guest" : "administrator", r->protocol);
		return reason;
	}
	if (r->protocol != NULL && !authd_switch_on(u, r->protocol)) {
		snprintf(reason, size, "%s is disabled for this user", r->protocol);
		*cause_r = "disabled";
		return reason;
	}
	return NULL;
}

/* true when the user is refused (the answer was sent) */
static bool authd_refuse(struct authd_client *c, const struct authd_request *r,
			 const struct directory_user *u)
{
	char reason[160];
	const char *cause;
	const char *refusal = authd_refusal(r, u, reason, sizeof(reason), &cause);
	if (refusal == NULL)
		return false;
	log_msg(LOG_LEVEL_INFO, &r->ctx, "login refused: user=%s: %s", u->name, refusal);
	metrics_auth(r->service, METRICS_AUTH_REFUSED, false);
	struct ipc_field f[] = {{"id", r->id},	       {"result", "refused"}, {"code", "CONTACTADMIN"},
				{"reason", refusal}, {"cause", cause}};
	authd_send(c, f, 5);
	return true;
}

/* A verified user: apply the policy, then answer with the back end and a
 * login ticket. how names the mechanism for the log. */
static void authd_grant(struct authd_client *c, const struct authd_request *r,
			const struct directory_user *u, const char *how)
{
	struct authd *a = c->authd;
	if (authd_refuse(c, r, u))
		return;
	/* where the mailbox lives, as the front end must reach it */
	const char *backend_name = u->backend != NULL ? u->backend : DIRECTORY_BACKEND_LOCAL;
	struct directory_backend *b = NULL;
	char *error = NULL;
	if (directory_backend_get(a->dir, backend_name, &b, &error) <= 0) {
		log_msg(LOG_LEVEL_ERROR, &r->ctx, "back end %s of %s: %s", backend_name, u->name,
			error != NULL ? error : "unknown back end");
		metrics_auth(r->service, METRICS_AUTH_TEMPFAIL, false);
		struct ipc_field f[] = {{"id", r->id},
					{"result", "tempfail"},
					{"reason", "the user's back end is not in the directory"}};
		authd_send(c, f, 3);
		free(error);
		return;
	}
	const char *protocol = r->protocol != NULL ? r->protocol : "";
	const char *address = "";
	if (b != NULL && strcmp(protocol, "IMAP4") == 0)
		address = b->imap4_address != NULL ? b->imap4_address : "";
	else if (b != NULL && strcmp(protocol, "POP3") == 0)
		address = b->pop3_address != NULL ? b->pop3_address : "";
	else if (b != NULL)
		address = b->lmtp_address != NULL ? b->lmtp_address : "";
	log_msg(LOG_LEVEL_INFO, &r->ctx, "login accepted: user=%s backend=%s%s", u->name,
		backend_name, how);
	metrics_auth(r->service, METRICS_AUTH_OK, false);
	char expiry[24], mac[AUTHD_TICKET_MAC_HEX + 1];
	authd_ticket_make(&a->tickets, u->name, r->peer, time(NULL), expiry, sizeof(expiry), mac);
	struct ipc_field f[] = {{"id", r->id},
				{"result", "ok"},
				{"user", u->name},
				{"kind", directory_kind_name(u->kind)},
				{"backend", backend_name},
				{"backend-address", address},
				{"ticket-expiry", expiry},
				{"ticket-mac", mac},
				{"domain", a->domain},
				{"send-as", u->send_as != NULL ? u->send_as : ""},
				{"save-sent", directory_save_sent_name(u->save_sent)}};
	authd_send(c, f, 11);
	directory_backend_free(&b);
}

/* After a password login: give the user SCRAM-SHA-256 keys when they have
 * none yet (a hash imported without them) or weaker ones than postern now
 * makes. The password is known only now. */
static void authd_scram_upgrade(struct authd *a, const struct directory_user *u,
				const char *password, const struct log_ctx *ctx)
{
	if (!a->dir_writable || u->password_hash == NULL)
		return;
	struct password_scram old;
	char *error = NULL;
	if (u->scram_sha256 != NULL && password_scram_parse(u->scram_sha256, &old, &error) == 0 &&
	    old.iterations >= PASSWORD_SCRAM_ITERATIONS)
		return;
	free(error);
	error = NULL;
	char *keys = NULL;
	int r = password_scram_make(password, &keys, &error);
	if (r == 0) {
		/* SASLprep refuses the password: PLAIN and LOGIN only */
		log_msg(LOG_LEVEL_DEBUG, ctx, "user=%s: no SCRAM-SHA-256 keys: %s", u->name, error);
		free(error);
		return;
	}
	r = directory_user_add_scram(a->dir, u->name, u->password_hash, keys, &error);
	if (r < 0)
		log_msg(LOG_LEVEL_WARN, ctx, "user=%s: cannot store SCRAM-SHA-256 keys: %s",
			u->name, error);
	else if (r == 1)
		log_msg(LOG_LEVEL_INFO, ctx, "user=%s: SCRAM-SHA-256 keys stored", u->name);
	free(error);
	if (keys != NULL) {
		OPENSSL_cleanse(keys, strlen(keys));
		free(keys);
	}
}

/* ---- the http service: sessions and the admin centre ---- */

static unsigned authd_field_seconds(const struct ipc_msg *msg, const char *key, unsigned def)
{
	const char *v = ipc_msg_get(msg, key);
	unsigned long n = v != NULL ? strtoul(v, NULL, 10) : 0;
	return n == 0 || n > 7 * 86400 ? def : (unsigned)n;
}

/* A verified login at the http service starts a session. */
static void authd_http_login(struct authd_client *c, const struct ipc_msg *msg, const char *id,
			     const struct directory_user *u, const struct log_ctx *ctx)
{
	struct authd_session *s =
	    authd_session_create(&c->authd->sessions, u->name,
				 authd_field_seconds(msg, "session-timeout", 1800),
				 authd_field_seconds(msg, "session-lifetime", 28800), proc_now_ms());
	if (s == NULL) {
		struct ipc_field f[] = {{"id", id},
					{"result", "tempfail"},
					{"reason", "the random generator failed"}};
		authd_send(c, f, 3);
		return;
	}
	log_msg(LOG_LEVEL_INFO, ctx, "login accepted: user=%s kind=%s (web session)", u->name,
		directory_kind_name(u->kind));
	struct ipc_field f[] = {{"id", id},
				{"result", "ok"},
				{"user", u->name},
				{"kind", directory_kind_name(u->kind)},
				{"session", s->id},
				{"csrf", s->csrf}};
	authd_send(c, f, 6);
}

/* The live session named in msg and its user as the directory has it now;
 * a session whose user is gone or became a guest ends. Returns 1 with
 * *s_r and *u_r, 0 for no session, -1 when the directory failed. */
static int authd_http_session(struct authd_client *c, const struct ipc_msg *msg,
			      struct authd_session **s_r, struct directory_user **u_r)
{
	const char *id = ipc_msg_get(msg, "session");
	*s_r = NULL;
	*u_r = NULL;
	struct authd_session *s =
	    id != NULL ? authd_session_find(&c->authd->sessions, id, proc_now_ms()) : NULL;
	if (s == NULL)
		return 0;
	char *error = NULL;
	int found = directory_user_get(c->authd->dir, s->user, u_r, &error);
	if (found < 0) {
		log_error("directory lookup for %s failed: %s", s->user, error);
		free(error);
		return -1;
	}
	if (found == 0 || (*u_r)->kind == DIRECTORY_KIND_GUEST) {
		directory_user_free(u_r);
		authd_session_end(s);
		return 0;
	}
	*s_r = s;
	return 1;
}

static void authd_handle_session(struct authd_client *c, const struct ipc_msg *msg)
{
	const char *id = ipc_msg_get(msg, "id");
	struct authd_session *s;
	struct directory_user *u;
	int r = authd_http_session(c, msg, &s, &u);
	if (r > 0 && msg->type == IPC_SESSION_END) {
		log_info("web session of %s ended by sign-out", s->user);
		authd_session_end(s);
		directory_user_free(&u);
		r = 0;
	}
	struct ipc_field f[10] = {{"id", id},
				  {"result", r > 0 ? "ok" : r == 0 ? "none" : "tempfail"},
				  {"domain", c->authd->domain},
				  {"hostname", c->authd->hostname}};
	size_t n = 4;
	if (r > 0) {
		f[n++] = (struct ipc_field){"user", u->name};
		f[n++] = (struct ipc_field){"kind", directory_kind_name(u->kind)};
		f[n++] = (struct ipc_field){"csrf", s->csrf};
		f[n++] = (struct ipc_field){"pop3", u->pop3_enabled ? "on" : "off"};
		f[n++] = (struct ipc_field){"imap4", u->imap4_enabled ? "on" : "off"};
		f[n++] = (struct ipc_field){"smtp", u->smtp_enabled ? "on" : "off"};
	}
	authd_send_type(c, IPC_SESSION_REPLY, f, n);
	directory_user_free(&u);
}

/* The administrator behind the session in msg; otherwise the request is
 * answered ("denied" or "tempfail") and NULL returned. */
static struct directory_user *authd_http_admin(struct authd_client *c, const struct ipc_msg *msg,
					       enum ipc_type reply_type)
{
	struct authd_session *s;
	struct directory_user *u;
	int r = authd_http_session(c, msg, &s, &u);
	if (r > 0 && u->kind == DIRECTORY_KIND_ADMIN)
		return u;
	directory_user_free(&u);
	struct ipc_field f[] = {{"id", ipc_msg_get(msg, "id")},
				{"result", r < 0 ? "tempfail" : "denied"},
				{"reason", r < 0 ? "the directory cannot be read"
						 : "not signed in as an administrator"}};
	authd_send_type(c, reply_type, f, 3);
	return NULL;
}

#define AUTHD_USER_LIST_MAX 200

static void authd_handle_user_list(struct authd_client *c, const struct ipc_msg *msg)
{
	struct directory_user *admin = authd_http_admin(c, msg, IPC_USER_LIST_REPLY);
	if (admin == NULL)
		return;
	directory_user_free(&admin);
	const char *id = ipc_msg_get(msg, "id");
	const char *query = ipc_msg_get(msg, "query");
	const char *exact = ipc_msg_get(msg, "exact");
	bool whole = exact != NULL && strcmp(exact, "yes") == 0;
	const char *limit_text = ipc_msg_get(msg, "limit");
	unsigned long limit = limit_text != NULL ? strtoul(limit_text, NULL, 10) : 0;
	if (limit == 0 || limit > AUTHD_USER_LIST_MAX)
		limit = AUTHD_USER_LIST_MAX;
	struct directory_user *users = NULL;
	size_t count = 0;
	char *error = NULL;
	if (directory_user_list(c->authd->dir, &users, &count, &error) < 0) {
		struct ipc_field f[] = {{"id", id}, {"result", "tempfail"}, {"reason", error}};
		authd_send_type(c, IPC_USER_LIST_REPLY, f, 3);
		free(error);
		return;
	}
	struct ipc_field f[AUTHD_USER_LIST_MAX + 3];
	char *rows[AUTHD_USER_LIST_MAX];
	size_t n = 3, nrows = 0, total = 0;
	for (size_t i = 0; i < count; i++) {
		const struct directory_user *u = &users[i];
		if (query != NULL && *query != '\0' &&
		    (whole ? strcasecmp(u->name, query) != 0 : strcasestr(u->name, query) == NULL))
			continue;
		total++;
		if (nrows == limit)
			continue;
		/* names hold no blanks: one row is blank-separated words */
		rows[nrows] = xasprintf("%s %s %s %s %s %s %llu", u->name, directory_kind_name(u->kind),
					u->pop3_enabled ? "on" : "off",
					u->imap4_enabled ? "on" : "off",
					u->smtp_enabled ? "on" : "off",
					u->backend != NULL ? u->backend : DIRECTORY_BACKEND_LOCAL,
					u->quota_bytes);
		f[n++] = (struct ipc_field){"user", rows[nrows++]};
	}
	char total_text[24];
	snprintf(total_text, sizeof(total_text), "%zu", total);
	f[0] = (struct ipc_field){"id", id};
	f[1] = (struct ipc_field){"result", "ok"};
	f[2] = (struct ipc_field){"total", total_text};
	authd_send_type(c, IPC_USER_LIST_REPLY, f, n);
	for (size_t i = 0; i < nrows; i++)
		free(rows[i]);
	directory_user_list_free(&users, count);
}

static void authd_handle_user_set(struct authd_client *c, const struct ipc_msg *msg)
{
	struct directory_user *admin = authd_http_admin(c, msg, IPC_USER_REPLY);
	if (admin == NULL)
		return;
	const char *id = ipc_msg_get(msg, "id");
	const char *name = ipc_msg_get(msg, "user");
	static const struct {
		const char *key;
		unsigned field;
	} switches[] = {{"pop3", DIRECTORY_FIELD_POP3},
			{"imap4", DIRECTORY_FIELD_IMAP4},
			{"smtp", DIRECTORY_FIELD_SMTP}};
	struct directory_user values;
	directory_user_init(&values, name != NULL ? name : "", DIRECTORY_KIND_USER);
	unsigned mask = 0;
	char changes[64] = "";
	for (size_t i = 0; i < 3; i++) {
		const char *v = ipc_msg_get(msg, switches[i].key);
		if (v == NULL)
			continue;
		bool on = strcmp(v, "on") == 0;
		if (i == 0)
			values.pop3_enabled = on;
		else if (i == 1)
			values.imap4_enabled = on;
		else
			values.smtp_enabled = on;
		mask |= switches[i].field;
		size_t len = strlen(changes);
		snprintf(changes + len, sizeof(changes) - len, " %s=%s", switches[i].key,
			 on ? "on" : "off");
	}
	char *error = NULL;
	int r = name == NULL || mask == 0 ? -1
					  : directory_user_set_fields(c->authd->dir, name, mask,
								      &values, &error);
	directory_user_clear(&values);
	struct directory_user *u = NULL;
	if (r > 0 && directory_user_get(c->authd->dir, name, &u, &error) <= 0)
		r = -1;
	if (r <= 0) {
		struct ipc_field f[] = {{"id", id},
					{"result", r == 0 ? "unknown" : "fail"},
					{"reason", r == 0 ? "no such user"
						   : error != NULL ? error
								   : "name a user and a switch"}};
		authd_send_type(c, IPC_USER_REPLY, f, 3);
		free(error);
		directory_user_free(&admin);
		return;
	}
	log_info("administrator %s changed %s:%s (admin centre)", admin->name, u->name, changes);
	struct ipc_field f[] = {{"id", id},
				{"result", "ok"},
				{"user", u->name},
				{"kind", directory_kind_name(u->kind)},
				{"pop3", u->pop3_enabled ? "on" : "off"},
				{"imap4", u->imap4_enabled ? "on" : "off"},
				{"smtp", u->smtp_enabled ? "on" : "off"}};
	authd_send_type(c, IPC_USER_REPLY, f, 7);
	directory_user_free(&u);
	directory_user_free(&admin);
}

static void authd_handle_auth(struct authd_client *c, const struct ipc_msg *msg)
{
	struct authd *a = c->authd;
	struct authd_request r;
	if (!authd_request_parse(c, msg, &r))
		return;
	const char *user = ipc_msg_get(msg, "user");
	const char *password = ipc_msg_get(msg, "password");
	if (user == NULL || password == NULL) {
		log_error("malformed request from a %s worker; dropping its channel", c->service);
		authd_client_close(c);
		return;
	}
	if (authd_refuse_anonymous(c, &r, user))
		return;

	struct directory_user *u = NULL;
	char *error = NULL;
	int found = directory_user_get(a->dir, user, &u, &error);
	if (found < 0) {
		log_msg(LOG_LEVEL_ERROR, &r.ctx, "directory lookup for %s failed: %s", user, error);
		metrics_auth(r.service, METRICS_AUTH_TEMPFAIL, false);
		struct ipc_field f[] = {{"id", r.id}, {"result", "tempfail"}, {"reason", error}};
		authd_send(c, f, 3);
		free(error);
		return;
	}
	bool verified = found > 0 && u->password_hash != NULL &&
			password_verify(password, u->password_hash) == 1;
	if (found == 0) {
		/* spend the time a real verification would, so timing does not
		 * tell which names exist */
		if (a->dummy_hash != NULL)
			password_verify(password, a->dummy_hash);
	}
	if (!verified) {
		authd_login_failed(c, &r, user,
				   found == 0 ? METRICS_AUTH_UNKNOWN_USER : METRICS_AUTH_WRONG_PASSWORD,
				   found == 0 ? "unknown user" : "wrong password");
		directory_user_free(&u);
		return;
	}
	authd_scram_upgrade(a, u, password, &r.ctx);

	const char *act_as = ipc_msg_get(msg, "act-as");
	if (act_as != NULL) {
		authd_act_as(c, msg, r.id, u, act_as, &r.ctx);
		directory_user_free(&u);
		return;
	}
	if (r.protocol != NULL && strcmp(r.protocol, "HTTP") == 0) {
		if (!authd_refuse(c, &r, u))
			authd_http_login(c, msg, r.id, u, &r.ctx);
		directory_user_free(&u);
		return;
	}
	authd_grant(c, &r, u, "");
	directory_user_free(&u);
}

/* ---- SCRAM-SHA-256 ---- */

static void authd_scram_continue(struct authd_client *c, const struct authd_request *r,
				 const struct authd_scram_exchange *e, const char *challenge)
{
	struct ipc_field f[] = {{"id", r->id},
				{"result", "continue"},
				{"exchange", e->handle},
				{"challenge", challenge}};
	authd_send(c, f, 4);
}

/* client-first-message: answer with the server-first message, for a
 * user with keys or, alike, for anybody else */
static void authd_handle_scram_first(struct authd_client *c, const struct ipc_msg *msg)
{
	struct authd *a = c->authd;
	struct authd_request r;
	if (!authd_request_parse(c, msg, &r))
		return;
	const char *message = ipc_msg_get(msg, "message");
	if (message == NULL) {
		log_error("malformed request from a %s worker; dropping its channel", c->service);
		authd_client_close(c);
		return;
	}
	char user[SCRAM_MAX_NAME + 1];
	const char *error_text;
	if (authd_scram_client_first(message, strlen(message), user, &error_text) < 0) {
		authd_login_failed(c, &r, "?", METRICS_AUTH_WRONG_PASSWORD,
				   "malformed SCRAM client-first message");
		return;
	}
	struct directory_user *u = NULL;
	char *error = NULL;
	int found = directory_user_get(a->dir, user, &u, &error);
	if (found < 0) {
		log_msg(LOG_LEVEL_ERROR, &r.ctx, "directory lookup for %s failed: %s", user, error);
		struct ipc_field f[] = {{"id", r.id}, {"result", "tempfail"}, {"reason", error}};
		authd_send(c, f, 3);
		free(error);
		return;
	}
	struct authd_scram_keys keys;
	struct password_scram stored;
	unsigned char fake_salt[SCRAM_SALT_SIZE], fake_keys[2][SCRAM_KEY_SIZE];
	if (found > 0 && u->password_hash != NULL && u->scram_sha256 != NULL &&
	    password_scram_parse(u->scram_sha256, &stored, &error) == 0) {
		keys = (struct authd_scram_keys){
		    .real = true,
		    .stored = u->scram_sha256,
		    .iterations = stored.iterations,
		    .salt = stored.salt,
		    .salt_len = stored.salt_len,
		    .stored_key = stored.stored_key,
		    .server_key = stored.server_key,
		};
	} else {
		free(error);
		authd_scram_fake_keys(&a->scram, user, &keys, fake_salt, fake_keys);
	}
	struct authd_scram_exchange *e =
	    authd_scram_begin(&a->scram, message, strlen(message), &keys, NULL, c, c->generation,
			      proc_now_ms(), &error_text);
	OPENSSL_cleanse(&stored, sizeof(stored));
	directory_user_free(&u);
	if (e == NULL) {
		struct ipc_field f[] = {{"id", r.id}, {"result", "tempfail"}, {"reason", error_text}};
		authd_send(c, f, 3);
		return;
	}
	authd_scram_continue(c, &r, e, e->server_first);
}

/* client-final-message: verify the proof; answer with the server
 * signature, or fail as a wrong password does */
static void authd_handle_scram_final(struct authd_client *c, const struct ipc_msg *msg)
{
	struct authd *a = c->authd;
	struct authd_request r;
	if (!authd_request_parse(c, msg, &r))
		return;
	const char *handle = ipc_msg_get(msg, "exchange");
	const char *message = ipc_msg_get(msg, "message");
	if (handle == NULL || message == NULL) {
		log_error("malformed request from a %s worker; dropping its channel", c->service);
		authd_client_close(c);
		return;
	}
	struct authd_scram_exchange *e = authd_scram_find(
	    &a->scram, handle, AUTHD_SCRAM_AWAIT_FINAL, c, c->generation, proc_now_ms());
	if (e == NULL) {
		authd_login_failed(c, &r, "?", METRICS_AUTH_WRONG_PASSWORD,
				   "unknown, expired or finished SCRAM exchange");
		return;
	}
	char user[SCRAM_MAX_NAME + 1];
	memcpy(user, e->user, sizeof(user));
	if (authd_refuse_anonymous(c, &r, user)) {
		authd_scram_end(&a->scram, e);
		return;
	}
	char server_final[8 + BASE64_ENCODED_LEN(SCRAM_KEY_SIZE)];
	const char *why = NULL;
	int ok = authd_scram_verify(e, message, strlen(message), server_final,
				    sizeof(server_final), &why);
	struct directory_user *u = NULL;
	char *error = NULL;
	int found = ok ? directory_user_get(a->dir, user, &u, &error) : 0;
	if (found < 0) {
		log_msg(LOG_LEVEL_ERROR, &r.ctx, "directory lookup for %s failed: %s", user, error);
		struct ipc_field f[] = {{"id", r.id}, {"result", "tempfail"}, {"reason", error}};
		authd_send(c, f, 3);
		free(error);
		authd_scram_end(&a->scram, e);
		return;
	}
	/* the password changed since the salt went out: the old one is no
	 * longer good */
	if (ok && (found == 0 || u->scram_sha256 == NULL || strcmp(u->scram_sha256, e->keys) != 0)) {
		ok = 0;
		why = "the password changed during the exchange";
	}
	if (!ok) {
		if (e->keys == NULL && why != NULL && strcmp(why, "no SCRAM keys") == 0)
			why = "unknown user, or no SCRAM keys yet (they are made at the next PLAIN "
			      "or LOGIN login)";
		authd_login_failed(c, &r, user, METRICS_AUTH_WRONG_PASSWORD, why);
		authd_scram_end(&a->scram, e);
		directory_user_free(&u);
		return;
	}
	if (authd_refuse(c, &r, u)) {
		authd_scram_end(&a->scram, e);
		directory_user_free(&u);
		return;
	}
	/* the login completes when the client has checked the server's
	 * signature and says so (an empty response) */
	snprintf(e->user, sizeof(e->user), "%s", u->name);
	e->state = AUTHD_SCRAM_AWAIT_CONFIRM;
	authd_scram_continue(c, &r, e, server_final);
	directory_user_free(&u);
}

/* the client accepted the server's signature: the login is complete */
static void authd_handle_scram_confirm(struct authd_client *c, const struct ipc_msg *msg)
{
	struct authd *a = c->authd;
	struct authd_request r;
	if (!authd_request_parse(c, msg, &r))
		return;
	const char *handle = ipc_msg_get(msg, "exchange");
	if (handle == NULL) {
		log_error("malformed request from a %s worker; dropping its channel", c->service);
		authd_client_close(c);
		return;
	}
	struct authd_scram_exchange *e = authd_scram_find(
	    &a->scram, handle, AUTHD_SCRAM_AWAIT_CONFIRM, c, c->generation, proc_now_ms());
	if (e == NULL) {
		authd_login_failed(c, &r, "?", METRICS_AUTH_WRONG_PASSWORD,
				   "unknown, expired or finished SCRAM exchange");
		return;
	}
	char user[SCRAM_MAX_NAME + 1];
	memcpy(user, e->user, sizeof(user));
	authd_scram_end(&a->scram, e);
	struct directory_user *u = NULL;
	char *error = NULL;
	int found = directory_user_get(a->dir, user, &u, &error);
	if (found <= 0) {
		struct ipc_field f[] = {{"id", r.id},
					{"result", found < 0 ? "tempfail" : "fail"},
					{"reason", found < 0 ? error : "no such user"}};
		authd_send(c, f, 3);
		free(error);
		return;
	}
	authd_grant(c, &r, u, " (SCRAM-SHA-256)");
	directory_user_free(&u);
}

/* A back end asks about a user it must serve (a delivery's recipient):
 * whether the user exists, the canonical name, the quota. */
static void authd_handle_lookup(struct authd_client *c, const struct ipc_msg *msg)
{
	const char *id = ipc_msg_get(msg, "id");
	const char *user = ipc_msg_get(msg, "user");
	if (id == NULL || user == NULL) {
		log_error("malformed lookup from a %s worker; dropping its channel", c->service);
		authd_client_close(c);
		return;
	}
	struct directory_user *u = NULL;
	char *error = NULL;
	int found = directory_user_get(c->authd->dir, user, &u, &error);
	if (found < 0) {
		struct ipc_field f[] = {{"id", id}, {"result", "tempfail"}, {"reason", error}};
		authd_send_type(c, IPC_USER_REPLY, f, 3);
		free(error);
		return;
	}
	if (found == 0) {
		struct ipc_field f[] = {{"id", id}, {"result", "unknown"}};
		authd_send_type(c, IPC_USER_REPLY, f, 2);
		return;
	}
	char quota[24];
	snprintf(quota, sizeof(quota), "%llu", u->quota_bytes);
	/* where a delivery for the user goes (the submission service) */
	const char *backend_name = u->backend != NULL ? u->backend : DIRECTORY_BACKEND_LOCAL;
	struct directory_backend *b = NULL;
	char *berror = NULL;
	if (directory_backend_get(c->authd->dir, backend_name, &b, &berror) < 0)
		free(berror);
	struct ipc_field f[] = {{"id", id},
				{"result", "ok"},
				{"user", u->name},
				{"kind", directory_kind_name(u->kind)},
				{"backend", backend_name},
				{"quota", quota},
				{"lmtp-address",
				 b != NULL && b->lmtp_address != NULL ? b->lmtp_address : ""}};
	authd_send_type(c, IPC_USER_REPLY, f, 7);
	directory_backend_free(&b);
	directory_user_free(&u);
}

static void authd_handle_ticket(struct authd_client *c, const struct ipc_msg *msg)
{
	const char *id = ipc_msg_get(msg, "id");
	const char *user = ipc_msg_get(msg, "user");
	const char *peer = ipc_msg_get(msg, "peer");
	const char *expiry = ipc_msg_get(msg, "expiry");
	const char *mac = ipc_msg_get(msg, "mac");
	if (id == NULL || user == NULL || peer == NULL || expiry == NULL || mac == NULL) {
		log_error("malformed ticket from a %s worker; dropping its channel", c->service);
		authd_client_close(c);
		return;
	}
	const char *why = NULL;
	if (authd_ticket_check(&c->authd->tickets, user, peer, expiry, mac, time(NULL), &why) < 0) {
		struct log_ctx ctx = {c->service, NULL, peer};
		log_msg(LOG_LEVEL_WARN, &ctx, "back-end login refused: user=%s: %s", user, why);
		struct ipc_field f[] = {{"id", id}, {"result", "fail"}, {"reason", why}};
		authd_send_type(c, IPC_USER_REPLY, f, 3);
		return;
	}
	authd_handle_lookup(c, msg);
}

/* The submission service asks for the authorisation of a copy of a message
 * its user submitted, to be filed in the user's Sent folder (see
 * authd_ticket.h); the lmtp service that files it has authd check it. */
static void authd_handle_sent(struct authd_client *c, const struct ipc_msg *msg)
{
	const char *id = ipc_msg_get(msg, "id");
	const char *user = ipc_msg_get(msg, "user");
	const char *digest = ipc_msg_get(msg, "digest");
	const char *mac = ipc_msg_get(msg, "mac");
	bool verify = msg->type == IPC_SENT_VERIFY;
	if (id == NULL || user == NULL || digest == NULL || (verify && mac == NULL)) {
		log_error("malformed sent-copy request from a %s worker; dropping its channel",
			  c->service);
		authd_client_close(c);
		return;
	}
	struct log_ctx ctx = {c->service, NULL, NULL};
	const char *why = NULL;
	char made[AUTHD_TICKET_MAC_HEX + 1] = "";
	int r;
	if (!verify && strcmp(c->service, "submission") != 0) {
		why = "only the submission service may authorise a sent copy";
		r = -1;
	} else if (verify) {
		r = authd_sent_copy_check(&c->authd->tickets, user, digest, mac, &why);
	} else {
		r = authd_sent_copy_make(&c->authd->tickets, user, digest, made);
		if (r < 0)
			why = "malformed digest";
	}
	if (r < 0) {
		log_msg(LOG_LEVEL_WARN, &ctx, "sent copy for %s refused: %s", user, why);
		struct ipc_field f[] = {{"id", id}, {"result", "fail"}, {"reason", why}};
		authd_send_type(c, IPC_USER_REPLY, f, 3);
		return;
	}
	struct ipc_field f[] = {{"id", id}, {"result", "ok"}, {"mac", made}};
	authd_send_type(c, IPC_USER_REPLY, f, verify ? 2 : 3);
}

static void authd_client_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct authd_client *c = arg;
	struct authd *a = c->authd;
	for (int i = 0; i < 16 && c->fd >= 0; i++) {
		const char *error;
		int r = ipc_recv(c->fd, a->msg, &error);
		if (r == 0)
			return;
		if (r < 0) {
			if (strcmp(error, "channel closed") != 0)
				log_error("bad message from a %s worker (%s); dropping its channel",
					  c->service, error);
			authd_client_close(c);
			return;
		}
		if (a->msg->fd >= 0)
			close(a->msg->fd);
		if (a->msg->type == IPC_AUTH_REQUEST) {
			authd_handle_auth(c, a->msg);
		} else if (a->msg->type == IPC_USER_LOOKUP) {
			authd_handle_lookup(c, a->msg);
		} else if (a->msg->type == IPC_TICKET_VERIFY) {
			authd_handle_ticket(c, a->msg);
		} else if (a->msg->type == IPC_SCRAM_FIRST) {
			authd_handle_scram_first(c, a->msg);
		} else if (a->msg->type == IPC_SCRAM_FINAL) {
			authd_handle_scram_final(c, a->msg);
		} else if (a->msg->type == IPC_SCRAM_CONFIRM) {
			authd_handle_scram_confirm(c, a->msg);
		} else if (strcmp(c->service, "http") == 0 && ipc_msg_get(a->msg, "id") != NULL &&
			   (a->msg->type == IPC_SESSION_CHECK || a->msg->type == IPC_SESSION_END)) {
			authd_handle_session(c, a->msg);
		} else if (strcmp(c->service, "http") == 0 && ipc_msg_get(a->msg, "id") != NULL &&
			   a->msg->type == IPC_USER_LIST) {
			authd_handle_user_list(c, a->msg);
		} else if (strcmp(c->service, "http") == 0 && ipc_msg_get(a->msg, "id") != NULL &&
			   a->msg->type == IPC_USER_SET) {
			authd_handle_user_set(c, a->msg);
		} else if (a->msg->type == IPC_SENT_AUTHORISE || a->msg->type == IPC_SENT_VERIFY) {
			authd_handle_sent(c, a->msg);
		} else {
			log_error("unexpected message %d from a %s worker; dropping its channel",
				  (int)a->msg->type, c->service);
			authd_client_close(c);
		}
	}
}

static void authd_add_client(struct authd *a, int fd, const char *service)
{
	for (size_t i = 0; i < AUTHD_MAX_CLIENTS; i++) {
		struct authd_client *c = &a->clients[i];
		if (c->fd >= 0)
			continue;
		c->authd = a;
		c->fd = fd;
		c->generation = ++a->next_generation;
		snprintf(c->service, sizeof(c->service), "%s", service != NULL ? service : "?");
		evutil_make_socket_nonblocking(fd);
		c->ev = event_new(a->base, fd, EV_READ | EV_PERSIST, authd_client_cb, c);
		event_add(c->ev, NULL);
		return;
	}
	log_error("too many worker channels; refusing one from %s", service);
	close(fd);
}

static void authd_channel_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct authd *a = arg;
	for (int i = 0; i < 64; i++) {
		const char *error;
		int r = ipc_recv(a->channel, a->msg, &error);
		if (r == 0)
			return;
		if (r < 0) {
			log_info("master channel: %s; exiting", error);
			exit(0);
		}
		if (a->msg->type == IPC_AUTHD_CLIENT && a->msg->fd >= 0) {
			authd_add_client(a, a->msg->fd, ipc_msg_get(a->msg, "service"));
		} else if (a->msg->type == IPC_METRICS && a->msg->fd >= 0) {
			char *err = NULL;
			if (metrics_attach(a->msg->fd, "authd", 0, &err) < 0)
				log_warn("metrics: %s", err);
			free(err);
			close(a->msg->fd);
		} else {
			log_error("unexpected message %d from the master; exiting", (int)a->msg->type);
			exit(1);
		}
	}
}

static void authd_scram_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct authd *a = arg;
	authd_scram_expire(&a->scram, proc_now_ms());
}

static void authd_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct authd *a = arg;
	if (sig == SIGTERM)
		event_base_loopexit(a->base, NULL);
}

void authd_main(const char *datadir, int channel_fd)
{
	static struct authd a;
	a.datadir = datadir;
	a.channel = channel_fd;
	a.msg = xmalloc(sizeof(*a.msg));
	for (size_t i = 0; i < AUTHD_MAX_CLIENTS; i++)
		a.clients[i].fd = -1;
	signal(SIGPIPE, SIG_IGN);
	char *error = NULL;
	/* read-write (and so migrated to this code's schema): a password
	 * login stores the user's SCRAM keys when they have none. Opened
	 * before privileges are dropped, so the descriptors stay usable. */
	if (directory_open(datadir, false, &a.dir, &error) == 0) {
		a.dir_writable = true;
	} else {
		log_warn("%s; opening it read-only: SCRAM-SHA-256 keys are not stored at "
			 "logins and the admin centre cannot change users", error);
		free(error);
		error = NULL;
		if (directory_open(datadir, true, &a.dir, &error) < 0) {
			log_error("%s", error);
			exit(1);
		}
	}
	char *secret = NULL;
	if (directory_meta_get(a.dir, DIRECTORY_META_INTERNAL_SECRET, &secret, &error) <= 0 ||
	    authd_tickets_init(&a.tickets, secret, &error) < 0) {
		log_error("internal secret: %s", error != NULL ? error : "missing from the directory");
		exit(1);
	}
	OPENSSL_cleanse(secret, strlen(secret));
	free(secret);
	authd_scram_init(&a.scram, a.tickets.key, a.tickets.key_len);
	if (directory_meta_get(a.dir, DIRECTORY_META_DOMAIN, &a.domain, &error) <= 0) {
		free(error);
		error = NULL;
		a.domain = xstrdup("");
	}
	if (directory_meta_get(a.dir, DIRECTORY_META_HOSTNAME, &a.hostname, &error) <= 0) {
		free(error);
		error = NULL;
		a.hostname = xstrdup("");
	}
	if (password_hash("postern-timing-equaliser", &a.dummy_hash, &error) < 0) {
		log_warn("cannot prepare the timing hash: %s", error);
		free(error);
		error = NULL;
	}
	/* the directory is open: nothing else needs privileges */
	if (proc_drop_privileges("postern-auth", &error) < 0) {
		log_error("%s", error);
		exit(1);
	}
	a.base = event_base_new();
	evutil_make_socket_nonblocking(channel_fd);
	a.channel_ev = event_new(a.base, channel_fd, EV_READ | EV_PERSIST, authd_channel_cb, &a);
	event_add(a.channel_ev, NULL);
	a.scram_sweep = event_new(a.base, -1, EV_PERSIST, authd_scram_sweep_cb, &a);
	struct timeval sweep = {30, 0};
	event_add(a.scram_sweep, &sweep);
	struct event *term = evsignal_new(a.base, SIGTERM, authd_signal_cb, &a);
	struct event *intr = evsignal_new(a.base, SIGINT, authd_signal_cb, &a);
	event_add(term, NULL);
	event_add(intr, NULL);
	char pid[24];
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	struct ipc_field f = {"pid", pid};
	ipc_send(channel_fd, IPC_READY, -1, &f, 1, 5000);
	event_base_dispatch(a.base);
	directory_close(&a.dir);
	authd_scram_clear(&a.scram);
	free(a.domain);
	free(a.hostname);
	exit(0);
}
