#include "master/master.h"

#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/proc.h"
#include "lib/xalloc.h"
#include "net/net.h"

/* first restart after a crash is quick; repeated crashes back off */
#define RESPAWN_FIRST_DELAY_MS 100
#define RESPAWN_MAX_DELAY_MS 30000
/* a worker that lived this long is considered healthy again */
#define RESPAWN_STABLE_MS 30000
/* grace period for sessions to say goodbye on stop */
#define STOP_GRACE_SECONDS 10
#define LISTEN_BACKLOG 511

static const struct service_def authd_def = {"authd", "authentication and directory", NULL,
					     "postern-auth", false};

const char *master_service_state_name(enum service_state state)
{
	switch (state) {
	case SERVICE_STOPPED:
		return "stopped";
	case SERVICE_STARTING:
		return "starting";
	case SERVICE_RUNNING:
		return "running";
	case SERVICE_STOPPING:
		return "stopping";
	case SERVICE_FAILED:
		return "failed";
	}
	return "?";
}

struct master_service *master_service_find(struct master *m, const char *name)
{
	for (size_t i = 0; i < m->nservices; i++)
		if (strcmp(m->services[i].def->name, name) == 0)
			return &m->services[i];
	return NULL;
}

static void master_service_set_error(struct master_service *svc, char *error)
{
	free(svc->last_error);
	svc->last_error = error;
}

void master_services_init(struct master *m)
{
	size_t n = 0;
	while (service_defs[n].name != NULL)
		n++;
	m->services = xcalloc(n, sizeof(*m->services));
	m->nservices = n;
	for (size_t i = 0; i < n; i++) {
		m->services[i].master = m;
		m->services[i].def = &service_defs[i];
		m->services[i].state = SERVICE_STOPPED;
	}
	m->authd_service.master = m;
	m->authd_service.def = &authd_def;
	m->authd.service = &m->authd_service;
	m->authd.channel = -1;
}

/* ---- listeners ---- */

static void master_listeners_close(struct master_listener *ls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (ls[i].fd >= 0)
			close(ls[i].fd);
		if (ls[i].addr.ss.ss_family == AF_UNIX && ls[i].fd >= 0)
			unlink(((struct sockaddr_un *)&ls[i].addr.ss)->sun_path);
	}
}

/* every binding the settings ask for, in order: SSL first, then plain/TLS */
static int master_wanted_bindings(struct master_service *svc, struct master_listener **ls_r,
				  size_t *n_r, char **error_r)
{
	static const struct {
		const char *key;
		bool tls;
	} keys[] = {{"ssl-bindings", true}, {"unencrypted-or-tls-bindings", false}};
	struct master_listener *ls = NULL;
	size_t n = 0;
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		const char *value = master_setting(svc, keys[k].key);
		if (value == NULL)
			continue;
		struct net_addr *addrs;
		size_t count;
		char *error;
		if (net_addr_parse_list(value, &addrs, &count, &error) < 0) {
			*error_r = xasprintf("%s: %s", keys[k].key, error);
			free(error);
			free(ls);
			return -1;
		}
		ls = xrealloc(ls, (n + count) * sizeof(*ls));
		for (size_t i = 0; i < count; i++) {
			struct master_listener *l = &ls[n++];
			l->addr = addrs[i];
			l->implicit_tls = keys[k].tls;
			l->fd = -1;
			net_addr_format(&l->addr, l->text, sizeof(l->text));
		}
		free(addrs);
	}
	/* lmtp's socket in the data dir */
	const char *unix_socket = master_setting(svc, "unix-socket");
	if (unix_socket != NULL && *unix_socket != '\0') {
		char *text = unix_socket[0] == '/'
				     ? xasprintf("unix:%s", unix_socket)
				     : xasprintf("unix:%s/%s", svc->master->datadir, unix_socket);
		const char *error;
		struct net_addr addr;
		if (net_addr_parse(text, &addr, &error) < 0) {
			*error_r = xasprintf("unix-socket: %s", error);
			free(text);
			free(ls);
			return -1;
		}
		free(text);
		ls = xrealloc(ls, (n + 1) * sizeof(*ls));
		ls[n].addr = addr;
		ls[n].implicit_tls = false;
		ls[n].fd = -1;
		net_addr_format(&addr, ls[n].text, sizeof(ls[n].text));
		n++;
	}
	*ls_r = ls;
	*n_r = n;
	return 0;
}

/* Who may connect to a unix socket listener: unix-socket-mode and
 * unix-socket-group (applied on every rebind, so changes take effect on
 * the socket that stays). */
static int master_unix_socket_access(struct master_service *svc, const struct master_listener *l,
				     char **error_r)
{
	const char *path = ((const struct sockaddr_un *)&l->addr.ss)->sun_path;
	const char *mode_text = master_setting(svc, "unix-socket-mode");
	const char *group = master_setting(svc, "unix-socket-group");
	mode_t mode = mode_text != NULL ? (mode_t)strtol(mode_text, NULL, 8) : 0600;
	if (group != NULL && *group != '\0' && strcmp(group, "-") != 0) {
		struct group *gr = getgrnam(group);
		/* the default group exists where posternd runs as root (the role
		 * users are created then); an ordinary user keeps their own */
		if (gr == NULL && geteuid() != 0 && strcmp(group, "postern-front") == 0)
			gr = getgrgid(getegid());
		if (gr == NULL) {
			*error_r = xasprintf("%s: unix-socket-group: no group '%s'", l->text, group);
			return -1;
		}
		if (chown(path, (uid_t)-1, gr->gr_gid) < 0) {
			*error_r = xasprintf("%s: cannot give it to group %s: %s", l->text, group,
					     strerror(errno));
			return -1;
		}
	}
	if (chmod(path, mode) < 0) {
		*error_r = xasprintf("%s: chmod: %s", l->text, strerror(errno));
		return -1;
	}
	return 0;
}

/* Bind what the settings ask for, keeping sockets that stay the same.
 * Bindings that fail are left out and described in *error_r; the service
 * serves on the others. Returns the number of bound listeners. */
static size_t master_rebind(struct master_service *svc, char **error_r)
{
	struct master_listener *want;
	size_t nwant;
	*error_r = NULL;
	if (master_wanted_bindings(svc, &want, &nwant, error_r) < 0)
		return svc->nlisteners;

	char *errors = NULL;
	for (size_t i = 0; i < nwant; i++) {
		for (size_t j = 0; j < svc->nlisteners; j++) {
			struct master_listener *old = &svc->listeners[j];
			if (old->fd >= 0 && old->implicit_tls == want[i].implicit_tls &&
			    net_addr_equal(&old->addr, &want[i].addr)) {
				want[i].fd = old->fd;
				old->fd = -1;
				break;
			}
		}
		if (want[i].fd >= 0)
			continue;
		char *error = NULL;
		want[i].fd = net_listen(&want[i].addr, LISTEN_BACKLOG, &error);
		if (want[i].fd < 0) {
			char *joined = xasprintf("%s%scannot bind %s: %s", errors ? errors : "",
						 errors ? "; " : "", want[i].text, error);
			free(errors);
			free(error);
			errors = joined;
		}
	}
	master_listeners_close(svc->listeners, svc->nlisteners);
	free(svc->listeners);
	size_t kept = 0;
	for (size_t i = 0; i < nwant; i++)
		if (want[i].fd >= 0)
			want[kept++] = want[i];
	svc->listeners = want;
	svc->nlisteners = kept;
	for (size_t i = 0; i < kept; i++) {
		char *error = NULL;
		if (want[i].addr.ss.ss_family == AF_UNIX &&
		    master_unix_socket_access(svc, &want[i], &error) < 0) {
			char *joined = xasprintf("%s%s%s", errors ? errors : "", errors ? "; " : "",
						 error);
			free(errors);
			free(error);
			errors = joined;
		}
	}
	if (errors != NULL) {
		*error_r = xasprintf("%s: %s", svc->def->name, errors);
		free(errors);
	}
	return kept;
}

/* ---- talking to workers ---- */

static int master_worker_send_settings(struct master_worker *wk)
{
	struct master_service *svc = wk->service;
	struct ipc_field *fields = xcalloc(svc->nsettings, sizeof(*fields));
	for (size_t i = 0; i < svc->nsettings; i++) {
		fields[i].key = svc->settings[i].key;
		fields[i].value = svc->settings[i].value;
	}
	int r = ipc_send(wk->channel, IPC_SETTINGS, -1, fields, svc->nsettings, 2000);
	free(fields);
	return r;
}

static int master_worker_send_listeners(struct master_worker *wk)
{
	struct master_service *svc = wk->service;
	if (ipc_send(wk->channel, IPC_LISTENERS_RESET, -1, NULL, 0, 2000) < 0)
		return -1;
	for (size_t i = 0; i < svc->nlisteners; i++) {
		struct ipc_field f[2] = {{"addr", svc->listeners[i].text},
					 {"tls", svc->listeners[i].implicit_tls ? "yes" : "no"}};
		if (ipc_send(wk->channel, IPC_LISTENER, svc->listeners[i].fd, f, 2, 2000) < 0)
			return -1;
	}
	return 0;
}

/* a fresh channel between authd and one worker */
static int master_worker_connect_authd(struct master_worker *wk)
{
	struct master *m = wk->service->master;
	if (m->authd.channel < 0 || wk->channel < 0)
		return -1;
	int pair[2];
	if (ipc_pair(pair) < 0)
		return -1;
	struct ipc_field f = {"service", wk->service->def->name};
	int r = ipc_send(m->authd.channel, IPC_AUTHD_CLIENT, pair[0], &f, 1, 2000);
	if (r == 0)
		r = ipc_send(wk->channel, IPC_AUTHD_CHANNEL, pair[1], NULL, 0, 2000);
	close(pair[0]);
	close(pair[1]);
	return r;
}

static void master_worker_close_channel(struct master_worker *wk)
{
	if (wk->channel_ev != NULL) {
		event_free(wk->channel_ev);
		wk->channel_ev = NULL;
	}
	if (wk->channel >= 0) {
		close(wk->channel);
		wk->channel = -1;
	}
}

/* A worker's request, run from the loop after the channel callback: it may
 * restart or resize the very service that asked (moving its worker slots),
 * so it names the worker by service and pid, never by slot pointer. */
struct master_worker_request {
	struct master_service *svc;
	pid_t pid;
	enum ipc_type type;
	size_t n;
	char *keys[IPC_MAX_FIELDS];
	char *values[IPC_MAX_FIELDS];
};

static const char *master_worker_request_get(const struct master_worker_request *r, const char *key)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->keys[i], key) == 0)
			return r->values[i];
	return NULL;
}

static void master_worker_request_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct master_worker_request *r = arg;
	struct master *m = r->svc->master;
	const char *id = master_worker_request_get(r, "id");
	if (master_worker_by_pid(r->svc, r->pid) != NULL && !m->shutting_down) {
		if (r->type == IPC_CONTROL_REQUEST) {
			master_control_worker_request(m, r->svc, r->pid, id,
						      master_worker_request_get(r, "command"));
		} else {
			const char *keys[IPC_MAX_FIELDS], *values[IPC_MAX_FIELDS];
			size_t n = 0;
			for (size_t i = 0; i < r->n; i++) {
				if (strcmp(r->keys[i], "id") == 0 || strcmp(r->keys[i], "service") == 0)
					continue;
				keys[n] = r->keys[i];
				values[n++] = r->values[i];
			}
			master_settings_change(m, r->svc, r->pid, id,
					       master_worker_request_get(r, "service"), n, keys, values);
		}
	}
	for (size_t i = 0; i < r->n; i++) {
		free(r->keys[i]);
		free(r->values[i]);
	}
	free(r);
}

static void master_worker_request_defer(struct master_worker *wk, const struct ipc_msg *msg)
{
	struct master_worker_request *r = xcalloc(1, sizeof(*r));
	r->svc = wk->service;
	r->pid = wk->pid;
	r->type = msg->type;
	for (size_t i = 0; i < msg->nfields; i++) {
		r->keys[r->n] = xstrdup(msg->fields[i].key);
		r->values[r->n++] = xstrdup(msg->fields[i].value);
	}
	struct timeval now = {0, 0};
	if (event_base_once(wk->service->master->base, -1, EV_TIMEOUT, master_worker_request_cb, r,
			    &now) < 0)
		master_worker_request_cb(-1, 0, r);
}

static void master_worker_channel_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct master_worker *wk = arg;
	static struct ipc_msg msg;
	for (int i = 0; i < 32; i++) {
		const char *error;
		int r = ipc_recv(wk->channel, &msg, &error);
		if (r == 0)
			return;
		if (r < 0) {
			/* the process is exiting or misbehaving; SIGCHLD does the rest */
			master_worker_close_channel(wk);
			if (wk->pid > 0 && strcmp(error, "channel closed") != 0) {
				log_error("%s worker %ld sent a bad message (%s); killing it",
					  wk->service->def->name, (long)wk->pid, error);
				kill(wk->pid, SIGKILL);
			}
			return;
		}
		if (msg.fd >= 0)
			close(msg.fd);
		switch (msg.type) {
		case IPC_READY:
			wk->ready = true;
			break;
		case IPC_STATUS: {
			const char *c = ipc_msg_get(&msg, "connections");
			wk->connections = c != NULL ? (unsigned)strtoul(c, NULL, 10) : 0;
			break;
		}
		case IPC_CONTROL_REQUEST:
		case IPC_SETTINGS_CHANGE:
			if (!wk->service->def->observes_services || ipc_msg_get(&msg, "id") == NULL ||
			    (msg.type == IPC_CONTROL_REQUEST && ipc_msg_get(&msg, "command") == NULL))
				goto unexpected;
			master_worker_request_defer(wk, &msg);
			break;
		default:
		unexpected:
			log_error("%s worker %ld sent unexpected message %d; killing it",
				  wk->service->def->name, (long)wk->pid, (int)msg.type);
			kill(wk->pid, SIGKILL);
			master_worker_close_channel(wk);
			return;
		}
	}
}

static int master_worker_spawn(struct master_worker *wk, char **error_r)
{
	struct master_service *svc = wk->service;
	struct master *m = svc->master;
	bool is_authd = wk == &m->authd;
	int pair[2];
	if (ipc_pair(pair) < 0) {
		*error_r = xasprintf("socketpair: %s", strerror(errno));
		return -1;
	}
	char *argv[8];
	size_t argc = 0;
	argv[argc++] = m->exe;
	if (is_authd) {
		argv[argc++] = (char *)"--authd";
	} else {
		argv[argc++] = (char *)"--worker";
		argv[argc++] = (char *)svc->def->name;
	}
	argv[argc++] = (char *)"-d";
	argv[argc++] = m->datadir;
	argv[argc] = NULL;

	pid_t pid = proc_spawn(argv, pair[1], error_r);
	close(pair[1]);
	if (pid < 0) {
		close(pair[0]);
		return -1;
	}
	wk->pid = pid;
	wk->channel = pair[0];
	wk->started_ms = proc_now_ms();
	wk->ready = false;
	wk->connections = 0;
	evutil_make_socket_nonblocking(wk->channel);
	wk->channel_ev = event_new(m->base, wk->channel, EV_READ | EV_PERSIST,
				   master_worker_channel_cb, wk);
	event_add(wk->channel_ev, NULL);
	/* first of all: where to count (before any connection can arrive) */
	char slot[16];
	snprintf(slot, sizeof(slot), "%u", wk->slot);
	struct ipc_field mf = {"slot", slot};
	if (m->metrics_fd >= 0 && ipc_send(wk->channel, IPC_METRICS, m->metrics_fd, &mf, 1, 2000) < 0)
		log_warn("%s: cannot hand the metrics region to pid %ld", svc->def->name, (long)pid);

	if (is_authd)
		return 0;
	if (master_worker_send_settings(wk) < 0 || master_worker_send_listeners(wk) < 0) {
		*error_r = xasprintf("cannot hand settings to worker %ld: %s", (long)pid,
				     strerror(errno));
		kill(pid, SIGKILL);
		return -1;
	}
	if (master_worker_connect_authd(wk) < 0)
		log_warn("%s worker %ld has no authd channel yet", svc->def->name, (long)pid);
	if (svc->def->observes_services)
		master_service_info_send(m, wk);
	return 0;
}

static void master_service_info_send_one(struct master *m, struct master_worker *wk)
{
	struct ipc_field fields[IPC_MAX_FIELDS];
	for (size_t i = 0; i < m->nservices; i++) {
		struct master_service *svc = &m->services[i];
		size_t n = 0;
		fields[n++] = (struct ipc_field){"service", svc->def->name};
		fields[n++] = (struct ipc_field){"state", master_service_state_name(svc->state)};
		for (size_t j = 0; j < svc->nsettings && n < IPC_MAX_FIELDS; j++)
			fields[n++] = (struct ipc_field){svc->settings[j].key, svc->settings[j].value};
		if (ipc_send(wk->channel, IPC_SERVICE_INFO, -1, fields, n, 1000) < 0) {
			log_warn("%s worker %ld: cannot send service states: %s",
				 wk->service->def->name, (long)wk->pid, strerror(errno));
			return;
		}
	}
}

void master_service_info_send(struct master *m, struct master_worker *wk)
{
	if (wk != NULL) {
		master_service_info_send_one(m, wk);
		return;
	}
	for (size_t i = 0; i < m->nservices; i++) {
		struct master_service *svc = &m->services[i];
		if (!svc->def->observes_services)
			continue;
		for (size_t j = 0; j < svc->nworkers; j++)
			if (svc->workers[j].pid > 0 && svc->workers[j].channel >= 0)
				master_service_info_send_one(m, &svc->workers[j]);
	}
}

struct master_worker *master_worker_by_pid(struct master_service *svc, pid_t pid)
{
	for (size_t i = 0; i < svc->nworkers; i++)
		if (svc->workers[i].pid == pid && svc->workers[i].channel >= 0)
			return &svc->workers[i];
	return NULL;
}

static void master_worker_respawn_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct master_worker *wk = arg;
	struct master_service *svc = wk->service;
	struct master *m = svc->master;
	bool is_authd = wk == &m->authd;
	if (m->shutting_down || (!is_authd && svc->state != SERVICE_RUNNING))
		return;
	char *error = NULL;
	if (master_worker_spawn(wk, &error) < 0) {
		log_error("%s: cannot restart a worker: %s", svc->def->name, error);
		free(error);
		struct timeval tv = {RESPAWN_MAX_DELAY_MS / 1000, 0};
		event_add(wk->respawn_ev, &tv);
		return;
	}
	log_info("%s: worker restarted as pid %ld", svc->def->name, (long)wk->pid);
	if (is_authd) {
		/* every worker's old authd channel died with authd */
		for (size_t i = 0; i < m->nservices; i++)
			for (size_t j = 0; j < m->services[i].nworkers; j++)
				master_worker_connect_authd(&m->services[i].workers[j]);
	}
}

static void master_worker_schedule_respawn(struct master_worker *wk)
{
	struct master *m = wk->service->master;
	long long lived = proc_now_ms() - wk->started_ms;
	if (lived >= RESPAWN_STABLE_MS || wk->respawn_delay_ms == 0)
		wk->respawn_delay_ms = RESPAWN_FIRST_DELAY_MS;
	else if (wk->respawn_delay_ms < RESPAWN_MAX_DELAY_MS)
		wk->respawn_delay_ms = wk->respawn_delay_ms * 2 > RESPAWN_MAX_DELAY_MS
					       ? RESPAWN_MAX_DELAY_MS
					       : wk->respawn_delay_ms * 2;
	if (wk->respawn_ev == NULL)
		wk->respawn_ev = event_new(m->base, -1, 0, master_worker_respawn_cb, wk);
	struct timeval tv = {wk->respawn_delay_ms / 1000, (wk->respawn_delay_ms % 1000) * 1000};
	event_add(wk->respawn_ev, &tv);
	log_info("%s: restarting the worker in %u ms", wk->service->def->name,
		 wk->respawn_delay_ms);
}

static void master_worker_cancel_respawn(struct master_worker *wk)
{
	if (wk->respawn_ev != NULL)
		event_del(wk->respawn_ev);
}

/* ---- service lifecycle ---- */

static void master_service_resize(struct master_service *svc, size_t n)
{
	if (n <= svc->nworkers)
		return;
	/* worker slots are referenced by events: never move them, grow a new
	 * array only while none is in use */
	svc->workers = xrealloc(svc->workers, n * sizeof(*svc->workers));
	for (size_t i = svc->nworkers; i < n; i++) {
		memset(&svc->workers[i], 0, sizeof(svc->workers[i]));
		svc->workers[i].service = svc;
		svc->workers[i].slot = (unsigned)i;
		svc->workers[i].channel = -1;
	}
	svc->nworkers = n;
}

static size_t master_service_wanted_workers(struct master_service *svc)
{
	const char *v = master_setting(svc, "workers");
	long n = v != NULL ? strtol(v, NULL, 10) : 1;
	return n < 1 ? 1 : n > 64 ? 64 : (size_t)n;
}

static bool master_service_has_processes(const struct master_service *svc)
{
	for (size_t i = 0; i < svc->nworkers; i++)
		if (svc->workers[i].pid > 0)
			return true;
	return false;
}

int master_service_start(struct master_service *svc, char **error_r)
{
	if (svc->state == SERVICE_RUNNING || svc->state == SERVICE_STARTING)
		return 0;
	if (svc->state == SERVICE_STOPPING) {
		*error_r = xasprintf("%s is still stopping; try again in a moment", svc->def->name);
		return -1;
	}
	const char *startup = master_setting(svc, "startup");
	if (startup != NULL && strcmp(startup, "disabled") == 0) {
		*error_r = xasprintf("%s is disabled; set its startup type to manual or automatic "
				     "first (posternctl service set %s startup=manual)",
				     svc->def->name, svc->def->name);
		return -1;
	}
	if (svc->def->ops == NULL) {
		*error_r = xasprintf("%s: this build has no %s protocol yet", svc->def->name,
				     svc->def->name);
		return -1;
	}
	char *bind_error = NULL;
	size_t bound = master_rebind(svc, &bind_error);
	if (bound == 0) {
		*error_r = bind_error != NULL
				   ? bind_error
				   : xasprintf("%s has no bindings configured", svc->def->name);
		master_service_set_error(svc, xstrdup(*error_r));
		svc->state = SERVICE_FAILED;
		master_service_info_send(svc->master, NULL);
		return -1;
	}
	if (bind_error != NULL)
		log_warn("%s", bind_error);
	master_service_set_error(svc, bind_error);

	/* workers that are still exiting from an earlier run keep their slots */
	if (master_service_has_processes(svc)) {
		*error_r = xasprintf("%s still has processes exiting; try again", svc->def->name);
		return -1;
	}
	size_t want = master_service_wanted_workers(svc);
	free(svc->workers);
	svc->workers = NULL;
	svc->nworkers = 0;
	master_service_resize(svc, want);
	svc->state = SERVICE_RUNNING;
	svc->started_ms = proc_now_ms();
	svc->restarts = 0;
	for (size_t i = 0; i < svc->nworkers; i++) {
		char *error = NULL;
		if (master_worker_spawn(&svc->workers[i], &error) < 0) {
			log_error("%s: %s", svc->def->name, error);
			free(error);
			master_worker_schedule_respawn(&svc->workers[i]);
		}
	}
	for (size_t i = 0; i < svc->nlisteners; i++)
		log_info("%s: listening on %s%s", svc->def->name, svc->listeners[i].text,
			 svc->listeners[i].implicit_tls ? " (TLS)" : "");
	log_info("%s: started with %zu worker(s)", svc->def->name, svc->nworkers);
	master_service_info_send(svc->master, NULL);
	return 0;
}

static void master_service_stopped(struct master_service *svc)
{
	if (svc->stop_timeout_ev != NULL)
		event_del(svc->stop_timeout_ev);
	for (size_t i = 0; i < svc->nworkers; i++) {
		master_worker_cancel_respawn(&svc->workers[i]);
		if (svc->workers[i].respawn_ev != NULL) {
			event_free(svc->workers[i].respawn_ev);
			svc->workers[i].respawn_ev = NULL;
		}
	}
	svc->state = SERVICE_STOPPED;
	log_info("%s: stopped", svc->def->name);
	master_service_info_send(svc->master, NULL);
	master_control_service_changed(svc->master);
}

static void master_stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct master_service *svc = arg;
	for (size_t i = 0; i < svc->nworkers; i++) {
		if (svc->workers[i].pid > 0) {
			log_warn("%s: worker %ld did not stop in %d s; killing it", svc->def->name,
				 (long)svc->workers[i].pid, STOP_GRACE_SECONDS);
			kill(svc->workers[i].pid, SIGKILL);
		}
	}
}

void master_service_stop(struct master_service *svc)
{
	if (svc->state == SERVICE_STOPPED || svc->state == SERVICE_FAILED) {
		svc->state = SERVICE_STOPPED;
		master_listeners_close(svc->listeners, svc->nlisteners);
		svc->nlisteners = 0;
		return;
	}
	if (svc->state == SERVICE_STOPPING)
		return;
	svc->state = SERVICE_STOPPING;
	master_service_info_send(svc->master, NULL);
	/* free the ports now; workers close their copies as they leave */
	master_listeners_close(svc->listeners, svc->nlisteners);
	svc->nlisteners = 0;
	for (size_t i = 0; i < svc->nworkers; i++) {
		struct master_worker *wk = &svc->workers[i];
		master_worker_cancel_respawn(wk);
		if (wk->pid > 0 && wk->channel >= 0 &&
		    ipc_send(wk->channel, IPC_SHUTDOWN, -1, NULL, 0, 1000) < 0)
			kill(wk->pid, SIGTERM);
		else if (wk->pid > 0 && wk->channel < 0)
			kill(wk->pid, SIGTERM);
	}
	if (!master_service_has_processes(svc)) {
		master_service_stopped(svc);
		return;
	}
	if (svc->stop_timeout_ev == NULL)
		svc->stop_timeout_ev =
			event_new(svc->master->base, -1, 0, master_stop_timeout_cb, svc);
	struct timeval tv = {STOP_GRACE_SECONDS, 0};
	event_add(svc->stop_timeout_ev, &tv);
}

int master_service_apply_settings(struct master_service *svc, char **error_r)
{
	*error_r = NULL;
	if (svc->state != SERVICE_RUNNING)
		return 0;
	char *bind_error = NULL;
	master_rebind(svc, &bind_error);
	master_service_set_error(svc, bind_error != NULL ? xstrdup(bind_error) : NULL);

	size_t want = master_service_wanted_workers(svc);
	size_t have = svc->nworkers;
	if (want > have) {
		/* growing moves the slots: only safe because each worker's
		 * events are re-created below */
		for (size_t i = 0; i < have; i++) {
			struct master_worker *wk = &svc->workers[i];
			if (wk->channel_ev != NULL)
				event_free(wk->channel_ev);
			wk->channel_ev = NULL;
			if (wk->respawn_ev != NULL)
				event_free(wk->respawn_ev);
			wk->respawn_ev = NULL;
		}
		master_service_resize(svc, want);
		for (size_t i = 0; i < have; i++) {
			struct master_worker *wk = &svc->workers[i];
			if (wk->channel >= 0) {
				wk->channel_ev =
					event_new(svc->master->base, wk->channel, EV_READ | EV_PERSIST,
						  master_worker_channel_cb, wk);
				event_add(wk->channel_ev, NULL);
			} else if (wk->pid == 0) {
				master_worker_schedule_respawn(wk);
			}
		}
	}
	for (size_t i = 0; i < svc->nworkers; i++) {
		struct master_worker *wk = &svc->workers[i];
		if (i >= want) {
			/* retire: it leaves when its sessions are done */
			if (wk->pid > 0 && wk->channel >= 0)
				ipc_send(wk->channel, IPC_SHUTDOWN, -1, NULL, 0, 1000);
			master_worker_cancel_respawn(wk);
			continue;
		}
		if (wk->pid == 0) {
			/* a new slot, or one retired by an earlier shrink: start it
			 * unless a restart is already scheduled */
			if (wk->respawn_ev == NULL || !event_pending(wk->respawn_ev, EV_TIMEOUT, NULL)) {
				char *error = NULL;
				if (master_worker_spawn(wk, &error) < 0) {
					log_error("%s: %s", svc->def->name, error);
					free(error);
					master_worker_schedule_respawn(wk);
				}
			}
			continue;
		}
		if (wk->channel < 0)
			continue;
		if (master_worker_send_settings(wk) < 0 || master_worker_send_listeners(wk) < 0)
			log_error("%s: cannot update worker %ld: %s", svc->def->name, (long)wk->pid,
				  strerror(errno));
	}
	if (bind_error != NULL) {
		*error_r = bind_error;
		return -1;
	}
	return 0;
}

/* ---- children ---- */

static struct master_worker *master_find_worker(struct master *m, pid_t pid)
{
	if (m->authd.pid == pid)
		return &m->authd;
	for (size_t i = 0; i < m->nservices; i++)
		for (size_t j = 0; j < m->services[i].nworkers; j++)
			if (m->services[i].workers[j].pid == pid)
				return &m->services[i].workers[j];
	return NULL;
}

void master_reap_children(struct master *m)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct master_worker *wk = master_find_worker(m, pid);
		if (wk == NULL)
			continue;
		struct master_service *svc = wk->service;
		bool is_authd = wk == &m->authd;
		bool expected = m->shutting_down ||
				(!is_authd && (svc->state != SERVICE_RUNNING ||
					       wk->slot >= master_service_wanted_workers(svc)));
		if (WIFSIGNALED(status))
			log_msg(expected ? LOG_LEVEL_INFO : LOG_LEVEL_ERROR, NULL,
				"%s: worker %ld killed by signal %d", svc->def->name, (long)pid,
				WTERMSIG(status));
		else
			log_msg(expected || WEXITSTATUS(status) == 0 ? LOG_LEVEL_INFO : LOG_LEVEL_ERROR,
				NULL, "%s: worker %ld exited with status %d", svc->def->name,
				(long)pid, WEXITSTATUS(status));
		wk->pid = 0;
		wk->ready = false;
		wk->connections = 0;
		master_worker_close_channel(wk);
		metrics_process_exited(svc->def->name, wk->slot);
		if (!expected) {
			svc->restarts++;
			metrics_worker_restarted(svc->def->name);
			master_worker_schedule_respawn(wk);
		} else if (!is_authd && svc->state == SERVICE_STOPPING &&
			   !master_service_has_processes(svc)) {
			master_service_stopped(svc);
		}
	}
	if (m->shutting_down && master_all_stopped(m) && m->authd.pid > 0)
		kill(m->authd.pid, SIGTERM);
	if (m->shutting_down && master_all_stopped(m) && m->authd.pid == 0)
		event_base_loopexit(m->base, NULL);
}

int master_authd_start(struct master *m, char **error_r)
{
	return master_worker_spawn(&m->authd, error_r);
}

bool master_all_stopped(const struct master *m)
{
	for (size_t i = 0; i < m->nservices; i++)
		if (master_service_has_processes(&m->services[i]))
			return false;
	return true;
}

void master_shutdown(struct master *m)
{
	if (m->shutting_down)
		return;
	m->shutting_down = true;
	log_info("shutting down");
	for (size_t i = 0; i < m->nservices; i++)
		master_service_stop(&m->services[i]);
	master_worker_cancel_respawn(&m->authd);
	master_control_service_changed(m);
	if (master_all_stopped(m)) {
		if (m->authd.pid > 0)
			kill(m->authd.pid, SIGTERM);
		else
			event_base_loopexit(m->base, NULL);
	}
}

static void master_worker_release(struct master_worker *wk)
{
	master_worker_close_channel(wk);
	if (wk->respawn_ev != NULL)
		event_free(wk->respawn_ev);
	wk->respawn_ev = NULL;
}

void master_free(struct master *m)
{
	for (size_t i = 0; i < m->nservices; i++) {
		struct master_service *svc = &m->services[i];
		for (size_t j = 0; j < svc->nworkers; j++)
			master_worker_release(&svc->workers[j]);
		free(svc->workers);
		master_listeners_close(svc->listeners, svc->nlisteners);
		free(svc->listeners);
		for (size_t j = 0; j < svc->nsettings; j++) {
			free(svc->settings[j].key);
			free(svc->settings[j].value);
		}
		free(svc->settings);
		free(svc->last_error);
		if (svc->stop_timeout_ev != NULL)
			event_free(svc->stop_timeout_ev);
	}
	free(m->services);
	m->services = NULL;
	m->nservices = 0;
	master_worker_release(&m->authd);
	if (m->metrics_fd >= 0)
		close(m->metrics_fd);
	m->metrics_fd = -1;
	free(m->exe);
	free(m->datadir);
	m->exe = m->datadir = NULL;
	if (m->base != NULL)
		event_base_free(m->base);
	m->base = NULL;
}

unsigned master_kick_user(struct master *m, const char *user)
{
	unsigned told = 0;
	struct ipc_field f = {"user", user};
	for (size_t i = 0; i < m->nservices; i++) {
		struct master_service *svc = &m->services[i];
		for (size_t j = 0; j < svc->nworkers; j++) {
			struct master_worker *wk = &svc->workers[j];
			if (wk->pid > 0 && wk->channel >= 0 &&
			    ipc_send(wk->channel, IPC_KICK, -1, &f, 1, 1000) == 0)
				told++;
		}
	}
	return told;
}
