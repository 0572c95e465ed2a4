/* imap_load: an IMAP4 load generator on libevent and OpenSSL, driven by
 * bench/imap_bench.py (which builds it with one cc line).
 *
 * Two modes, both bounded in time:
 *
 *   imap_load mixed --port P --users N --clients C --duration S ...
 *     C clients (client i logs in as PREFIX(i mod N)), each one command at a
 *     time with no think time: SELECT, FETCH of flags, FETCH of a body,
 *     STORE, SEARCH, APPEND, UID EXPUNGE (of a message the client appended)
 *     and IDLE, drawn at random by weight. After a warm-up, commands that
 *     complete within the measured window are counted, and their latencies
 *     (command sent to tagged answer) kept as samples for percentiles.
 *
 *   imap_load idle --port P --users N --connections M ...
 *     M connections log in (PREFIX(i mod N)), SELECT INBOX and IDLE; once
 *     they are all idling one JSON line {"event":"ready",...} is printed and
 *     the program takes commands on standard input:
 *       probe append K   K times: APPEND to one user's INBOX from another
 *                        session, time until each of that user's idlers got
 *                        the EXISTS
 *       probe lmtp K     the same with a delivery over LMTP (--lmtp PATH)
 *       quit             close everything and exit
 *
 * Results are JSON lines on standard output; progress goes to stderr.
 * Latencies are in milliseconds, percentiles from the sorted samples. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* ---- options ---- */

static struct {
	const char *mode;
	const char *host;
	int port;
	bool tls;
	const char *prefix;
	const char *password;
	int users;
	int clients;	 /* mixed */
	int connections; /* idle */
	int parallel;	 /* connections being set up at once */
	double warmup, duration;
	long max_commands; /* mixed: stop after this many measured commands */
	int idle_ms;	   /* mixed: how long one IDLE lasts */
	int msg_size;	   /* APPEND size */
	int probe_users;   /* idle: users the probes write to */
	double probe_timeout;
	const char *lmtp;
	const char *domain;
	double deadline; /* the whole run, seconds */
	unsigned seed;
	int weights[8];
} opt = {
    .mode = NULL,
    .host = "127.0.0.1",
    .port = 0,
    .tls = true,
    .prefix = "u",
    .password = "",
    .users = 1,
    .clients = 32,
    .connections = 100,
    .parallel = 32,
    .warmup = 3,
    .duration = 20,
    .max_commands = 0,
    .idle_ms = 300,
    .msg_size = 3000,
    .probe_users = 20,
    .probe_timeout = 10,
    .lmtp = NULL,
    .domain = "example.test",
    .deadline = 600,
    .seed = 1,
    /* select, fetch-flags, fetch-body, store, search, append, expunge, idle */
    .weights = {3, 15, 25, 18, 12, 10, 10, 7},
};

enum op {
	OP_SELECT,
	OP_FETCH_FLAGS,
	OP_FETCH_BODY,
	OP_STORE,
	OP_SEARCH,
	OP_APPEND,
	OP_EXPUNGE,
	OP_IDLE,
	OP_LOGIN,
	OP_LOGOUT,
	OP_COUNT
};
#define OP_DRAWN 8 /* ops drawn by weight: the first eight */

static const char *const op_names[OP_COUNT] = {
    "SELECT", "FETCH_FLAGS", "FETCH_BODY", "STORE", "SEARCH",
    "APPEND", "EXPUNGE",     "IDLE",	   "LOGIN", "LOGOUT",
};

/* ---- time and samples ---- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct samples {
	double *v;
	size_t n, cap;
};

static void samples_add(struct samples *s, double x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = realloc(s->v, s->cap * sizeof(double));
		if (s->v == NULL)
			abort();
	}
	s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const struct samples *s, double p)
{
	if (s->n == 0)
		return NAN;
	size_t i = (size_t)ceil(p / 100.0 * s->n);
	if (i > 0)
		i--;
	if (i >= s->n)
		i = s->n - 1;
	return s->v[i];
}

static void json_num(FILE *f, const char *key, double v, bool comma)
{
	if (isnan(v))
		fprintf(f, "\"%s\":null%s", key, comma ? "," : "");
	else
		fprintf(f, "\"%s\":%.3f%s", key, v, comma ? "," : "");
}

/* sorts s; prints "n", mean and percentiles in ms */
static void json_lat(FILE *f, struct samples *s)
{
	qsort(s->v, s->n, sizeof(double), cmp_double);
	double sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += s->v[i];
	fprintf(f, "\"n\":%zu,", s->n);
	json_num(f, "mean", s->n ? sum / s->n * 1e3 : NAN, true);
	json_num(f, "p50", pct(s, 50) * 1e3, true);
	json_num(f, "p90", pct(s, 90) * 1e3, true);
	json_num(f, "p99", pct(s, 99) * 1e3, true);
	json_num(f, "p999", pct(s, 99.9) * 1e3, true);
	json_num(f, "max", s->n ? s->v[s->n - 1] * 1e3 : NAN, false);
}

static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "imap_load: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

/* ---- clients ---- */

enum cstate {
	C_NEW,
	C_CONNECTING, /* TCP/TLS, then the greeting */
	C_LOGIN,
	C_SELECT,
	C_READY,       /* selected, waiting for the start */
	C_CMD,	       /* a command is out, waiting for its tagged answer */
	C_APPEND_CONT, /* APPEND sent, waiting for "+" */
	C_IDLE_START,  /* IDLE sent, waiting for "+" */
	C_IDLING,
	C_IDLE_DONE, /* DONE sent */
	C_LOGOUT,
	C_CLOSED,
	C_FAILED,
};

enum role { R_WORKER, R_IDLER, R_WRITER };

struct client {
	int id;
	enum role role;
	int user;
	struct bufferevent *bev;
	enum cstate state;
	unsigned tagn;
	char tag[16];
	enum op op;
	double t0;     /* the command's start */
	double idle_t; /* IDLE: time spent waiting for "+" */
	uint32_t exists;
	uint32_t *appended; /* UIDs this client appended, not yet expunged */
	size_t nappended, capappended;
	uint32_t expunge_uid; /* second step of an EXPUNGE op */
	uint32_t last_appenduid;
	size_t lit_left;
	bool cont;	  /* the next line continues a response after a literal */
	bool got_literal; /* the current command's answer carried a literal */
	unsigned rng;
	struct event *timer;
	int probe_seen; /* idle mode: the last probe this idler reported */
	bool in_setup;	/* counted in setting_up */
	bool flag_toggle;
	int search_n;
};

static struct event_base *base;
static SSL_CTX *ssl_ctx;
static struct sockaddr_in server_addr;

static struct client *clients;
static int nclients;
static int next_to_connect, setting_up, set_up, failed_setup;
static double t_begin;

/* mixed mode */
enum phase { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_STOP };
static enum phase phase = PH_SETUP;
static double t_measure0, t_measure1, t_run0;
static struct samples lat[OP_COUNT];
static long counts_ok[OP_COUNT], counts_no[OP_COUNT], counts_bad[OP_COUNT];
static long measured_commands, all_commands;
static long disconnects, body_literals_missing, notifications;
static uint64_t literal_bytes;
static int closed_clients;
static struct samples login_lat;
static char *message_text;

/* idle mode */
static int idlers_ready, idlers_dropped;
static int *idlers_per_user; /* idlers of each user that are idling */
static struct client *writers;
static int nwriters, writers_ready;

static void client_start(struct client *c);
static void client_next(struct client *c);
static void probe_finish(void);

/* idle mode: the probe under way */
static struct {
	bool active;
	bool lmtp;
	int id, k, K;
	int user;
	int expected, got;
	double t0;
	bool sent;
	struct samples all, first, last, commit;
	long missed;
	struct event *timer, *gap;
} probe;
static void maybe_start_more(void);
static void probe_on_exists(struct client *c);
static void writer_ready(struct client *c);
static void writer_append_done(struct client *c, bool ok);
static void writer_append_sent(struct client *c);

static unsigned xrand(unsigned *s)
{
	/* xorshift32 */
	unsigned x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x ? x : 0x9e3779b9u;
}

static void send_cmd(struct client *c, enum op op, const char *fmt, ...)
{
	va_list ap;
	snprintf(c->tag, sizeof(c->tag), "a%u", ++c->tagn);
	char buf[512];
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add_printf(out, "%s %s\r\n", c->tag, buf);
	c->op = op;
	c->t0 = now();
	c->got_literal = false;
}

static void client_close(struct client *c, enum cstate st)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->timer != NULL) {
		event_free(c->timer);
		c->timer = NULL;
	}
	c->state = st;
}

static bool in_window(double t0, double t1)
{
	return t0 >= t_measure0 && t1 <= t_measure1;
}

static void record(struct client *c, enum op op, double t0, double t1, char status)
{
	all_commands++;
	if (phase == PH_SETUP || !(t1 >= t_measure0 && t1 <= t_measure1))
		return;
	measured_commands++;
	if (status == 'O')
		counts_ok[op]++;
	else if (status == 'N')
		counts_no[op]++;
	else
		counts_bad[op]++;
	if (in_window(t0, t1))
		samples_add(&lat[op], t1 - t0);
}

static const char *status_of(const char *line, size_t taglen)
{
	return line + taglen + 1;
}

static void setup_done(struct client *c)
{
	if (c->in_setup) {
		c->in_setup = false;
		setting_up--;
	}
}

static void client_fail(struct client *c, const char *why)
{
	enum cstate was = c->state;
	bool during_setup = c->in_setup;
	if (c->role == R_IDLER && was == C_IDLING) {
		idlers_per_user[c->user]--;
		idlers_dropped++;
	}
	if (was == C_LOGOUT) {
		client_close(c, C_CLOSED);
		closed_clients++;
		return;
	}
	if (c->role == R_WRITER) {
		note("probe writer for %s%d lost: %s", opt.prefix, c->user, why);
		if (during_setup) {
			setup_done(c);
			writer_ready(c);
		} else if (probe.active && !probe.lmtp && c->user == probe.user) {
			client_close(c, C_FAILED);
			probe_finish();
			return;
		}
		client_close(c, C_FAILED);
		return;
	}
	if (during_setup) {
		failed_setup++;
		setup_done(c);
		if (failed_setup <= 5)
			note("client %d (user %s%d) failed during setup: %s", c->id, opt.prefix,
			     c->user, why);
	} else {
		disconnects++;
		if (disconnects <= 5)
			note("client %d (user %s%d) lost in state %d: %s", c->id, opt.prefix,
			     c->user, (int)was, why);
		closed_clients++;
	}
	client_close(c, C_FAILED);
	if (during_setup)
		maybe_start_more();
}

/* ---- mixed workload ---- */

static const char *const search_keys[] = {
    "UNSEEN", "FLAGGED", "FROM \"sender7\"", "SUBJECT \"message 42\"", "SINCE 1-Jan-2020 UNDELETED",
};

static void idle_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	if (c->state != C_IDLING)
		return;
	evbuffer_add_printf(bufferevent_get_output(c->bev), "DONE\r\n");
	c->t0 = now();
	c->state = C_IDLE_DONE;
}

static void client_next(struct client *c)
{
	if (phase == PH_STOP) {
		send_cmd(c, OP_LOGOUT, "LOGOUT");
		c->state = C_LOGOUT;
		return;
	}
	if (c->expunge_uid != 0) {
		send_cmd(c, OP_EXPUNGE, "UID EXPUNGE %u", c->expunge_uid);
		c->expunge_uid = 0;
		c->state = C_CMD;
		return;
	}
	int total = 0;
	for (int i = 0; i < OP_DRAWN; i++)
		total += opt.weights[i];
	int r = (int)(xrand(&c->rng) % (unsigned)total);
	enum op op = OP_SELECT;
	for (int i = 0; i < OP_DRAWN; i++) {
		if (r < opt.weights[i]) {
			op = (enum op)i;
			break;
		}
		r -= opt.weights[i];
	}
	if (op == OP_EXPUNGE && c->nappended == 0)
		op = OP_APPEND;
	if ((op == OP_FETCH_BODY || op == OP_STORE) && c->exists == 0)
		op = OP_APPEND;
	uint32_t seq = c->exists ? 1 + xrand(&c->rng) % c->exists : 1;
	c->state = C_CMD;
	switch (op) {
	case OP_SELECT:
		send_cmd(c, op, "SELECT INBOX");
		break;
	case OP_FETCH_FLAGS:
		send_cmd(c, op, "UID FETCH 1:* (FLAGS)");
		break;
	case OP_FETCH_BODY:
		send_cmd(c, op, "FETCH %u BODY.PEEK[]", seq);
		break;
	case OP_STORE:
		c->flag_toggle = !c->flag_toggle;
		send_cmd(c, op, "STORE %u %cFLAGS (\\Flagged)", seq, c->flag_toggle ? '+' : '-');
		break;
	case OP_SEARCH:
		send_cmd(c, op, "SEARCH %s",
			 search_keys[c->search_n++ % (sizeof(search_keys) / sizeof(*search_keys))]);
		break;
	case OP_APPEND:
		send_cmd(c, op, "APPEND INBOX {%zu}", strlen(message_text));
		c->state = C_APPEND_CONT;
		break;
	case OP_EXPUNGE: {
		/* two commands: flag one of our own messages \Deleted (a STORE),
		 * then UID EXPUNGE it (the EXPUNGE) */
		size_t i = xrand(&c->rng) % c->nappended;
		uint32_t uid = c->appended[i];
		c->appended[i] = c->appended[--c->nappended];
		send_cmd(c, OP_STORE, "UID STORE %u +FLAGS.SILENT (\\Deleted)", uid);
		c->expunge_uid = uid;
		break;
	}
	case OP_IDLE:
		send_cmd(c, op, "IDLE");
		c->state = C_IDLE_START;
		break;
	default:
		abort();
	}
}

/* ---- response handling ---- */

static bool literal_at_end(const char *line, size_t len, size_t *n_r)
{
	if (len < 3 || line[len - 1] != '}')
		return false;
	size_t i = len - 2;
	while (i > 0 && line[i] >= '0' && line[i] <= '9')
		i--;
	if (line[i] != '{' || i == len - 2)
		return false;
	*n_r = strtoul(line + i + 1, NULL, 10);
	return true;
}

static void write_message(struct client *c)
{
	/* a unique Message-ID per append */
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add(out, message_text, strlen(message_text));
	evbuffer_add(out, "\r\n", 2);
}

static void on_untagged(struct client *c, const char *line, size_t len)
{
	/* "* N EXISTS", "* N EXPUNGE", "* N FETCH ..." */
	const char *p = line + 2;
	if (*p >= '0' && *p <= '9') {
		char *end;
		unsigned long n = strtoul(p, &end, 10);
		if (strncmp(end, " EXISTS", 7) == 0) {
			bool grew = n > c->exists;
			c->exists = (uint32_t)n;
			if (c->state == C_IDLING || c->state == C_IDLE_DONE) {
				if (c->role == R_IDLER && grew)
					probe_on_exists(c);
				else if (c->role == R_WORKER)
					notifications++;
			}
		} else if (strncmp(end, " EXPUNGE", 8) == 0) {
			if (c->exists > 0)
				c->exists--;
			if (c->role == R_WORKER && c->state == C_IDLING)
				notifications++;
		} else if (strncmp(end, " FETCH", 6) == 0) {
			if (c->role == R_WORKER && c->state == C_IDLING)
				notifications++;
		}
	} else if (strncmp(p, "BYE", 3) == 0 && c->state != C_LOGOUT) {
		note("client %d: %.*s", c->id, (int)len, line);
	}
}

static void on_tagged(struct client *c, const char *line, size_t len)
{
	size_t taglen = strlen(c->tag);
	if (len <= taglen || strncmp(line, c->tag, taglen) != 0 || line[taglen] != ' ') {
		note("client %d: unexpected tagged line: %.*s", c->id, (int)len, line);
		return;
	}
	const char *st = status_of(line, taglen);
	char status = strncmp(st, "OK", 2) == 0 ? 'O' : strncmp(st, "NO", 2) == 0 ? 'N' : 'B';
	double t1 = now();
	switch (c->state) {
	case C_LOGIN:
		if (status != 'O') {
			client_fail(c, line);
			return;
		}
		samples_add(&login_lat, t1 - c->t0);
		send_cmd(c, OP_SELECT, "SELECT INBOX");
		c->state = C_SELECT;
		return;
	case C_SELECT:
		if (status != 'O') {
			client_fail(c, line);
			return;
		}
		if (c->role == R_IDLER) {
			/* set up once it idles */
			send_cmd(c, OP_IDLE, "IDLE");
			c->state = C_IDLE_START;
			return;
		}
		setup_done(c);
		set_up++;
		if (c->role == R_WRITER) {
			c->state = C_READY;
			writer_ready(c);
		} else {
			c->state = C_READY;
			if (phase != PH_SETUP)
				client_next(c);
		}
		maybe_start_more();
		return;
	case C_APPEND_CONT:
		/* the server refused the APPEND before the literal */
		note("client %d: APPEND refused: %.*s", c->id, (int)len, line);
		if (c->role == R_WRITER) {
			writer_append_done(c, false);
			return;
		}
		record(c, c->op, c->t0, t1, status);
		break;
	case C_CMD:
		if (status == 'B' && counts_bad[c->op] < 3)
			note("client %d: %s answered %.*s", c->id, op_names[c->op], (int)len, line);
		record(c, c->op, c->t0, t1, status);
		if (c->op == OP_FETCH_BODY && status == 'O' && !c->got_literal)
			body_literals_missing++;
		if (c->op == OP_APPEND && status == 'O') {
			const char *a = strstr(st, "[APPENDUID ");
			unsigned long v, uid;
			if (a != NULL && sscanf(a, "[APPENDUID %lu %lu]", &v, &uid) == 2) {
				if (c->role == R_WRITER) {
					writer_append_done(c, true);
					return;
				}
				if (c->nappended == c->capappended) {
					c->capappended = c->capappended ? c->capappended * 2 : 16;
					c->appended =
					    realloc(c->appended, c->capappended * sizeof(uint32_t));
				}
				c->appended[c->nappended++] = (uint32_t)uid;
			}
		}
		if (c->op == OP_STORE && status != 'O')
			c->expunge_uid = 0;
		if (c->role == R_WRITER) {
			writer_append_done(c, status == 'O');
			return;
		}
		break;
	case C_IDLE_DONE:
		record(c, OP_IDLE, c->t0 - c->idle_t, t1 - c->idle_t, status);
		break;
	case C_IDLE_START:
		/* IDLE refused */
		record(c, OP_IDLE, c->t0, t1, status);
		if (c->role == R_IDLER) {
			client_fail(c, line);
			return;
		}
		break;
	case C_LOGOUT:
		client_close(c, C_CLOSED);
		closed_clients++;
		return;
	default:
		note("client %d: tagged answer in state %d: %.*s", c->id, (int)c->state, (int)len,
		     line);
		return;
	}
	c->state = C_READY;
	client_next(c);
}

static void on_continuation(struct client *c)
{
	double t = now();
	if (c->state == C_APPEND_CONT) {
		write_message(c);
		c->state = C_CMD;
		if (c->role == R_WRITER)
			writer_append_sent(c);
	} else if (c->state == C_IDLE_START) {
		c->idle_t = t - c->t0; /* the server's time to answer IDLE */
		c->state = C_IDLING;
		if (c->role == R_IDLER) {
			idlers_ready++;
			idlers_per_user[c->user]++;
			setup_done(c);
			set_up++;
			maybe_start_more();
		} else {
			struct timeval tv = {opt.idle_ms / 1000, (opt.idle_ms % 1000) * 1000};
			if (c->timer == NULL)
				c->timer = evtimer_new(base, idle_timer_cb, c);
			evtimer_add(c->timer, &tv);
		}
	}
}

static void on_line(struct client *c, const char *line, size_t len)
{
	size_t lit;
	bool has_lit = literal_at_end(line, len, &lit);
	if (c->cont) {
		/* the rest of a response after a literal */
		if (has_lit) {
			c->lit_left = lit;
			literal_bytes += lit;
		} else {
			c->cont = false;
		}
		return;
	}
	if (has_lit) {
		c->lit_left = lit;
		c->cont = true;
		c->got_literal = true;
		literal_bytes += lit;
	}
	if (c->state == C_CONNECTING) {
		if (len >= 4 && strncmp(line, "* OK", 4) == 0) {
			send_cmd(c, OP_LOGIN, "LOGIN %s%d \"%s\"", opt.prefix, c->user,
				 opt.password);
			c->state = C_LOGIN;
		} else {
			client_fail(c, "no * OK greeting");
		}
		return;
	}
	if (len >= 2 && line[0] == '*' && line[1] == ' ')
		on_untagged(c, line, len);
	else if (len >= 1 && line[0] == '+')
		on_continuation(c);
	else
		on_tagged(c, line, len);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (c->bev != NULL) {
		if (c->lit_left > 0) {
			size_t have = evbuffer_get_length(in);
			size_t n = have < c->lit_left ? have : c->lit_left;
			evbuffer_drain(in, n);
			c->lit_left -= n;
			if (c->lit_left > 0)
				return;
			continue;
		}
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > 1 << 20)
				client_fail(c, "line over 1 MiB");
			return;
		}
		on_line(c, line, len);
		free(line);
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		char why[256] = "closed";
		if (what & BEV_EVENT_ERROR) {
			unsigned long e = bufferevent_get_openssl_error(bev);
			if (e != 0)
				ERR_error_string_n(e, why, sizeof(why));
			else
				snprintf(why, sizeof(why), "%s",
					 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		}
		client_fail(c, why);
	}
}

static void client_start(struct client *c)
{
	c->state = C_CONNECTING;
	c->exists = 0;
	c->cont = false;
	c->lit_left = 0;
	if (opt.tls) {
		SSL *ssl = SSL_new(ssl_ctx);
		c->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
							BEV_OPT_CLOSE_ON_FREE);
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	setting_up++;
	c->in_setup = true;
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&server_addr,
				       sizeof(server_addr)) < 0)
		client_fail(c, "connect failed");
}

static void maybe_start_more(void)
{
	while (setting_up < opt.parallel && next_to_connect < nclients)
		client_start(&clients[next_to_connect++]);
}

/* ---- idle mode: probes ---- */

static struct bufferevent *lmtp_bev;
static int lmtp_state;
enum { L_GREET, L_LHLO, L_IDLE, L_MAIL, L_RCPT, L_DATA, L_DOT };

static void probe_next(void);

static void probe_finish(void)
{
	if (!probe.active)
		return;
	probe.active = false;
	evtimer_del(probe.timer);
	probe.missed += probe.expected - probe.got;
	if (probe.got < probe.expected)
		note("probe %d: %d of %d idlers of %s%d did not see the message within %.0f s",
		     probe.k, probe.expected - probe.got, probe.expected, opt.prefix, probe.user,
		     opt.probe_timeout);
	probe.k++;
	struct timeval tv = {0, 100000};
	evtimer_add(probe.gap, &tv);
}

static void probe_on_exists(struct client *c)
{
	if (!probe.active || !probe.sent || c->user != probe.user || c->probe_seen == probe.id)
		return;
	c->probe_seen = probe.id;
	double d = now() - probe.t0;
	samples_add(&probe.all, d);
	if (probe.got == 0)
		samples_add(&probe.first, d);
	probe.got++;
	if (probe.got == probe.expected) {
		samples_add(&probe.last, d);
		probe_finish();
	}
}

static void probe_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	probe_finish();
}

static void probe_report(void)
{
	printf("{\"event\":\"probe\",\"kind\":\"%s\",\"probes\":%d,\"missed\":%ld,"
	       "\"idlers_dropped\":%d,\"all\":{",
	       probe.lmtp ? "lmtp" : "append", probe.K, probe.missed, idlers_dropped);
	json_lat(stdout, &probe.all);
	printf("},\"first\":{");
	json_lat(stdout, &probe.first);
	printf("},\"last\":{");
	json_lat(stdout, &probe.last);
	printf("},\"commit\":{");
	json_lat(stdout, &probe.commit);
	printf("}}\n");
	fflush(stdout);
}

static void lmtp_send(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(lmtp_bev), fmt, ap);
	va_end(ap);
}

static void lmtp_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		bool last = len < 4 || line[3] != '-';
		char code = line[0];
		if (!last) {
			free(line);
			continue;
		}
		if (code != '2' && code != '3') {
			note("lmtp: %.*s", (int)len, line);
			free(line);
			if (lmtp_state == L_DOT || lmtp_state == L_MAIL || lmtp_state == L_RCPT ||
			    lmtp_state == L_DATA) {
				lmtp_send("RSET\r\n");
				lmtp_state = L_IDLE;
				probe_finish();
			}
			continue;
		}
		free(line);
		switch (lmtp_state) {
		case L_GREET:
			lmtp_send("LHLO imap-load\r\n");
			lmtp_state = L_LHLO;
			break;
		case L_LHLO:
			lmtp_state = L_IDLE;
			probe_next();
			break;
		case L_MAIL:
			lmtp_send("RCPT TO:<%s%d@%s>\r\n", opt.prefix, probe.user, opt.domain);
			lmtp_state = L_RCPT;
			break;
		case L_RCPT:
			lmtp_send("DATA\r\n");
			lmtp_state = L_DATA;
			break;
		case L_DATA: {
			struct evbuffer *out = bufferevent_get_output(lmtp_bev);
			evbuffer_add(out, message_text, strlen(message_text));
			evbuffer_add(out, ".\r\n", 3);
			probe.t0 = now();
			probe.sent = true;
			lmtp_state = L_DOT;
			break;
		}
		case L_DOT:
			samples_add(&probe.commit, now() - probe.t0);
			lmtp_state = L_IDLE;
			break;
		default:
			break;
		}
	}
}

static void lmtp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		note("lmtp connection closed");
		bufferevent_free(lmtp_bev);
		lmtp_bev = NULL;
		probe.K = probe.k; /* give up */
		probe_finish();
	}
}

static void lmtp_connect(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", opt.lmtp);
	lmtp_bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(lmtp_bev, lmtp_read_cb, NULL, lmtp_event_cb, NULL);
	bufferevent_enable(lmtp_bev, EV_READ | EV_WRITE);
	lmtp_state = L_GREET;
	if (bufferevent_socket_connect(lmtp_bev, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		note("cannot connect to %s", opt.lmtp);
		exit(1);
	}
}

static void writer_append_sent(struct client *c)
{
	probe.t0 = now();
	probe.sent = true;
}

static void writer_append_done(struct client *c, bool ok)
{
	if (probe.active && ok)
		samples_add(&probe.commit, now() - probe.t0);
	c->state = C_READY;
	if (!ok)
		probe_finish();
}

static void probe_next(void)
{
	if (probe.k >= probe.K) {
		probe_report();
		return;
	}
	probe.id++;
	probe.user = probe.k % (opt.probe_users < opt.users ? opt.probe_users : opt.users);
	probe.expected = idlers_per_user[probe.user];
	probe.got = 0;
	probe.sent = false;
	probe.active = true;
	struct timeval tv = {(time_t)opt.probe_timeout,
			     (suseconds_t)((opt.probe_timeout - (time_t)opt.probe_timeout) * 1e6)};
	evtimer_add(probe.timer, &tv);
	if (probe.lmtp) {
		if (lmtp_bev == NULL || lmtp_state != L_IDLE) {
			probe_finish();
			return;
		}
		lmtp_send("MAIL FROM:<probe@example.org>\r\n");
		lmtp_state = L_MAIL;
	} else {
		struct client *w = &writers[probe.user];
		if (w->state != C_READY) {
			probe_finish();
			return;
		}
		send_cmd(w, OP_APPEND, "APPEND INBOX {%zu}", strlen(message_text));
		w->state = C_APPEND_CONT;
	}
}

static void probe_gap_cb(evutil_socket_t fd, short what, void *arg)
{
	probe_next();
}

static void writer_ready(struct client *c)
{
	(void)c;
	writers_ready++;
	if (writers_ready == nwriters)
		probe_next();
}

static void start_probes(bool lmtp, int K)
{
	probe.lmtp = lmtp;
	probe.k = 0;
	probe.K = K;
	probe.missed = 0;
	probe.all.n = probe.first.n = probe.last.n = probe.commit.n = 0;
	if (lmtp) {
		if (opt.lmtp == NULL) {
			note("probe lmtp needs --lmtp PATH");
			probe.K = 0;
			probe_report();
			return;
		}
		if (lmtp_bev == NULL)
			lmtp_connect();
		else
			probe_next();
		return;
	}
	if (writers == NULL) {
		nwriters = opt.probe_users < opt.users ? opt.probe_users : opt.users;
		writers = calloc((size_t)nwriters, sizeof(*writers));
		for (int i = 0; i < nwriters; i++) {
			writers[i].id = 1000000 + i;
			writers[i].role = R_WRITER;
			writers[i].user = i;
			writers[i].rng = opt.seed + 7919u * (unsigned)i + 1;
			client_start(&writers[i]);
		}
		return;
	}
	probe_next();
}

static char stdin_buf[4096];
static size_t stdin_len;

static void stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	ssize_t n = read(0, stdin_buf + stdin_len, sizeof(stdin_buf) - 1 - stdin_len);
	if (n <= 0) {
		note("standard input closed: exiting");
		exit(0);
	}
	stdin_len += (size_t)n;
	stdin_buf[stdin_len] = '\0';
	char *nl;
	while ((nl = strchr(stdin_buf, '\n')) != NULL) {
		*nl = '\0';
		int K;
		if (sscanf(stdin_buf, "probe append %d", &K) == 1)
			start_probes(false, K);
		else if (sscanf(stdin_buf, "probe lmtp %d", &K) == 1)
			start_probes(true, K);
		else if (strcmp(stdin_buf, "quit") == 0) {
			printf("{\"event\":\"bye\",\"idlers_dropped\":%d}\n", idlers_dropped);
			fflush(stdout);
			exit(0);
		} else if (strcmp(stdin_buf, "status") == 0) {
			printf("{\"event\":\"status\",\"idling\":%d,\"idlers_dropped\":%d}\n",
			       idlers_ready - idlers_dropped, idlers_dropped);
			fflush(stdout);
		}
		size_t used = (size_t)(nl - stdin_buf) + 1;
		memmove(stdin_buf, nl + 1, stdin_len - used + 1);
		stdin_len -= used;
	}
}

/* ---- the run ---- */

static bool ready_printed;

static void report_mixed(void)
{
	double window = t_measure1 - t_measure0;
	struct samples all = {0};
	for (int i = 0; i < OP_COUNT; i++)
		for (size_t k = 0; k < lat[i].n; k++)
			samples_add(&all, lat[i].v[k]);
	printf(
	    "{\"mode\":\"mixed\",\"clients\":%d,\"clients_ok\":%d,\"users\":%d,\"window_s\":%.3f,"
	    "\"commands\":%ld,\"cmd_per_s\":%.1f,\"disconnects\":%ld,\"setup_failures\":%d,"
	    "\"body_literals_missing\":%ld,\"idle_notifications\":%ld,\"literal_bytes\":%" PRIu64
	    ",\"setup_s\":%.3f,\"login\":{",
	    nclients, set_up, opt.users, window, measured_commands, measured_commands / window,
	    disconnects, failed_setup, body_literals_missing, notifications, literal_bytes,
	    t_run0 - t_begin);
	json_lat(stdout, &login_lat);
	printf("},\"all\":{");
	json_lat(stdout, &all);
	printf("},\"ops\":{");
	bool first = true;
	for (int i = 0; i < OP_DRAWN; i++) {
		printf("%s\"%s\":{\"ok\":%ld,\"no\":%ld,\"bad\":%ld,", first ? "" : ",",
		       op_names[i], counts_ok[i], counts_no[i], counts_bad[i]);
		json_lat(stdout, &lat[i]);
		printf("}");
		first = false;
	}
	printf("}}\n");
	fflush(stdout);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	double t = now();
	if (t - t_begin > opt.deadline) {
		note("deadline of %.0f s passed: giving up", opt.deadline);
		if (strcmp(opt.mode, "mixed") == 0 && phase >= PH_MEASURE) {
			if (t_measure1 == 0 || t_measure1 > t)
				t_measure1 = t;
			report_mixed();
		} else {
			printf("{\"event\":\"deadline\",\"idling\":%d,\"setup_failures\":%d}\n",
			       idlers_ready - idlers_dropped, failed_setup);
		}
		fflush(stdout);
		exit(2);
	}
	if (strcmp(opt.mode, "idle") == 0) {
		if (!ready_printed && setting_up == 0 && next_to_connect == nclients) {
			ready_printed = true;
			printf("{\"event\":\"ready\",\"idling\":%d,\"setup_failures\":%d,"
			       "\"setup_s\":%.3f,\"login\":{",
			       idlers_ready - idlers_dropped, failed_setup, t - t_begin);
			json_lat(stdout, &login_lat);
			printf("}}\n");
			fflush(stdout);
			struct event *ev = event_new(base, 0, EV_READ | EV_PERSIST, stdin_cb, NULL);
			event_add(ev, NULL);
		}
		return;
	}
	switch (phase) {
	case PH_SETUP:
		if (setting_up == 0 && next_to_connect == nclients) {
			if (set_up == 0) {
				note("no client could log in");
				report_mixed();
				exit(1);
			}
			phase = PH_WARMUP;
			t_run0 = t;
			t_measure0 = t + opt.warmup;
			t_measure1 = t_measure0 + opt.duration;
			for (int i = 0; i < nclients; i++)
				if (clients[i].state == C_READY)
					client_next(&clients[i]);
		}
		break;
	case PH_WARMUP:
		if (t >= t_measure0) {
			phase = PH_MEASURE;
			/* the driver samples the servers' CPU time at these lines */
			printf("{\"event\":\"measure-start\"}\n");
			fflush(stdout);
		}
		break;
	case PH_MEASURE:
		if (t >= t_measure1 ||
		    (opt.max_commands > 0 && measured_commands >= opt.max_commands)) {
			if (t < t_measure1)
				t_measure1 = t;
			phase = PH_STOP;
			printf("{\"event\":\"measure-end\"}\n");
			fflush(stdout);
			/* idle clients end their IDLE at their timer, then log out */
		}
		break;
	case PH_STOP: {
		int live = 0;
		for (int i = 0; i < nclients; i++)
			if (clients[i].state != C_CLOSED && clients[i].state != C_FAILED)
				live++;
		if (live == 0 || t > t_measure1 + 15) {
			if (live > 0)
				note("%d clients did not finish within 15 s of the end", live);
			report_mixed();
			exit(0);
		}
		break;
	}
	}
}

static void make_message(void)
{
	size_t size = (size_t)opt.msg_size;
	char head[512];
	int hl = snprintf(head, sizeof(head),
			  "From: Load Generator <loadgen@example.org>\r\n"
			  "To: someone@example.test\r\n"
			  "Subject: imap_load message\r\n"
			  "Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n"
			  "Message-ID: <imap-load.%d@example.org>\r\n"
			  "MIME-Version: 1.0\r\n"
			  "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
			  (int)getpid());
	const char *line = "a line of body text that the load generator appends to a mailbox\r\n";
	size_t ll = strlen(line);
	size_t n = size > (size_t)hl ? (size - (size_t)hl) / ll : 1;
	message_text = malloc((size_t)hl + n * ll + 1);
	memcpy(message_text, head, (size_t)hl);
	char *p = message_text + hl;
	for (size_t i = 0; i < n; i++, p += ll)
		memcpy(p, line, ll);
	/* no trailing CRLF: the literal ends with the last line's CRLF */
	*p = '\0';
}

static void usage(void)
{
	fprintf(stderr,
		"usage: imap_load mixed|idle --port P [--host H] [--plain] --password PW\n"
		"         [--prefix P] [--users N] [--clients C] [--connections M]\n"
		"         [--parallel N] [--warmup S] [--duration S] [--max-commands N]\n"
		"         [--idle-ms MS] [--msg-size B] [--weights s,ff,fb,st,se,ap,ex,id]\n"
		"         [--probe-users N] [--probe-timeout S] [--lmtp PATH] [--domain D]\n"
		"         [--deadline S] [--seed N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"host", 1, 0, 'h'},	  {"port", 1, 0, 'p'},
	    {"plain", 0, 0, 'P'},	  {"prefix", 1, 0, 'x'},
	    {"password", 1, 0, 'w'},	  {"users", 1, 0, 'u'},
	    {"clients", 1, 0, 'c'},	  {"connections", 1, 0, 'n'},
	    {"parallel", 1, 0, 'j'},	  {"warmup", 1, 0, 'W'},
	    {"duration", 1, 0, 'd'},	  {"max-commands", 1, 0, 'm'},
	    {"idle-ms", 1, 0, 'i'},	  {"msg-size", 1, 0, 's'},
	    {"weights", 1, 0, 'g'},	  {"probe-users", 1, 0, 'U'},
	    {"probe-timeout", 1, 0, 'T'}, {"lmtp", 1, 0, 'l'},
	    {"domain", 1, 0, 'D'},	  {"deadline", 1, 0, 'L'},
	    {"seed", 1, 0, 'S'},	  {0, 0, 0, 0},
	};
	if (argc < 2)
		usage();
	opt.mode = argv[1];
	if (strcmp(opt.mode, "mixed") != 0 && strcmp(opt.mode, "idle") != 0)
		usage();
	optind = 2;
	int ch;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			opt.host = optarg;
			break;
		case 'p':
			opt.port = atoi(optarg);
			break;
		case 'P':
			opt.tls = false;
			break;
		case 'x':
			opt.prefix = optarg;
			break;
		case 'w':
			opt.password = optarg;
			break;
		case 'u':
			opt.users = atoi(optarg);
			break;
		case 'c':
			opt.clients = atoi(optarg);
			break;
		case 'n':
			opt.connections = atoi(optarg);
			break;
		case 'j':
			opt.parallel = atoi(optarg);
			break;
		case 'W':
			opt.warmup = atof(optarg);
			break;
		case 'd':
			opt.duration = atof(optarg);
			break;
		case 'm':
			opt.max_commands = atol(optarg);
			break;
		case 'i':
			opt.idle_ms = atoi(optarg);
			break;
		case 's':
			opt.msg_size = atoi(optarg);
			break;
		case 'g':
			if (sscanf(optarg, "%d,%d,%d,%d,%d,%d,%d,%d", &opt.weights[0],
				   &opt.weights[1], &opt.weights[2], &opt.weights[3],
				   &opt.weights[4], &opt.weights[5], &opt.weights[6],
				   &opt.weights[7]) != 8)
				usage();
			break;
		case 'U':
			opt.probe_users = atoi(optarg);
			break;
		case 'T':
			opt.probe_timeout = atof(optarg);
			break;
		case 'l':
			opt.lmtp = optarg;
			break;
		case 'D':
			opt.domain = optarg;
			break;
		case 'L':
			opt.deadline = atof(optarg);
			break;
		case 'S':
			opt.seed = (unsigned)atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (opt.port <= 0 || opt.users < 1 || opt.parallel < 1)
		usage();
	signal(SIGPIPE, SIG_IGN);

	/* as many descriptors as the hard limit allows */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	memset(&server_addr, 0, sizeof(server_addr));
	server_addr.sin_family = AF_INET;
	server_addr.sin_port = htons((uint16_t)opt.port);
	if (inet_pton(AF_INET, opt.host, &server_addr.sin_addr) != 1) {
		note("--host takes an IPv4 address");
		return 2;
	}
	ssl_ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
	make_message();

	base = event_base_new();
	struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	struct timeval tv = {0, 50000};
	event_add(tick, &tv);

	bool idle = strcmp(opt.mode, "idle") == 0;
	nclients = idle ? opt.connections : opt.clients;
	clients = calloc((size_t)nclients, sizeof(*clients));
	idlers_per_user = calloc((size_t)opt.users, sizeof(int));
	probe.timer = evtimer_new(base, probe_timeout_cb, NULL);
	probe.gap = evtimer_new(base, probe_gap_cb, NULL);
	for (int i = 0; i < nclients; i++) {
		clients[i].id = i;
		clients[i].role = idle ? R_IDLER : R_WORKER;
		clients[i].user = i % opt.users;
		clients[i].rng = opt.seed * 2654435761u + (unsigned)i * 40503u + 1;
		clients[i].probe_seen = -1;
	}
	t_begin = now();
	maybe_start_more();
	event_base_dispatch(base);
	return 0;
}
