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

#include "authd/authd_tarpit.h"
#include "authd/authd_ticket.h"
#include "directory/directory.h"
#include "directory/password.h"
#include "lib/ipc.h"
#include "lib/log.h"
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

static void authd_handle_auth(struct authd_client *c, const struct ipc_msg *msg)
{
	struct authd *a = c->authd;
	const char *id = ipc_msg_get(msg, "id");
	const char *service = ipc_msg_get(msg, "service");
	const char *user = ipc_msg_get(msg, "user");
	const char *password = ipc_msg_get(msg, "password");
	const char *peer = ipc_msg_get(msg, "peer");
	const char *tarpit = ipc_msg_get(msg, "tarpit");
	const char *delay_text = ipc_msg_get(msg, "failure-delay");
	if (id == NULL || service == NULL || user == NULL || password == NULL) {
		log_error("malformed request from a %s worker; dropping its channel", c->service);
		authd_client_close(c);
		return;
	}
	if (peer == NULL)
		peer = "?";
	long long base_delay = delay_text != NULL ? strtoll(delay_text, NULL, 10) * 1000
						  : AUTHD_DEFAULT_FAILURE_DELAY_MS;
	struct log_ctx ctx = {service, NULL, peer};
	const char *protocol = authd_protocol_name(service);

	/* names that stand for "no account" never log in, whatever exists */
	if (protocol != NULL && strcmp(protocol, "SMTP") != 0 &&
	    (strcasecmp(user, "anonymous") == 0 || strcasecmp(user, "guest") == 0)) {
		log_msg(LOG_LEVEL_INFO, &ctx, "login refused: user=%s: anonymous and guest logins "
					      "are never allowed", user);
		struct ipc_field f[] = {{"id", id},
					{"result", "refused"},
					{"code", "CONTACTADMIN"},
					{"reason", "anonymous and guest logins are not allowed"}};
		authd_reply_later(c, base_delay, f, 4);
		return;
	}

	struct directory_user *u = NULL;
	char *error = NULL;
	int found = directory_user_get(a->dir, user, &u, &error);
	if (found < 0) {
		log_msg(LOG_LEVEL_ERROR, &ctx, "directory lookup for %s failed: %s", user, error);
		struct ipc_field f[] = {{"id", id}, {"result", "tempfail"}, {"reason", error}};
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
	char key[64];
	authd_tarpit_key(peer, key, sizeof(key));
	long long now = proc_now_ms();
	if (!verified) {
		unsigned failures = tarpit != NULL && strcmp(tarpit, "no") == 0
					    ? 0
					    : authd_tarpit_fail(key, now);
		long long delay = base_delay + authd_tarpit_delay_ms(failures, base_delay);
		log_msg(LOG_LEVEL_INFO, &ctx,
			"login failed: user=%s: %s (failures from %s: %u, delay %lld ms)", user,
			found == 0 ? "unknown user" : "wrong password", key, failures, delay);
		struct ipc_field f[] = {{"id", id}, {"result", "fail"}};
		authd_reply_later(c, delay, f, 2);
		directory_user_free(&u);
		return;
	}

	const char *act_as = ipc_msg_get(msg, "act-as");
	if (act_as != NULL) {
		authd_act_as(c, msg, id, u, act_as, &ctx);
		directory_user_free(&u);
		return;
	}

	const char *refusal = NULL;
	char reason[160];
	if (u->kind == DIRECTORY_KIND_GUEST || u->kind == DIRECTORY_KIND_ADMIN) {
		if (protocol != NULL) {
			snprintf(reason, sizeof(reason), "%s accounts may not use %s",
				 u->kind == DIRECTORY_KIND_GUEST ? "guest" : "administrator",
				 protocol);
			refusal = reason;
		}
	} else if (protocol != NULL && !authd_switch_on(u, protocol)) {
		snprintf(reason, sizeof(reason), "%s is disabled for this user", protocol);
		refusal = reason;
	}
	if (refusal != NULL) {
		log_msg(LOG_LEVEL_INFO, &ctx, "login refused: user=%s: %s", u->name, refusal);
		struct ipc_field f[] = {{"id", id},
					{"result", "refused"},
					{"code", "CONTACTADMIN"},
					{"reason", refusal}};
		authd_send(c, f, 4);
		directory_user_free(&u);
		return;
	}
	/* where the mailbox lives, as the front end must reach it */
	const char *backend_name = u->backend != NULL ? u->backend : DIRECTORY_BACKEND_LOCAL;
	struct directory_backend *b = NULL;
	if (directory_backend_get(a->dir, backend_name, &b, &error) <= 0) {
		log_msg(LOG_LEVEL_ERROR, &ctx, "back end %s of %s: %s", backend_name, u->name,
			error != NULL ? error : "unknown back end");
		struct ipc_field f[] = {{"id", id},
					{"result", "tempfail"},
					{"reason", "the user's back end is not in the directory"}};
		authd_send(c, f, 3);
		free(error);
		directory_user_free(&u);
		return;
	}
	const char *address = "";
	if (b != NULL && strcmp(protocol != NULL ? protocol : "", "IMAP4") == 0)
		address = b->imap4_address != NULL ? b->imap4_address : "";
	else if (b != NULL && strcmp(protocol != NULL ? protocol : "", "POP3") == 0)
		address = b->pop3_address != NULL ? b->pop3_address : "";
	else if (b != NULL)
		address = b->lmtp_address != NULL ? b->lmtp_address : "";
	log_msg(LOG_LEVEL_INFO, &ctx, "login accepted: user=%s backend=%s", u->name, backend_name);
	char expiry[24], mac[AUTHD_TICKET_MAC_HEX + 1];
	authd_ticket_make(&a->tickets, u->name, peer, time(NULL), expiry, sizeof(expiry), mac);
	struct ipc_field f[] = {{"id", id},
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
		} else {
			log_error("unexpected message %d from the master; exiting", (int)a->msg->type);
			exit(1);
		}
	}
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
	if (directory_open(datadir, true, &a.dir, &error) < 0) {
		log_error("%s", error);
		exit(1);
	}
	char *secret = NULL;
	if (directory_meta_get(a.dir, DIRECTORY_META_INTERNAL_SECRET, &secret, &error) <= 0 ||
	    authd_tickets_init(&a.tickets, secret, &error) < 0) {
		log_error("internal secret: %s", error != NULL ? error : "missing from the directory");
		exit(1);
	}
	OPENSSL_cleanse(secret, strlen(secret));
	free(secret);
	if (directory_meta_get(a.dir, DIRECTORY_META_DOMAIN, &a.domain, &error) <= 0) {
		free(error);
		error = NULL;
		a.domain = xstrdup("");
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
	free(a.domain);
	exit(0);
}
