#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/net_addr.h"

struct event;
struct event_base;
struct worker_service_ops;
struct master;

/* What the master knows of a service at build time. */
struct service_def {
	const char *name;
	const char *description;
	/* the worker's protocol code; NULL while the service's protocol is not
	 * part of this build (it is then listed but cannot be started) */
	const struct worker_service_ops *ops;
	/* system user the service's workers run as when posternd starts as root */
	const char *role_user;
};

/* The services of this build, in display order, ending with a NULL name. */
extern const struct service_def service_defs[];
const struct service_def *service_def_find(const char *name);

enum service_state {
	SERVICE_STOPPED,
	SERVICE_STARTING,
	SERVICE_RUNNING,
	SERVICE_STOPPING,
	SERVICE_FAILED,
};

struct master_listener {
	struct net_addr addr;
	char text[128];
	bool implicit_tls;
	int fd;
};

struct master_worker {
	struct master_service *service;
	unsigned slot;
	pid_t pid;	      /* 0 when not running */
	int channel;	      /* -1 when not running */
	struct event *channel_ev;
	struct event *respawn_ev;
	long long started_ms;
	unsigned respawn_delay_ms;
	unsigned connections;
	bool ready;
};

struct master_setting {
	char *key;
	char *value;
};

/* A control request whose reply waits for services to reach a state. */
struct master_waiter;

struct master_service {
	struct master *master;
	const struct service_def *def;
	enum service_state state;
	char *last_error;
	long long started_ms;
	unsigned restarts;

	struct master_setting *settings;
	size_t nsettings;

	struct master_listener *listeners;
	size_t nlisteners;

	struct master_worker *workers;
	size_t nworkers;
	struct event *stop_timeout_ev;
};

struct master {
	struct event_base *base;
	char *datadir;
	char *exe;
	bool shutting_down;
	struct master_service *services;
	size_t nservices;
	/* authd: one process, restarted like a worker */
	struct master_worker authd;
	struct master_service authd_service;
	struct master_waiter *waiters;
	int control_fd;
	struct event *control_ev;
	int metrics_fd; /* the shared metrics region (lib/metrics.h), or -1 */
};

/* master_settings.c: read settings.db into every service's settings.
 * Returns 0, or -1 with *error_r (malloc'ed). *changed_r (may be NULL)
 * receives, per service index, whether anything changed. */
int master_settings_load(struct master *m, bool *changed_r, char **error_r);
const char *master_setting(const struct master_service *svc, const char *key);

/* master_service.c */
void master_services_init(struct master *m);
/* Start a stopped service: bind its listeners and spawn its workers.
 * Returns 0, or -1 with *error_r (malloc'ed). */
int master_service_start(struct master_service *svc, char **error_r);
/* Ask a service's workers to stop; the service reaches SERVICE_STOPPED
 * when the last one exited (or was killed after a grace period). */
void master_service_stop(struct master_service *svc);
/* Apply a settings change to a running service: send the new settings,
 * rebind listeners whose bindings changed, adjust the worker count.
 * Returns 0, or -1 with *error_r describing bindings that failed. */
int master_service_apply_settings(struct master_service *svc, char **error_r);
struct master_service *master_service_find(struct master *m, const char *name);
const char *master_service_state_name(enum service_state state);
/* SIGCHLD: reap children and restart what should be running. */
void master_reap_children(struct master *m);
/* Begin stopping everything; the loop exits when all have stopped. */
void master_shutdown(struct master *m);
bool master_all_stopped(const struct master *m);
int master_authd_start(struct master *m, char **error_r);
/* Tell every running worker to end user's sessions. Returns how many
 * workers were told. */
unsigned master_kick_user(struct master *m, const char *user);
/* Release everything the master holds (at exit). */
void master_free(struct master *m);

/* master_control.c: the control socket DATADIR/control.sock. */
int master_control_open(struct master *m, char **error_r);
void master_control_close(struct master *m);
/* Called when a service changed state, so waiting requests can answer. */
void master_control_service_changed(struct master *m);

#endif
