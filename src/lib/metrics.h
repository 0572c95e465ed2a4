#ifndef POSTERN_METRICS_H
#define POSTERN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Counters shared by every process of an instance (src/lib/metrics.c).
 *
 * The master creates one shared memory region (a sealed memfd of a fixed
 * layout: 64-bit counters, no pointers, no strings) and keeps it for its
 * lifetime. Every worker and authd maps it from the IPC_METRICS message
 * the master sends first after starting them, so counts survive worker
 * restarts and nothing is lost when a worker dies: workers only add, with
 * relaxed atomic adds (no lock, no system call). Open connections are
 * counted per worker slot; the master zeroes a dead worker's slot, so the
 * gauge never keeps the connections of a worker that is gone.
 *
 * Labels come from fixed tables only (services, command names per
 * protocol, results), so the number of series is bounded whatever clients
 * send: a command that is not in its protocol's table counts as "unknown".
 *
 * A process counts for the service it was attached as; before
 * metrics_attach() (and in programs that never attach: posternctl, unit
 * tests, fuzzers) every call works on a private region nobody reads. */

/* The Content-Type of metrics_render_prometheus()'s output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Worker slots per service whose open connections are counted apart
 * (the master runs at most 64 workers per service). */
#define METRICS_MAX_SLOTS 64
/* Names in one protocol's command table, "unknown" included. */
#define METRICS_MAX_COMMANDS 80
/* Finite histogram buckets (the +Inf bucket is one more). */
#define METRICS_BUCKETS 15

enum metrics_service {
	METRICS_SVC_IMAP4,
	METRICS_SVC_IMAP4_BACKEND,
	METRICS_SVC_POP3,
	METRICS_SVC_POP3_BACKEND,
	METRICS_SVC_SUBMISSION,
	METRICS_SVC_LMTP,
	METRICS_SVC_HTTP,
	METRICS_SVC_AUTHD,
	METRICS_SVC_COUNT,
	/* a name outside the table: counted in a row that is never shown */
	METRICS_SVC_NONE = METRICS_SVC_COUNT,
};

/* The outcome of one login attempt as the client saw it (front ends and
 * submission). */
enum metrics_login {
	METRICS_LOGIN_OK,
	METRICS_LOGIN_BAD_CREDENTIALS, /* unknown user or wrong password */
	METRICS_LOGIN_DISABLED,	       /* the protocol is switched off for the user */
	METRICS_LOGIN_ACCOUNT_KIND,    /* guest or admin account, anonymous/guest name */
	METRICS_LOGIN_LOGIN_TYPE,      /* credentials refused on an unencrypted connection */
	METRICS_LOGIN_LIMIT,	       /* max-connections-per-user */
	METRICS_LOGIN_TEMPFAIL,	       /* authd or the back end unavailable */
	METRICS_LOGIN_COUNT,
};

/* authd's verdicts on the credentials it was asked about. */
enum metrics_auth {
	METRICS_AUTH_OK,
	METRICS_AUTH_UNKNOWN_USER,
	METRICS_AUTH_WRONG_PASSWORD,
	METRICS_AUTH_REFUSED, /* verified, but the account may not log in here */
	METRICS_AUTH_TEMPFAIL,
	METRICS_AUTH_COUNT,
};

/* One recipient of one message. */
enum metrics_delivery {
	METRICS_DELIVERY_DELIVERED,	    /* in the mailbox (lmtp; submission's local) */
	METRICS_DELIVERY_UNKNOWN_RECIPIENT, /* refused at RCPT: no such user */
	METRICS_DELIVERY_OVER_QUOTA,
	METRICS_DELIVERY_REJECTED, /* other permanent failures */
	METRICS_DELIVERY_TEMPFAIL, /* a temporary failure (the queue retries) */
	METRICS_DELIVERY_QUEUED,   /* submission: for a remote recipient */
	METRICS_DELIVERY_COUNT,
};

/* The queue runner's outcome for one recipient in one attempt. */
enum metrics_queue_route { METRICS_ROUTE_LOCAL, METRICS_ROUTE_REMOTE, METRICS_ROUTE_COUNT };
enum metrics_queue_result {
	METRICS_QUEUE_DELIVERED,
	METRICS_QUEUE_DEFERRED,
	METRICS_QUEUE_BOUNCED,
	METRICS_QUEUE_RESULT_COUNT,
};

struct metrics_histogram {
	uint64_t total;			      /* commands received */
	uint64_t bucket[METRICS_BUCKETS + 1]; /* observations per bucket (not cumulative) */
	uint64_t sum_us;		      /* observed time, microseconds */
};

/* The shared region. Fixed layout: a reader trusts nothing in it but its
 * size (the memfd is sealed against shrinking). */
#define METRICS_MAGIC	0x706f737465726e6dULL /* "posternm" */
#define METRICS_VERSION 1
struct metrics_region {
	uint64_t magic;
	uint64_t version;
	uint64_t size;
	int64_t connections_open[METRICS_SVC_COUNT + 1][METRICS_MAX_SLOTS];
	uint64_t connections_total[METRICS_SVC_COUNT + 1];
	uint64_t logins[METRICS_SVC_COUNT + 1][METRICS_LOGIN_COUNT];
	uint64_t auth[METRICS_SVC_COUNT + 1][METRICS_AUTH_COUNT];
	uint64_t auth_tarpit[METRICS_SVC_COUNT + 1];
	uint64_t deliveries[METRICS_SVC_COUNT + 1][METRICS_DELIVERY_COUNT];
	uint64_t queue_messages;
	uint64_t queue[METRICS_ROUTE_COUNT][METRICS_QUEUE_RESULT_COUNT];
	uint64_t worker_restarts[METRICS_SVC_COUNT + 1];
	struct metrics_histogram commands[METRICS_SVC_COUNT + 1][METRICS_MAX_COMMANDS];
};

/* The region this process counts into (never NULL), its service and slot. */
extern struct metrics_region *metrics_shm;
extern enum metrics_service metrics_self;
extern unsigned metrics_self_slot;

/* ---- setting up ---- */

/* Master: create the region (a sealed memfd) and map it; this process then
 * reads and writes it. Returns the memfd (close-on-exec; pass it to each
 * child with IPC_METRICS), or -1 with *error_r (malloc'ed). */
int metrics_create(char **error_r);
/* Worker, authd: map the region from fd (the caller still closes fd) and
 * count as service (a name from the table; unknown names count nowhere
 * visible) in slot. Returns 0, or -1 with *error_r (malloc'ed): the
 * process then keeps counting into its private region. */
int metrics_attach(int fd, const char *service, unsigned slot, char **error_r);
/* Index of a service name, or METRICS_SVC_NONE. */
enum metrics_service metrics_service_find(const char *name);
const char *metrics_service_name(enum metrics_service svc);

/* ---- counting (cheap: relaxed atomic adds, no lock, no system call) ---- */

static inline void metrics_add(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/* A connection of this process's service was accepted / ended. */
void metrics_connection_opened(void);
void metrics_connection_closed(void);
/* One login attempt of this process's service ended so. */
void metrics_login(enum metrics_login outcome);
/* authd answered a login with a failure (result "fail", "refused",
 * "tempfail"; cause is its "cause" field or NULL): count it as this
 * service's failed login. Does nothing for result "ok". */
void metrics_login_authd_failure(const char *result, const char *cause);
/* authd: a verdict for a request of service (the requester's name). */
void metrics_auth(const char *service, enum metrics_auth verdict, bool tarpit_delay);
/* n recipients of this process's service had this outcome. */
void metrics_delivery(enum metrics_delivery outcome, uint64_t n);
/* The queue runner's outcome for one recipient of one attempt. */
void metrics_queue_outcome(enum metrics_queue_route route, enum metrics_queue_result result);
/* The number of messages in the queue (whoever counted them last). */
void metrics_queue_messages_set(uint64_t n);

/* A command in progress (one per session; zero-initialised: idle). */
struct metrics_timer {
	bool active;
	uint16_t command;
	uint64_t start_us;
};
/* A command named name (the verb: "RETR", "UID FETCH") arrived: count it
 * and start timing. A name outside the protocol's table is "unknown". */
void metrics_command_begin(struct metrics_timer *t, const char *name);
/* The command's answer is complete: observe its duration. Does nothing
 * when no command is being timed. */
void metrics_command_end(struct metrics_timer *t);
/* A command that is counted and observed at once (e.g. a syntax error). */
void metrics_command_now(const char *name);
/* Count a command that took us microseconds (tests, replays). */
void metrics_command_observe_us(const char *name, uint64_t us);

/* Master: a worker of service died unexpectedly and will be restarted. */
void metrics_worker_restarted(const char *service);
/* Master: a process of service in slot exited; its open connections are
 * gone with it. */
void metrics_process_exited(const char *service, unsigned slot);

/* ---- reading ---- */

/* Append the Prometheus text exposition format (version 0.0.4) of the
 * region to out: a HELP and a TYPE line for every family, then its
 * samples. Returns 0, or -1 when out could not grow. Any attached process
 * may render (the http service's /metrics: this into the reply's evbuffer,
 * Content-Type METRICS_CONTENT_TYPE); the master renders for
 * `posternctl metrics`. */
int metrics_render_prometheus(struct evbuffer *out);
int metrics_render_region(const struct metrics_region *r, struct evbuffer *out);
/* A label value with \, " and newline escaped as the format asks. */
int metrics_escape_label_value(struct evbuffer *out, const char *value);

/* For tests: the command table of a service (NULL-terminated, [0] is
 * "unknown"), and a histogram bucket's upper bound in microseconds. */
const char *const *metrics_command_table(enum metrics_service svc);
uint64_t metrics_bucket_bound_us(unsigned i);
/* Back to the private region, counting as no service (tests). */
void metrics_detach(void);

#endif
