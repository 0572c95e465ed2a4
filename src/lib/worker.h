#ifndef POSTERN_WORKER_H
#define POSTERN_WORKER_H

#include <stdbool.h>
#include <sys/socket.h>

struct event_base;
struct worker;
struct ipc_msg;

/* The runtime of one service worker process (src/lib/worker.c).
 *
 * The master starts a worker as `posternd --worker SERVICE` with its channel
 * on fd 3. The runtime owns the event loop, the channel to the master
 * (settings, listeners, shutdown) and the channel to authd. It accepts
 * connections on the listeners the master hands over and gives each accepted
 * socket to the service's ops. A service implements only these hooks. */
struct worker_service_ops {
	const char *name;
	/* Called once after the first settings arrived. Returns 0, or -1 with
	 * *error_r (malloc'ed) and the worker exits with it logged. */
	int (*init)(struct worker *w, char **error_r);
	/* Settings changed; worker_setting() already returns the new values.
	 * New connections must use them at once. */
	void (*settings_changed)(struct worker *w);
	/* A connection was accepted on a listener. The service owns fd.
	 * implicit_tls says the listener is an SSL binding. local is the
	 * listener's address text. */
	void (*accepted)(struct worker *w, int fd, const struct sockaddr *peer,
			 socklen_t peer_len, bool implicit_tls, const char *local);
	/* A reply from authd to a request made with worker_authd_send(). */
	void (*authd_reply)(struct worker *w, const struct ipc_msg *msg);
	/* Begin a graceful shutdown: stop sessions politely (protocol goodbye),
	 * then call worker_shutdown_done(). May be NULL: the runtime then
	 * exits at once. */
	void (*shutdown)(struct worker *w);
	/* End every session of user (compare case-insensitively) at once:
	 * the administrator changed or removed the account. May be NULL. */
	void (*kick)(struct worker *w, const char *user);
	/* Number of open sessions, reported in `posternctl service status`. */
	unsigned (*connection_count)(struct worker *w);
	/* A message from the master that the runtime does not handle itself
	 * (IPC_SERVICE_INFO, IPC_CONTROL_REPLY: only for services whose
	 * service_def observes the others). NULL: such a message is a
	 * protocol error and the worker exits. */
	void (*master_message)(struct worker *w, const struct ipc_msg *msg);
};

/* Run the worker; never returns. channel_fd is the master channel. When
 * started as root, the worker switches to run_as_user right after the
 * service's init (which may read the TLS key) and before the first client. */
void worker_main(const struct worker_service_ops *ops, const char *datadir, int channel_fd,
		 const char *run_as_user) __attribute__((noreturn));

struct event_base *worker_event_base(struct worker *w);
const char *worker_service(struct worker *w);
const char *worker_datadir(struct worker *w);
/* The current effective value of a setting of this service, or NULL when
 * the key is unknown. The pointer is valid until the next settings change. */
const char *worker_setting(struct worker *w, const char *key);
/* Parsed helpers over worker_setting(); fall back to def when the value is
 * missing or unparsable. "unlimited" parses as 0 for counts. */
long long worker_setting_int(struct worker *w, const char *key, long long def);
bool worker_setting_bool(struct worker *w, const char *key, bool def);
/* A path setting (certificate-file, ...) made absolute: relative values and
 * def (used when the setting is missing or empty) are taken from the data
 * dir. Malloc'ed. */
char *worker_setting_path(struct worker *w, const char *key, const char *def);
/* Send a request to authd (IPC_AUTH_REQUEST etc). Returns 0 or -1 when authd
 * is unreachable (the caller answers with a temporary failure). */
int worker_authd_send(struct worker *w, int type, const void *fields, unsigned nfields);
/* Send a request to the master (IPC_CONTROL_REQUEST, IPC_SETTINGS_CHANGE;
 * the master accepts them only from services that observe the others).
 * Returns 0 or -1 when the channel is full or gone. */
int worker_master_send(struct worker *w, int type, const void *fields, unsigned nfields);
/* Service-private state. */
void worker_set_context(struct worker *w, void *ctx);
void *worker_context(struct worker *w);
/* Called by the service when its graceful shutdown is complete. */
void worker_shutdown_done(struct worker *w) __attribute__((noreturn));

#endif
