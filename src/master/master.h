#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/net_addr.h"

struct event;
struct event_base;
struct ipc_msg;
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
	/* the workers are told every service's state and settings
	 * (IPC_SERVICE_INFO) and may ask the master for control requests and
	 * settings changes (IPC_CONTROL_REQUEST, IPC_SETTINGS_CHANGE): the
	 * admin centre of the http service */
	bool observes_services;
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
/* Send every service's state and settings (IPC_SERVICE_INFO) to the
 * workers of the services that observe the others: to wk only, or to all
 * of them when wk is NULL. Called when a state or a setting changed. */
void master_service_info_send(struct master *m, struct master_worker *wk);
/* The running worker of svc with this pid, or NULL (it exited). */
struct master_worker *master_worker_by_pid(struct master_service *svc, pid_t pid);
/* Release everything the master holds (at exit). */
void master_free(struct master *m);

/* master_control.c: the control socket DATADIR/control.sock. */
int master_control_open(struct master *m, char **error_r);
void master_control_close(struct master *m);
/* Called when a service changed state, so waiting requests can answer. */
void master_control_service_changed(struct master *m);
/* A control request line from a worker (IPC_CONTROL_REQUEST) of svc
 * with pid: run it as the control socket would, except shutdown, and send
 * the reply text back as IPC_CONTROL_REPLY with id once it is complete. */
void master_control_worker_request(struct master *m, struct master_service *svc, pid_t pid,
				   const char *id, const char *command);
/* Send reply as IPC_CONTROL_REPLY with id to the worker of svc with pid,
 * if it still runs. */
void master_control_worker_reply(struct master_service *svc, pid_t pid, const char *id,
				 const char *reply);

/* master_settings.c: IPC_SETTINGS_CHANGE from a worker: validate and write
 * the n values of service as `posternctl settings set` does, then reload;
 * the answer goes back as IPC_CONTROL_REPLY. */
void master_settings_change(struct master *m, struct master_service *svc, pid_t pid, const char *id,
			    const char *service, size_t n, const char *const *keys,
			    const char *const *values);

#endif
