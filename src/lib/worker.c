#include "lib/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/proc.h"
#include "lib/xalloc.h"

#define WORKER_MAX_LISTENERS 32

struct worker_listener {
	struct evconnlistener *lev;
	struct event *resume_ev; /* re-enables accepting after a failure */
	bool implicit_tls;
	char addr[128];
};

struct worker {
	const struct worker_service_ops *ops;
	const char *datadir;
	const char *run_as_user;
	struct event_base *base;
	int channel;
	struct event *channel_ev;
	int authd;
	struct event *authd_ev;
	struct event *sigterm_ev;
	struct event *sigint_ev;
	struct event *status_ev;
	unsigned last_reported_connections;

	struct ipc_msg *settings;     /* the last IPC_SETTINGS message, fields point into it */
	struct ipc_msg *scratch;      /* receive buffer */
	bool initialised;
	bool shutting_down;

	struct worker_listener listeners[WORKER_MAX_LISTENERS];
	size_t nlisteners;
	void *ctx;
};

static void worker_listeners_clear(struct worker *w)
{
	for (size_t i = 0; i < w->nlisteners; i++) {
		evconnlistener_free(w->listeners[i].lev);
		event_free(w->listeners[i].resume_ev);
	}
	w->nlisteners = 0;
}

static void worker_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
			     struct sockaddr *peer, int peer_len, void *arg)
{
	struct worker *w = arg;
	struct worker_listener *l = NULL;
	for (size_t i = 0; i < w->nlisteners; i++)
		if (w->listeners[i].lev == lev)
			l = &w->listeners[i];
	if (l == NULL || w->shutting_down) {
		close(fd);
		return;
	}
	/* Answers are written in pieces (a relayed reply, a TLS record per
	 * write): without TCP_NODELAY the last small piece waits for the
	 * client's delayed acknowledgement, some 40 ms per command. */
	if (peer->sa_family == AF_INET || peer->sa_family == AF_INET6) {
		int on = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	}
	w->ops->accepted(w, fd, peer, (socklen_t)peer_len, l->implicit_tls, l->addr);
}

static void worker_listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evconnlistener_enable(arg);
}

static void worker_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct worker *w = arg;
	int err = EVUTIL_SOCKET_ERROR();
	/* out of descriptors or buffers: pause briefly instead of spinning */
	log_warn("accept failed: %s", evutil_socket_error_to_string(err));
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].lev != lev)
			continue;
		evconnlistener_disable(lev);
		struct timeval tv = {0, 100000};
		event_add(w->listeners[i].resume_ev, &tv);
	}
}

static void worker_add_listener(struct worker *w, const struct ipc_msg *msg)
{
	if (msg->fd < 0) {
		log_error("listener message without a socket");
		return;
	}
	if (w->nlisteners == WORKER_MAX_LISTENERS) {
		log_error("too many listeners; ignoring one");
		close(msg->fd);
		return;
	}
	evutil_make_socket_nonblocking(msg->fd);
	struct worker_listener *l = &w->listeners[w->nlisteners];
	l->lev = evconnlistener_new(w->base, worker_accept_cb, w,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, msg->fd);
	if (l->lev == NULL) {
		log_error("cannot listen on a socket from the master");
		close(msg->fd);
		return;
	}
	evconnlistener_set_error_cb(l->lev, worker_accept_error_cb);
	l->resume_ev = event_new(w->base, -1, 0, worker_listener_resume_cb, l->lev);
	const char *tls = ipc_msg_get(msg, "tls");
	const char *addr = ipc_msg_get(msg, "addr");
	l->implicit_tls = tls != NULL && strcmp(tls, "yes") == 0;
	snprintf(l->addr, sizeof(l->addr), "%s", addr != NULL ? addr : "?");
	if (w->shutting_down)
		evconnlistener_disable(l->lev);
	w->nlisteners++;
}

static void worker_begin_shutdown(struct worker *w)
{
	if (w->shutting_down)
		return;
	w->shutting_down = true;
	worker_listeners_clear(w);
	log_info("shutting down");
	if (w->ops->shutdown != NULL && w->initialised)
		w->ops->shutdown(w);
	else
		worker_shutdown_done(w);
}

static void worker_authd_cb(evutil_socket_t fd, short what, void *arg);

static void worker_set_authd(struct worker *w, int fd)
{
	if (w->authd_ev != NULL)
		event_free(w->authd_ev);
	if (w->authd >= 0)
		close(w->authd);
	w->authd = fd;
	w->authd_ev = NULL;
	if (fd < 0)
		return;
	evutil_make_socket_nonblocking(fd);
	w->authd_ev = event_new(w->base, fd, EV_READ | EV_PERSIST, worker_authd_cb, w);
	event_add(w->authd_ev, NULL);
}

static void worker_authd_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct worker *w = arg;
	for (int i = 0; i < 64; i++) {
		const char *error;
		int r = ipc_recv(w->authd, w->scratch, &error);
		if (r == 0)
			return;
		if (r < 0) {
			log_warn("authd channel: %s; waiting for a new one", error);
			worker_set_authd(w, -1);
			return;
		}
		if (w->scratch->fd >= 0) {
			close(w->scratch->fd);
			w->scratch->fd = -1;
		}
		if (w->ops->authd_reply != NULL && w->initialised)
			w->ops->authd_reply(w, w->scratch);
	}
}

static void worker_channel_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct worker *w = arg;
	for (int i = 0; i < 64; i++) {
		const char *error;
		int r = ipc_recv(w->channel, w->scratch, &error);
		if (r == 0)
			return;
		if (r < 0) {
			/* the master is gone: nobody supervises us, leave at once */
			log_error("master channel: %s; exiting", error);
			exit(1);
		}
		struct ipc_msg *msg = w->scratch;
		switch (msg->type) {
		case IPC_SETTINGS: {
			struct ipc_msg *old = w->settings;
			w->settings = msg;
			w->scratch = old != NULL ? old : xmalloc(sizeof(*old));
			if (!w->initialised) {
				char *err = NULL;
				if (w->ops->init != NULL && w->ops->init(w, &err) < 0) {
					log_error("cannot start: %s", err != NULL ? err : "?");
					exit(1);
				}
				if (proc_drop_privileges(w->run_as_user, &err) < 0) {
					log_error("%s", err);
					exit(1);
				}
				w->initialised = true;
			} else if (w->ops->settings_changed != NULL) {
				w->ops->settings_changed(w);
			}
			if (w->settings->fd >= 0) {
				close(w->settings->fd);
				w->settings->fd = -1;
			}
			break;
		}
		case IPC_LISTENERS_RESET:
			worker_listeners_clear(w);
			break;
		case IPC_LISTENER:
			/* the listener owns the descriptor from here on */
			worker_add_listener(w, msg);
			msg->fd = -1;
			break;
		case IPC_AUTHD_CHANNEL:
			worker_set_authd(w, msg->fd);
			msg->fd = -1;
			break;
		case IPC_SHUTDOWN:
			worker_begin_shutdown(w);
			break;
		case IPC_METRICS: {
			const char *slot = ipc_msg_get(msg, "slot");
			char *err = NULL;
			if (msg->fd < 0 || metrics_attach(msg->fd, w->ops->name,
							  slot != NULL ? (unsigned)atoi(slot) : 0,
							  &err) < 0) {
				log_warn("metrics: %s", err != NULL ? err : "no region");
				free(err);
			}
			break;
		}
		case IPC_KICK: {
			const char *user = ipc_msg_get(msg, "user");
			if (user != NULL && w->ops->kick != NULL && w->initialised)
				w->ops->kick(w, user);
			break;
		}
		default:
			if (w->ops->master_message == NULL) {
				log_error("unexpected message %d from the master; exiting",
					  (int)msg->type);
				exit(1);
			}
			if (w->initialised)
				w->ops->master_message(w, msg);
			break;
		}
		if (msg->fd >= 0 && msg != w->settings) {
			close(msg->fd);
			msg->fd = -1;
		}
	}
}

static void worker_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct worker *w = arg;
	if (sig == SIGTERM)
		worker_begin_shutdown(w);
	/* SIGINT from a terminal reaches the whole process group: the master
	 * decides, and tells us with IPC_SHUTDOWN */
}

static void worker_status_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct worker *w = arg;
	unsigned n = w->ops->connection_count != NULL && w->initialised
			     ? w->ops->connection_count(w)
			     : 0;
	if (n == w->last_reported_connections)
		return;
	char text[24];
	snprintf(text, sizeof(text), "%u", n);
	struct ipc_field f = {"connections", text};
	if (ipc_send(w->channel, IPC_STATUS, -1, &f, 1, 1000) == 0)
		w->last_reported_connections = n;
}

void worker_main(const struct worker_service_ops *ops, const char *datadir, int channel_fd,
		 const char *run_as_user)
{
	struct worker *w = xcalloc(1, sizeof(*w));
	w->ops = ops;
	w->datadir = datadir;
	w->run_as_user = run_as_user;
	w->channel = channel_fd;
	w->authd = -1;
	w->scratch = xmalloc(sizeof(*w->scratch));
	signal(SIGPIPE, SIG_IGN);
	w->base = event_base_new();
	if (w->base == NULL) {
		log_error("cannot create the event loop");
		exit(1);
	}
	evutil_make_socket_nonblocking(channel_fd);
	w->channel_ev = event_new(w->base, channel_fd, EV_READ | EV_PERSIST, worker_channel_cb, w);
	event_add(w->channel_ev, NULL);
	w->sigterm_ev = evsignal_new(w->base, SIGTERM, worker_signal_cb, w);
	w->sigint_ev = evsignal_new(w->base, SIGINT, worker_signal_cb, w);
	event_add(w->sigterm_ev, NULL);
	event_add(w->sigint_ev, NULL);
	w->status_ev = event_new(w->base, -1, EV_PERSIST, worker_status_cb, w);
	struct timeval second = {1, 0};
	event_add(w->status_ev, &second);

	char pid[24];
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	struct ipc_field f = {"pid", pid};
	if (ipc_send(channel_fd, IPC_READY, -1, &f, 1, 5000) < 0) {
		log_error("cannot reach the master: %s", strerror(errno));
		exit(1);
	}
	event_base_dispatch(w->base);
	exit(0);
}

struct event_base *worker_event_base(struct worker *w)
{
	return w->base;
}

const char *worker_service(struct worker *w)
{
	return w->ops->name;
}

const char *worker_datadir(struct worker *w)
{
	return w->datadir;
}

const char *worker_setting(struct worker *w, const char *key)
{
	return w->settings == NULL ? NULL : ipc_msg_get(w->settings, key);
}

long long worker_setting_int(struct worker *w, const char *key, long long def)
{
	const char *v = worker_setting(w, key);
	if (v == NULL || *v == '\0')
		return def;
	if (strcmp(v, "unlimited") == 0)
		return 0;
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0')
		return def;
	return n;
}

bool worker_setting_bool(struct worker *w, const char *key, bool def)
{
	const char *v = worker_setting(w, key);
	if (v == NULL)
		return def;
	if (strcmp(v, "true") == 0)
		return true;
	if (strcmp(v, "false") == 0)
		return false;
	return def;
}

char *worker_setting_path(struct worker *w, const char *key, const char *def)
{
	const char *v = worker_setting(w, key);
	if (v == NULL || *v == '\0')
		v = def;
	if (v[0] == '/')
		return xstrdup(v);
	return xasprintf("%s/%s", w->datadir, v);
}

int worker_authd_send(struct worker *w, int type, const void *fields, unsigned nfields)
{
	if (w->authd < 0)
		return -1;
	return ipc_send(w->authd, (enum ipc_type)type, -1, fields, nfields, 1000);
}

int worker_master_send(struct worker *w, int type, const void *fields, unsigned nfields)
{
	return ipc_send(w->channel, (enum ipc_type)type, -1, fields, nfields, 1000);
}

void worker_set_context(struct worker *w, void *ctx)
{
	w->ctx = ctx;
}

void *worker_context(struct worker *w)
{
	return w->ctx;
}

void worker_shutdown_done(struct worker *w)
{
	(void)w;
	log_info("stopped");
	exit(0);
}
