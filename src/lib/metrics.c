#include "lib/metrics.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/xalloc.h"

/* ---- tables ---- */

static const char *const service_names[METRICS_SVC_COUNT] = {
    [METRICS_SVC_IMAP4] = "imap4",
    [METRICS_SVC_IMAP4_BACKEND] = "imap4-backend",
    [METRICS_SVC_POP3] = "pop3",
    [METRICS_SVC_POP3_BACKEND] = "pop3-backend",
    [METRICS_SVC_SUBMISSION] = "submission",
    [METRICS_SVC_LMTP] = "lmtp",
    [METRICS_SVC_HTTP] = "http",
    [METRICS_SVC_AUTHD] = "authd",
};

/* Command tables: "unknown" first, then sorted (strcmp order, upper case)
 * for the binary search. A unit test checks the order. */
static const char *const pop3_commands[] = {
    "unknown", "APOP", "AUTH", "CAPA", "DELE", "LIST", "NOOP", "PASS",	 "QUIT", "RETR",
    "RSET",    "STAT", "STLS", "TOP",  "UIDL", "USER", "UTF8", "XLOGIN", NULL,
};

static const char *const imap_commands[] = {
    "unknown",	   "APPEND",	     "AUTHENTICATE", "CAPABILITY",  "CHECK",	 "CLOSE",
    "COMPRESS",	   "COPY",	     "CREATE",	     "DELETE",	    "DELETEACL", "DONE",
    "ENABLE",	   "ESEARCH",	     "EXAMINE",	     "EXPUNGE",	    "FETCH",	 "GETACL",
    "GETMETADATA", "GETQUOTA",	     "GETQUOTAROOT", "ID",	    "IDLE",	 "LIST",
    "LISTRIGHTS",  "LOGIN",	     "LOGOUT",	     "LSUB",	    "MOVE",	 "MYRIGHTS",
    "NAMESPACE",   "NOOP",	     "NOTIFY",	     "RENAME",	    "REPLACE",	 "SEARCH",
    "SELECT",	   "SETACL",	     "SETMETADATA",  "SETQUOTA",    "SORT",	 "STARTTLS",
    "STATUS",	   "STORE",	     "SUBSCRIBE",    "THREAD",	    "UID COPY",	 "UID EXPUNGE",
    "UID FETCH",   "UID MOVE",	     "UID REPLACE",  "UID SEARCH",  "UID SORT",	 "UID STORE",
    "UID THREAD",  "UNAUTHENTICATE", "UNSELECT",     "UNSUBSCRIBE", "XLIST",	 "XLOGIN",
    NULL,
};

static const char *const smtp_commands[] = {
    "unknown", "AUTH", "BDAT", "DATA", "EHLO", "EXPN",	   "HELO", "HELP", "LHLO",
    "MAIL",    "NOOP", "QUIT", "RCPT", "RSET", "STARTTLS", "VRFY", NULL,
};

static const char *const no_commands[] = {"unknown", NULL};

const char *const *metrics_command_table(enum metrics_service svc)
{
	switch (svc) {
	case METRICS_SVC_POP3_BACKEND:
		return pop3_commands;
	case METRICS_SVC_IMAP4_BACKEND:
		return imap_commands;
	case METRICS_SVC_SUBMISSION:
	case METRICS_SVC_LMTP:
		return smtp_commands;
	default:
		return NULL;
	}
}

/* upper bounds of the finite buckets, microseconds */
static const uint64_t bucket_bounds_us[METRICS_BUCKETS] = {
    500,    1000,   2500,    5000,    10000,   25000,	 50000,	   100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000,
};

uint64_t metrics_bucket_bound_us(unsigned i)
{
	return i < METRICS_BUCKETS ? bucket_bounds_us[i] : UINT64_MAX;
}

static const char *const login_reasons[METRICS_LOGIN_COUNT] = {
    [METRICS_LOGIN_OK] = "none",
    [METRICS_LOGIN_BAD_CREDENTIALS] = "bad-credentials",
    [METRICS_LOGIN_DISABLED] = "disabled",
    [METRICS_LOGIN_ACCOUNT_KIND] = "account-kind",
    [METRICS_LOGIN_LOGIN_TYPE] = "login-type",
    [METRICS_LOGIN_LIMIT] = "limit",
    [METRICS_LOGIN_TEMPFAIL] = "tempfail",
};

static const char *const auth_results[METRICS_AUTH_COUNT] = {
    [METRICS_AUTH_OK] = "ok",
    [METRICS_AUTH_UNKNOWN_USER] = "unknown-user",
    [METRICS_AUTH_WRONG_PASSWORD] = "wrong-password",
    [METRICS_AUTH_REFUSED] = "refused",
    [METRICS_AUTH_TEMPFAIL] = "tempfail",
};

static const char *const delivery_results[METRICS_DELIVERY_COUNT] = {
    [METRICS_DELIVERY_DELIVERED] = "delivered",
    [METRICS_DELIVERY_UNKNOWN_RECIPIENT] = "unknown-recipient",
    [METRICS_DELIVERY_OVER_QUOTA] = "over-quota",
    [METRICS_DELIVERY_REJECTED] = "rejected",
    [METRICS_DELIVERY_TEMPFAIL] = "tempfail",
    [METRICS_DELIVERY_QUEUED] = "queued",
};

static const char *const queue_routes[METRICS_ROUTE_COUNT] = {"local", "remote"};
static const char *const queue_results[METRICS_QUEUE_RESULT_COUNT] = {"delivered", "deferred",
								      "bounced"};

/* ---- the region ---- */

static struct metrics_region private_region;
struct metrics_region *metrics_shm = &private_region;
enum metrics_service metrics_self = METRICS_SVC_NONE;
unsigned metrics_self_slot;
static const char *const *self_commands = no_commands;
static size_t self_ncommands = 1;

enum metrics_service metrics_service_find(const char *name)
{
	for (int i = 0; i < METRICS_SVC_COUNT && name != NULL; i++)
		if (strcmp(service_names[i], name) == 0)
			return (enum metrics_service)i;
	return METRICS_SVC_NONE;
}

const char *metrics_service_name(enum metrics_service svc)
{
	return svc < METRICS_SVC_COUNT ? service_names[svc] : "none";
}

static void metrics_region_init(struct metrics_region *r)
{
	r->magic = METRICS_MAGIC;
	r->version = METRICS_VERSION;
	r->size = sizeof(*r);
}

static void metrics_set_self(enum metrics_service svc, unsigned slot)
{
	metrics_self = svc;
	metrics_self_slot = slot < METRICS_MAX_SLOTS ? slot : 0;
	const char *const *table = metrics_command_table(svc);
	self_commands = table != NULL ? table : no_commands;
	self_ncommands = 0;
	while (self_commands[self_ncommands] != NULL)
		self_ncommands++;
}

int metrics_create(char **error_r)
{
	int fd = memfd_create("postern-metrics", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		*error_r = xasprintf("memfd_create: %s", strerror(errno));
		return -1;
	}
	/* sealed: no process holding the fd can shrink it under a reader
	 * (which would be a SIGBUS for the master) */
	if (ftruncate(fd, (off_t)sizeof(struct metrics_region)) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		*error_r = xasprintf("metrics region: %s", strerror(errno));
		close(fd);
		return -1;
	}
	void *p =
	    mmap(NULL, sizeof(struct metrics_region), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		*error_r = xasprintf("mmap: %s", strerror(errno));
		close(fd);
		return -1;
	}
	metrics_region_init(p);
	metrics_shm = p;
	metrics_set_self(METRICS_SVC_NONE, 0);
	return fd;
}

int metrics_attach(int fd, const char *service, unsigned slot, char **error_r)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || (size_t)st.st_size != sizeof(struct metrics_region)) {
		*error_r = xstrdup("the metrics region has the wrong size");
		return -1;
	}
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
		*error_r = xstrdup("the metrics region is not sealed");
		return -1;
	}
	void *p =
	    mmap(NULL, sizeof(struct metrics_region), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		*error_r = xasprintf("mmap: %s", strerror(errno));
		return -1;
	}
	struct metrics_region *r = p;
	if (r->magic != METRICS_MAGIC || r->version != METRICS_VERSION) {
		munmap(p, sizeof(*r));
		*error_r = xstrdup("the metrics region has another layout");
		return -1;
	}
	if (metrics_shm != &private_region)
		munmap(metrics_shm, sizeof(*metrics_shm));
	metrics_shm = r;
	metrics_set_self(metrics_service_find(service), slot);
	return 0;
}

void metrics_detach(void)
{
	if (metrics_shm != &private_region)
		munmap(metrics_shm, sizeof(*metrics_shm));
	metrics_shm = &private_region;
	memset(&private_region, 0, sizeof(private_region));
	metrics_region_init(&private_region);
	metrics_set_self(METRICS_SVC_NONE, 0);
}

/* ---- counting ---- */

void metrics_connection_opened(void)
{
	metrics_add(&metrics_shm->connections_total[metrics_self], 1);
	/* this process is the slot's only writer */
	int64_t *open = &metrics_shm->connections_open[metrics_self][metrics_self_slot];
	__atomic_store_n(open, __atomic_load_n(open, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

void metrics_connection_closed(void)
{
	int64_t *open = &metrics_shm->connections_open[metrics_self][metrics_self_slot];
	__atomic_store_n(open, __atomic_load_n(open, __ATOMIC_RELAXED) - 1, __ATOMIC_RELAXED);
}

void metrics_login(enum metrics_login outcome)
{
	if ((unsigned)outcome < METRICS_LOGIN_COUNT)
		metrics_add(&metrics_shm->logins[metrics_self][outcome], 1);
}

void metrics_login_authd_failure(const char *result, const char *cause)
{
	if (result == NULL || strcmp(result, "ok") == 0)
		return;
	enum metrics_login outcome = METRICS_LOGIN_TEMPFAIL;
	if (strcmp(result, "fail") == 0)
		outcome = METRICS_LOGIN_BAD_CREDENTIALS;
	else if (strcmp(result, "refused") == 0)
		outcome = cause != NULL && strcmp(cause, "disabled") == 0
			      ? METRICS_LOGIN_DISABLED
			      : METRICS_LOGIN_ACCOUNT_KIND;
	metrics_login(outcome);
}

void metrics_auth(const char *service, enum metrics_auth verdict, bool tarpit_delay)
{
	enum metrics_service svc = metrics_service_find(service);
	if ((unsigned)verdict < METRICS_AUTH_COUNT)
		metrics_add(&metrics_shm->auth[svc][verdict], 1);
	if (tarpit_delay)
		metrics_add(&metrics_shm->auth_tarpit[svc], 1);
}

void metrics_delivery(enum metrics_delivery outcome, uint64_t n)
{
	if ((unsigned)outcome < METRICS_DELIVERY_COUNT && n > 0)
		metrics_add(&metrics_shm->deliveries[metrics_self][outcome], n);
}

void metrics_queue_outcome(enum metrics_queue_route route, enum metrics_queue_result result)
{
	if ((unsigned)route < METRICS_ROUTE_COUNT && (unsigned)result < METRICS_QUEUE_RESULT_COUNT)
		metrics_add(&metrics_shm->queue[route][result], 1);
}

void metrics_queue_messages_set(uint64_t n)
{
	__atomic_store_n(&metrics_shm->queue_messages, n, __ATOMIC_RELAXED);
}

static uint64_t metrics_now_us(void)
{
	/* CLOCK_MONOTONIC is answered by the vDSO: no system call */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint16_t metrics_command_index(const char *name)
{
	if (name == NULL)
		return 0;
	size_t lo = 1, hi = self_ncommands;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcasecmp(name, self_commands[mid]);
		if (c == 0)
			return (uint16_t)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

void metrics_command_begin(struct metrics_timer *t, const char *name)
{
	t->command = metrics_command_index(name);
	t->start_us = metrics_now_us();
	t->active = true;
	metrics_add(&metrics_shm->commands[metrics_self][t->command].total, 1);
}

static void metrics_observe(uint16_t command, uint64_t us)
{
	if (command >= self_ncommands)
		command = 0;
	struct metrics_histogram *h = &metrics_shm->commands[metrics_self][command];
	unsigned b = 0;
	while (b < METRICS_BUCKETS && us > bucket_bounds_us[b])
		b++;
	metrics_add(&h->bucket[b], 1);
	metrics_add(&h->sum_us, us);
}

void metrics_command_end(struct metrics_timer *t)
{
	if (!t->active)
		return;
	t->active = false;
	uint64_t now = metrics_now_us();
	metrics_observe(t->command, now >= t->start_us ? now - t->start_us : 0);
}

void metrics_command_observe_us(const char *name, uint64_t us)
{
	uint16_t command = metrics_command_index(name);
	metrics_add(&metrics_shm->commands[metrics_self][command].total, 1);
	metrics_observe(command, us);
}

void metrics_command_now(const char *name)
{
	struct metrics_timer t = {0};
	metrics_command_begin(&t, name);
	metrics_command_end(&t);
}

void metrics_worker_restarted(const char *service)
{
	metrics_add(&metrics_shm->worker_restarts[metrics_service_find(service)], 1);
}

void metrics_process_exited(const char *service, unsigned slot)
{
	if (slot < METRICS_MAX_SLOTS)
		__atomic_store_n(
		    &metrics_shm->connections_open[metrics_service_find(service)][slot], 0,
		    __ATOMIC_RELAXED);
}

/* ---- rendering ---- */

static uint64_t rd(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

int metrics_escape_label_value(struct evbuffer *out, const char *value)
{
	const char *start = value;
	for (const char *p = value;; p++) {
		const char *esc = NULL;
		if (*p == '\\')
			esc = "\\\\";
		else if (*p == '"')
			esc = "\\\"";
		else if (*p == '\n')
			esc = "\\n";
		else if (*p != '\0')
			continue;
		if (p > start && evbuffer_add(out, start, (size_t)(p - start)) < 0)
			return -1;
		if (esc == NULL)
			return 0;
		if (evbuffer_add(out, esc, 2) < 0)
			return -1;
		start = p + 1;
	}
}

struct render {
	struct evbuffer *out;
	int error;
};

static void r_text(struct render *r, const char *text)
{
	if (evbuffer_add(r->out, text, strlen(text)) < 0)
		r->error = -1;
}

static void r_family(struct render *r, const char *name, const char *type, const char *help)
{
	/* help texts are ours: no backslash or newline to escape */
	if (evbuffer_add_printf(r->out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0)
		r->error = -1;
}

/* name{k1="v1",k2="v2"} value; labels: NULL-terminated key, value pairs */
static void r_sample(struct render *r, const char *name, const char *const *labels,
		     const char *value)
{
	r_text(r, name);
	for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
		r_text(r, i == 0 ? "{" : ",");
		r_text(r, labels[i]);
		r_text(r, "=\"");
		if (metrics_escape_label_value(r->out, labels[i + 1]) < 0)
			r->error = -1;
		r_text(r, "\"");
	}
	if (labels != NULL && labels[0] != NULL)
		r_text(r, "}");
	r_text(r, " ");
	r_text(r, value);
	r_text(r, "\n");
}

static void r_u64(struct render *r, const char *name, const char *const *labels, uint64_t v)
{
	char text[24];
	snprintf(text, sizeof(text), "%" PRIu64, v);
	r_sample(r, name, labels, text);
}

static void r_i64(struct render *r, const char *name, const char *const *labels, int64_t v)
{
	char text[24];
	snprintf(text, sizeof(text), "%" PRId64, v);
	r_sample(r, name, labels, text);
}

/* microseconds as seconds, exactly: 2500 -> "0.0025", 1000000 -> "1" */
static void format_seconds(uint64_t us, char *buf, size_t size)
{
	uint64_t frac = us % 1000000u;
	if (frac == 0) {
		snprintf(buf, size, "%" PRIu64, us / 1000000u);
		return;
	}
	char digits[8];
	snprintf(digits, sizeof(digits), "%06" PRIu64, frac);
	size_t n = 6;
	while (n > 0 && digits[n - 1] == '0')
		n--;
	digits[n] = '\0';
	snprintf(buf, size, "%" PRIu64 ".%s", us / 1000000u, digits);
}

static bool svc_has_connections(int s)
{
	return s != METRICS_SVC_AUTHD;
}

static bool svc_has_logins(int s)
{
	/* http: the settings page's and admin centre's logins */
	return s == METRICS_SVC_IMAP4 || s == METRICS_SVC_POP3 || s == METRICS_SVC_SUBMISSION ||
	       s == METRICS_SVC_HTTP;
}

static bool svc_has_deliveries(int s)
{
	return s == METRICS_SVC_LMTP || s == METRICS_SVC_SUBMISSION;
}

static void render_connections(struct render *r, const struct metrics_region *m)
{
	r_family(r, "postern_connections_open", "gauge",
		 "Client connections open now, per service.");
	for (int s = 0; s < METRICS_SVC_COUNT; s++) {
		if (!svc_has_connections(s))
			continue;
		int64_t open = 0;
		for (unsigned i = 0; i < METRICS_MAX_SLOTS; i++)
			open += __atomic_load_n(&m->connections_open[s][i], __ATOMIC_RELAXED);
		const char *labels[] = {"service", service_names[s], NULL};
		r_i64(r, "postern_connections_open", labels, open < 0 ? 0 : open);
	}
	r_family(r, "postern_connections_total", "counter",
		 "Client connections accepted, per service.");
	for (int s = 0; s < METRICS_SVC_COUNT; s++) {
		if (!svc_has_connections(s))
			continue;
		const char *labels[] = {"service", service_names[s], NULL};
		r_u64(r, "postern_connections_total", labels, rd(&m->connections_total[s]));
	}
}

static void render_logins(struct render *r, const struct metrics_region *m)
{
	r_family(r, "postern_logins_total", "counter",
		 "Login attempts by outcome: result ok, or failed with a reason.");
	for (int s = 0; s < METRICS_SVC_COUNT; s++) {
		if (!svc_has_logins(s))
			continue;
		for (int o = 0; o < METRICS_LOGIN_COUNT; o++) {
			const char *labels[] = {"service", service_names[s],
						"result",  o == METRICS_LOGIN_OK ? "ok" : "failed",
						"reason",  login_reasons[o],
						NULL};
			r_u64(r, "postern_logins_total", labels, rd(&m->logins[s][o]));
		}
	}
	r_family(r, "postern_auth_verdicts_total", "counter",
		 "authd's verdicts on credentials, by the service that asked.");
	for (int s = 0; s < METRICS_SVC_COUNT; s++) {
		if (!svc_has_logins(s))
			continue;
		for (int v = 0; v < METRICS_AUTH_COUNT; v++) {
			const char *labels[] = {"service", service_names[s], "result",
						auth_results[v], NULL};
			r_u64(r, "postern_auth_verdicts_total", labels, rd(&m->auth[s][v]));
		}
	}
	r_family(r, "postern_auth_tarpit_delays_total", "counter",
		 "Failed logins that authd answered late because their source kept failing.");
	for (int s = 0; s < METRICS_SVC_COUNT; s++) {
		if (!svc_has_logins(s))
			continue;
		const char *labels[] = {"service", service_names[s], NULL};
		r_u64(r, "postern_auth_tarpit_delays_total", labels, rd(&m->auth_tarpit[s]));
	}
}

static void render_commands(struct render *r, const struct metrics_region *m)
{
	r_family(r, "postern_commands_total", "counter",
		 "Commands received, by name (names outside the protocol's table: unknown).");
	for (int s = 0; s < METRICS_SVC_COUNT; s++) {
		const char *const *table = metrics_command_table((enum metrics_service)s);
		for (size_t c = 0; table != NULL && table[c] != NULL; c++) {
			uint64_t total = rd(&m->commands[s][c].total);
			if (total == 0)
				continue;
			const char *labels[] = {"service", service_names[s], "command", table[c],
						NULL};
			r_u64(r, "postern_commands_total", labels, total);
		}
	}
	r_family(r, "postern_command_duration_seconds", "histogram",
		 "Time from a command's arrival to the end of its answer.");
	for (int s = 0; s < METRICS_SVC_COUNT; s++) {
		const char *const *table = metrics_command_table((enum metrics_service)s);
		for (size_t c = 0; table != NULL && table[c] != NULL; c++) {
			const struct metrics_histogram *h = &m->commands[s][c];
			uint64_t counts[METRICS_BUCKETS + 1];
			uint64_t count = 0;
			for (unsigned b = 0; b <= METRICS_BUCKETS; b++) {
				counts[b] = rd(&h->bucket[b]);
				count += counts[b];
			}
			if (count == 0)
				continue;
			uint64_t cumulative = 0;
			char le[32];
			for (unsigned b = 0; b <= METRICS_BUCKETS; b++) {
				cumulative += counts[b];
				if (b < METRICS_BUCKETS)
					format_seconds(bucket_bounds_us[b], le, sizeof(le));
				else
					snprintf(le, sizeof(le), "+Inf");
				const char *labels[] = {
				    "service", service_names[s], "command", table[c], "le", le,
				    NULL};
				r_u64(r, "postern_command_duration_seconds_bucket", labels,
				      cumulative);
			}
			const char *labels[] = {"service", service_names[s], "command", table[c],
						NULL};
			char sum[40];
			format_seconds(rd(&h->sum_us), sum, sizeof(sum));
			r_sample(r, "postern_command_duration_seconds_sum", labels, sum);
			r_u64(r, "postern_command_duration_seconds_count", labels, count);
		}
	}
}

static void render_deliveries(struct render *r, const struct metrics_region *m)
{
	r_family(r, "postern_deliveries_total", "counter",
		 "Recipients of messages received for delivery, by outcome.");
	for (int s = 0; s < METRICS_SVC_COUNT; s++) {
		if (!svc_has_deliveries(s))
			continue;
		for (int d = 0; d < METRICS_DELIVERY_COUNT; d++) {
			if (d == METRICS_DELIVERY_QUEUED && s != METRICS_SVC_SUBMISSION)
				continue;
			const char *labels[] = {"service", service_names[s], "result",
						delivery_results[d], NULL};
			r_u64(r, "postern_deliveries_total", labels, rd(&m->deliveries[s][d]));
		}
	}
	r_family(r, "postern_queue_messages", "gauge",
		 "Messages in the outbound queue (as last counted by the queue scan or a "
		 "metrics request).");
	r_u64(r, "postern_queue_messages", NULL, rd(&m->queue_messages));
	r_family(r, "postern_queue_deliveries_total", "counter",
		 "Delivery attempts of the outbound queue, per recipient, by route and outcome.");
	for (int route = 0; route < METRICS_ROUTE_COUNT; route++) {
		for (int q = 0; q < METRICS_QUEUE_RESULT_COUNT; q++) {
			const char *labels[] = {"route", queue_routes[route], "result",
						queue_results[q], NULL};
			r_u64(r, "postern_queue_deliveries_total", labels, rd(&m->queue[route][q]));
		}
	}
}

static void render_restarts(struct render *r, const struct metrics_region *m)
{
	r_family(r, "postern_worker_restarts_total", "counter",
		 "Worker processes that died unexpectedly and were restarted by the master.");
	for (int s = 0; s < METRICS_SVC_COUNT; s++) {
		const char *labels[] = {"service", service_names[s], NULL};
		r_u64(r, "postern_worker_restarts_total", labels, rd(&m->worker_restarts[s]));
	}
}

int metrics_render_region(const struct metrics_region *m, struct evbuffer *out)
{
	struct render r = {out, 0};
	render_connections(&r, m);
	render_logins(&r, m);
	render_commands(&r, m);
	render_deliveries(&r, m);
	render_restarts(&r, m);
	return r.error;
}

int metrics_render_prometheus(struct evbuffer *out)
{
	return metrics_render_region(metrics_shm, out);
}
