#include "master/master.h"

#include <errno.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/proc.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

/* The control socket speaks one request line per connection:
 *   status [SERVICE...] | start SERVICE... | stop SERVICE... |
 *   restart SERVICE... | reload | shutdown | metrics
 * and answers with zero or more lines, the last one "ok" or "error TEXT",
 * then closes. Only root and the user running posternd may connect. */

#define CONTROL_MAX_LINE 4096
#define CONTROL_MAX_ARGS 16
#define CONTROL_WAIT_SECONDS 30

enum waiter_action { WAIT_STOPPED_REPLY, WAIT_STOPPED_START };

struct master_waiter {
	struct master_waiter *next;
	struct master *m;
	struct bufferevent *bev;
	enum waiter_action action;
	struct master_service *services[CONTROL_MAX_ARGS];
	size_t nservices;
	long long deadline_ms;
	struct event *timeout_ev;
};

static void control_finish(struct bufferevent *bev);
static void control_event_cb(struct bufferevent *bev, short what, void *arg);

static void control_reply_line(struct bufferevent *bev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void control_reply_line(struct bufferevent *bev, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char line[2048];
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one reply item per line, whatever an error text held */
	for (char *p = line; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	bufferevent_write(bev, line, strlen(line));
	bufferevent_write(bev, "\n", 1);
}

static void control_write_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

/* flush, then close */
static void control_finish(struct bufferevent *bev)
{
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, control_write_cb, control_event_cb, NULL);
	bufferevent_enable(bev, EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void control_status_line(struct bufferevent *bev, struct master_service *svc)
{
	char pids[512] = "";
	char listeners[1024] = "";
	unsigned connections = 0;
	size_t pos = 0;
	for (size_t i = 0; i < svc->nworkers; i++) {
		if (svc->workers[i].pid <= 0)
			continue;
		connections += svc->workers[i].connections;
		int n = snprintf(pids + pos, sizeof(pids) - pos, "%s%ld", pos ? "," : "",
				 (long)svc->workers[i].pid);
		if (n > 0 && (size_t)n < sizeof(pids) - pos)
			pos += (size_t)n;
	}
	pos = 0;
	for (size_t i = 0; i < svc->nlisteners && svc->state != SERVICE_STOPPED; i++) {
		int n = snprintf(listeners + pos, sizeof(listeners) - pos, "%s%s%s",
				 pos ? "," : "", svc->listeners[i].text,
				 svc->listeners[i].implicit_tls ? "/ssl" : "");
		if (n > 0 && (size_t)n < sizeof(listeners) - pos)
			pos += (size_t)n;
	}
	const char *startup = master_setting(svc, "startup");
	long long uptime = svc->state == SERVICE_RUNNING
				   ? (proc_now_ms() - svc->started_ms) / 1000
				   : 0;
	control_reply_line(bev,
			   "service=%s\tstate=%s\tstartup=%s\tavailable=%s\tpids=%s\tuptime=%lld\t"
			   "restarts=%u\tconnections=%u\tlisteners=%s\terror=%s",
			   svc->def->name,
			   master_service_state_name(svc->state),
			   startup != NULL ? startup : "?", svc->def->ops != NULL ? "yes" : "no",
			   pids, uptime, svc->restarts, connections, listeners,
			   svc->last_error != NULL ? svc->last_error : "");
}

static void waiter_free(struct master_waiter *w)
{
	struct master_waiter **pp = &w->m->waiters;
	while (*pp != NULL && *pp != w)
		pp = &(*pp)->next;
	if (*pp == w)
		*pp = w->next;
	if (w->timeout_ev != NULL)
		event_free(w->timeout_ev);
	free(w);
}

static bool waiter_done(const struct master_waiter *w)
{
	for (size_t i = 0; i < w->nservices; i++) {
		enum service_state s = w->services[i]->state;
		if (s != SERVICE_STOPPED && s != SERVICE_FAILED)
			return false;
	}
	return true;
}

static void waiter_complete(struct master_waiter *w)
{
	bool failed = false;
	if (w->action == WAIT_STOPPED_START && !w->m->shutting_down) {
		for (size_t i = 0; i < w->nservices; i++) {
			char *error = NULL;
			if (master_service_start(w->services[i], &error) < 0) {
				control_reply_line(w->bev, "error %s", error);
				free(error);
				failed = true;
				break;
			}
		}
	}
	if (!failed)
		control_reply_line(w->bev, "ok");
	control_finish(w->bev);
	waiter_free(w);
}

static void waiter_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct master_waiter *w = arg;
	control_reply_line(w->bev, "error timed out waiting for the service to stop");
	control_finish(w->bev);
	waiter_free(w);
}

void master_control_service_changed(struct master *m)
{
	struct master_waiter *w = m->waiters;
	while (w != NULL) {
		struct master_waiter *next = w->next;
		if (waiter_done(w))
			waiter_complete(w);
		w = next;
	}
}

static int control_lookup_services(struct master *m, struct bufferevent *bev, char **args,
				   size_t nargs, struct master_service **out)
{
	for (size_t i = 0; i < nargs; i++) {
		out[i] = master_service_find(m, args[i]);
		if (out[i] == NULL) {
			control_reply_line(bev, "error unknown service '%s'", args[i]);
			return -1;
		}
	}
	return 0;
}

static void control_cmd_stop(struct master *m, struct bufferevent *bev, char **args,
			     size_t nargs, enum waiter_action action)
{
	struct master_waiter *w = xcalloc(1, sizeof(*w));
	w->m = m;
	w->bev = bev;
	w->action = action;
	if (nargs == 0 || control_lookup_services(m, bev, args, nargs, w->services) < 0) {
		if (nargs == 0)
			control_reply_line(bev, "error name a service");
		free(w);
		control_finish(bev);
		return;
	}
	w->nservices = nargs;
	for (size_t i = 0; i < nargs; i++)
		master_service_stop(w->services[i]);
	w->next = m->waiters;
	m->waiters = w;
	/* the connection now belongs to the waiter; input is ignored */
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	w->timeout_ev = event_new(m->base, -1, 0, waiter_timeout_cb, w);
	struct timeval tv = {CONTROL_WAIT_SECONDS, 0};
	event_add(w->timeout_ev, &tv);
	if (waiter_done(w))
		waiter_complete(w);
}

static void control_cmd_reload(struct master *m, struct bufferevent *bev)
{
	bool *changed = xcalloc(m->nservices, sizeof(*changed));
	char *error = NULL;
	if (master_settings_load(m, changed, &error) < 0) {
		control_reply_line(bev, "error cannot read settings: %s", error);
		free(error);
		free(changed);
		return;
	}
	bool failed = false;
	for (size_t i = 0; i < m->nservices; i++) {
		if (!changed[i])
			continue;
		struct master_service *svc = &m->services[i];
		if (master_service_apply_settings(svc, &error) < 0) {
			control_reply_line(bev, "warning %s", error);
			log_warn("%s", error);
			free(error);
			failed = true;
		} else if (svc->state == SERVICE_RUNNING) {
			control_reply_line(bev, "applied %s", svc->def->name);
		}
		log_info("%s: settings reloaded", svc->def->name);
	}
	free(changed);
	control_reply_line(bev, failed ? "error some bindings could not be served" : "ok");
}

/* The Prometheus text of the shared counters, then "ok". The queue's size
 * is counted now, so it is exact whether or not a queue scan ran. */
static void control_cmd_metrics(struct master *m, struct bufferevent *bev)
{
	char *dir = xasprintf("%s/" QUEUE_DIR_NAME, m->datadir);
	char **ids = NULL;
	size_t n = 0;
	char *error = NULL;
	if (queue_list(dir, &ids, &n, &error) == 0)
		metrics_queue_messages_set(n);
	queue_ids_free(&ids, n);
	free(error);
	free(dir);
	if (metrics_render_prometheus(bufferevent_get_output(bev)) < 0)
		control_reply_line(bev, "error out of memory");
	else
		control_reply_line(bev, "ok");
}

static void control_execute(struct master *m, struct bufferevent *bev, char *line)
{
	char *args[CONTROL_MAX_ARGS + 1];
	size_t nargs = 0;
	char *save = NULL;
	for (char *tok = strtok_r(line, " \t", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (nargs == CONTROL_MAX_ARGS + 1) {
			control_reply_line(bev, "error too many arguments");
			control_finish(bev);
			return;
		}
		args[nargs++] = tok;
	}
	if (nargs == 0) {
		control_reply_line(bev, "error empty request");
		control_finish(bev);
		return;
	}
	const char *cmd = args[0];
	char **rest = args + 1;
	size_t nrest = nargs - 1;
	struct master_service *svcs[CONTROL_MAX_ARGS];

	if (strcmp(cmd, "status") == 0) {
		if (control_lookup_services(m, bev, rest, nrest, svcs) == 0) {
			if (nrest == 0)
				for (size_t i = 0; i < m->nservices; i++)
					control_status_line(bev, &m->services[i]);
			for (size_t i = 0; i < nrest; i++)
				control_status_line(bev, svcs[i]);
			control_reply_line(bev, "ok");
		}
	} else if (strcmp(cmd, "start") == 0) {
		if (nrest == 0) {
			control_reply_line(bev, "error name a service");
		} else if (control_lookup_services(m, bev, rest, nrest, svcs) == 0) {
			bool ok = true;
			for (size_t i = 0; i < nrest && ok; i++) {
				char *error = NULL;
				if (master_service_start(svcs[i], &error) < 0) {
					control_reply_line(bev, "error %s", error);
					free(error);
					ok = false;
				} else if (svcs[i]->last_error != NULL) {
					control_reply_line(bev, "warning %s", svcs[i]->last_error);
				}
			}
			if (ok)
				control_reply_line(bev, "ok");
		}
	} else if (strcmp(cmd, "stop") == 0) {
		control_cmd_stop(m, bev, rest, nrest, WAIT_STOPPED_REPLY);
		return;
	} else if (strcmp(cmd, "restart") == 0) {
		control_cmd_stop(m, bev, rest, nrest, WAIT_STOPPED_START);
		return;
	} else if (strcmp(cmd, "kick") == 0) {
		if (nrest != 1) {
			control_reply_line(bev, "error usage: kick USER");
		} else {
			unsigned told = master_kick_user(m, rest[0]);
			log_info("ending the sessions of %s (%u worker(s) told)", rest[0], told);
			control_reply_line(bev, "ok");
		}
	} else if (strcmp(cmd, "reload") == 0) {
		control_cmd_reload(m, bev);
	} else if (strcmp(cmd, "metrics") == 0) {
		control_cmd_metrics(m, bev);
	} else if (strcmp(cmd, "shutdown") == 0) {
		control_reply_line(bev, "ok");
		control_finish(bev);
		master_shutdown(m);
		return;
	} else {
		control_reply_line(bev, "error unknown request '%s'", cmd);
	}
	control_finish(bev);
}

/* ---- requests from workers (the admin centre) ----
 *
 * A worker's request runs through control_execute() exactly as a line on
 * the control socket does: the master talks to itself over a socket pair,
 * the control end handled by the code above, the other end collecting the
 * reply until the control end closes it. */

#define CONTROL_WORKER_MAX_REPLY (IPC_MAX_MESSAGE - 1024)

struct control_relay {
	struct master_service *svc;
	pid_t pid;
	char id[32];
	struct bufferevent *bev;
};

void master_control_worker_reply(struct master_service *svc, pid_t pid, const char *id,
				 const char *reply)
{
	struct master_worker *wk = master_worker_by_pid(svc, pid);
	if (wk == NULL)
		return;
	struct ipc_field f[2] = {{"id", id}, {"reply", reply}};
	if (ipc_send(wk->channel, IPC_CONTROL_REPLY, -1, f, 2, 1000) < 0)
		log_warn("%s worker %ld: cannot send a control reply: %s", svc->def->name,
			 (long)pid, strerror(errno));
}

static void control_relay_done(struct control_relay *r)
{
	struct evbuffer *in = bufferevent_get_input(r->bev);
	size_t len = evbuffer_get_length(in);
	if (len > CONTROL_WORKER_MAX_REPLY)
		len = CONTROL_WORKER_MAX_REPLY;
	char *text = xmalloc(len + 1);
	evbuffer_remove(in, text, len);
	text[len] = '\0';
	master_control_worker_reply(r->svc, r->pid, r->id, text);
	free(text);
	bufferevent_free(r->bev);
	free(r);
}

static void control_relay_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct control_relay *r = arg;
	/* a reply larger than a message is cut; the control end still closes */
	struct evbuffer *in = bufferevent_get_input(r->bev);
	if (evbuffer_get_length(in) > CONTROL_WORKER_MAX_REPLY)
		evbuffer_drain(in, evbuffer_get_length(in) - CONTROL_WORKER_MAX_REPLY);
}

static void control_relay_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	control_relay_done(arg);
}

void master_control_worker_request(struct master *m, struct master_service *svc, pid_t pid,
				   const char *id, const char *command)
{
	static const char *const allowed[] = {"status", "start", "stop", "restart", "kick", "reload"};
	size_t word = strcspn(command, " \t");
	bool ok = false;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		ok = ok || (strlen(allowed[i]) == word && strncmp(command, allowed[i], word) == 0);
	if (!ok || strlen(command) > CONTROL_MAX_LINE || strchr(command, '\n') != NULL) {
		master_control_worker_reply(svc, pid, id, "error request not allowed from a worker\n");
		return;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		char *reply = xasprintf("error socketpair: %s\n", strerror(errno));
		master_control_worker_reply(svc, pid, id, reply);
		free(reply);
		return;
	}
	struct control_relay *r = xcalloc(1, sizeof(*r));
	r->svc = svc;
	r->pid = pid;
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->bev = bufferevent_socket_new(m->base, sv[1], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(r->bev, control_relay_read_cb, NULL, control_relay_event_cb, r);
	bufferevent_enable(r->bev, EV_READ);

	struct bufferevent *bev = bufferevent_socket_new(m->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, NULL, NULL, control_event_cb, m);
	char *line = xstrdup(command);
	log_info("control request from the %s service: %s", svc->def->name, line);
	control_execute(m, bev, line);
	free(line);
}

static void control_read_cb(struct bufferevent *bev, void *arg)
{
	struct master *m = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > CONTROL_MAX_LINE) {
			control_reply_line(bev, "error request too long");
			control_finish(bev);
		}
		return;
	}
	bufferevent_disable(bev, EV_READ);
	control_execute(m, bev, line);
	free(line);
}

static void control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void control_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct master *m = arg;
	int client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (client < 0)
		return;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(client, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		log_warn("control socket: refused a client with uid %ld", (long)cred.uid);
		close(client);
		return;
	}
	struct bufferevent *bev = bufferevent_socket_new(m->base, client, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, control_read_cb, NULL, control_event_cb, m);
	struct timeval tv = {10, 0};
	bufferevent_set_timeouts(bev, &tv, NULL);
	bufferevent_enable(bev, EV_READ);
}

int master_control_open(struct master *m, char **error_r)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/control.sock", m->datadir);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		*error_r = xasprintf("data dir path too long for a unix socket: %s", m->datadir);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	/* a master that still answers owns the instance */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(fd);
		*error_r = xasprintf("posternd is already running on %s", m->datadir);
		return -1;
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	unlink(sun.sun_path);
	mode_t old = umask(0077);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(fd, 16) < 0) {
		*error_r = xasprintf("control socket %s: %s", sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	chmod(sun.sun_path, 0600);
	m->control_fd = fd;
	m->control_ev = event_new(m->base, fd, EV_READ | EV_PERSIST, control_accept_cb, m);
	event_add(m->control_ev, NULL);
	return 0;
}

void master_control_close(struct master *m)
{
	if (m->control_ev != NULL)
		event_free(m->control_ev);
	m->control_ev = NULL;
	if (m->control_fd >= 0) {
		close(m->control_fd);
		char *path = xasprintf("%s/control.sock", m->datadir);
		unlink(path);
		free(path);
	}
	m->control_fd = -1;
	for (struct master_waiter *w = m->waiters; w != NULL;) {
		struct master_waiter *next = w->next;
		bufferevent_free(w->bev);
		waiter_free(w);
		w = next;
	}
}
