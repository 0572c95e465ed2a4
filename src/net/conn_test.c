#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/xalloc.h"
#include "net/conn.h"
#include "net/net.h"
#include "net/test_cert.h"
#include "net/tls.h"

#define HOST "mail.postern.test"

static char *tmpdir, *cert_path, *key_path;
static struct tls_server *tls;
static SSL_CTX *client_ctx;

/* One side of a test: a conn and, for most tests, the peer socket driven
 * by the same event loop (non-blocking), or by a client thread. */
struct harness {
	struct event_base *base;
	bool own_base;
	struct conn *conn;
	int peer;
	struct event *peer_rd, *peer_wr, *ticker, *resume_timer;

	/* peer output: head, then gen_left copies of gen_byte, then tail */
	const char *head;
	size_t head_len, head_pos;
	size_t gen_left;
	char gen_byte;
	const char *tail;
	size_t tail_len, tail_pos;
	bool shutdown_after_write;

	/* peer input */
	char *in;
	size_t in_len, in_cap;
	bool peer_eof;

	/* what the conn reported */
	char log[16384];
	size_t log_len;
	int ready, pressure_on, pressure_off;
	bool closed;
	enum conn_close_reason reason;
	char detail[256];
	char peer_at_ready[128], local_at_ready[128];
	bool tls_at_ready;
	size_t max_input_buffered, max_raw_chunk, raw_total;
	char raw[64];
	size_t raw_len;

	/* behaviour */
	const char *greeting;
	bool echo;
	size_t big_left; /* "BIG": produce this much, honouring back-pressure */
	void (*on_line)(struct harness *h, const char *line);
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

#define RUN_UNTIL(h, expr, ms)                                                                     \
	do {                                                                                       \
		double t0_ = now_ms();                                                             \
		while (!(expr) && now_ms() - t0_ < (ms))                                           \
			event_base_loop((h)->base, EVLOOP_ONCE);                                   \
	} while (0)

static void run_for(struct harness *h, double ms)
{
	double t0 = now_ms();
	while (now_ms() - t0 < ms)
		event_base_loop(h->base, EVLOOP_ONCE);
}

static void logf_(struct harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct harness *h, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(h->log + h->log_len, sizeof(h->log) - h->log_len, fmt, ap);
	va_end(ap);
	if (n > 0 && h->log_len + (size_t)n < sizeof(h->log))
		h->log_len += (size_t)n;
}

static void track_input(struct harness *h)
{
	if (h->conn != NULL && conn_input_buffered(h->conn) > h->max_input_buffered)
		h->max_input_buffered = conn_input_buffered(h->conn);
}

static void produce_big(struct harness *h)
{
	static char chunk[16384];
	memset(chunk, 'F', sizeof(chunk));
	while (h->big_left > 0 && h->conn != NULL && !conn_output_blocked(h->conn)) {
		size_t n = h->big_left < sizeof(chunk) ? h->big_left : sizeof(chunk);
		assert_int_equal(conn_write(h->conn, chunk, n), 0);
		h->big_left -= n;
	}
}

static size_t literal_size(const char *line, size_t len)
{
	const char *open = memchr(line, '{', len);
	if (open == NULL || len < 3 || line[len - 1] != '}')
		return 0;
	return (size_t)strtoul(open + 1, NULL, 10);
}

static void cb_ready(struct conn *conn, void *ctx)
{
	struct harness *h = ctx;
	h->ready++;
	snprintf(h->peer_at_ready, sizeof(h->peer_at_ready), "%s", conn_peer(conn));
	snprintf(h->local_at_ready, sizeof(h->local_at_ready), "%s", conn_local(conn));
	h->tls_at_ready = conn_tls_active(conn);
	if (h->greeting != NULL)
		conn_printf(conn, "%s\r\n", h->greeting);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;
	if (h->conn != NULL)
		conn_input_resume(h->conn);
}

static void cb_line(struct conn *conn, char *line, size_t len, void *ctx)
{
	struct harness *h = ctx;
	track_input(h);
	logf_(h, "L:%s|", line);
	if (strcmp(line, "STARTTLS") == 0) {
		const char *error;
		conn_write(conn, "OK begin\r\n", 10);
		assert_int_equal(conn_starttls(conn, tls_server_ctx(tls), &error), 0);
		/* a second upgrade is refused */
		assert_int_equal(conn_starttls(conn, tls_server_ctx(tls), &error), -1);
	} else if (strcmp(line, "BIG") == 0) {
		produce_big(h);
	} else if (strcmp(line, "DUMPQUIT") == 0) {
		/* a protocol ignoring back-pressure, then closing */
		char *big = xmalloc(2 * 1024 * 1024);
		memset(big, 'D', 2 * 1024 * 1024);
		conn_write(conn, big, 2 * 1024 * 1024);
		free(big);
		conn_close_after_flush(conn);
		assert_int_equal(conn_write(conn, "x", 1), -1);
	} else if (strcmp(line, "QUIT") == 0) {
		conn_write(conn, "BYE\r\n", 5);
		conn_close_after_flush(conn);
	} else if (strcmp(line, "FREE") == 0) {
		conn_free(&h->conn);
	} else if (strcmp(line, "WAIT") == 0) {
		conn_input_pause(conn);
		struct timeval tv = {0, 100 * 1000};
		evtimer_add(h->resume_timer, &tv);
	} else if (strcmp(line, "POSTAUTH") == 0) {
		conn_set_idle_timeout(conn, 10000);
	} else if (literal_size(line, len) > 0) {
		conn_read_raw(conn, literal_size(line, len));
	} else if (h->echo) {
		conn_printf(conn, "ECHO %s %s\r\n", line, conn_tls_active(conn) ? "TLS" : "PLAIN");
	}
	if (h->on_line != NULL && h->conn != NULL)
		h->on_line(h, line);
}

static void cb_too_long(struct conn *conn, void *ctx)
{
	struct harness *h = ctx;
	track_input(h);
	logf_(h, "T|");
	conn_write(conn, "BAD too long\r\n", 14);
}

static void cb_raw(struct conn *conn, const unsigned char *data, size_t len, size_t remaining,
		   void *ctx)
{
	struct harness *h = ctx;
	track_input(h);
	if (len > h->max_raw_chunk)
		h->max_raw_chunk = len;
	h->raw_total += len;
	for (size_t i = 0; i < len && h->raw_len < 16; i++)
		h->raw[h->raw_len++] = (char)data[i];
	if (remaining == 0) {
		logf_(h, "R:%.*s|", (int)h->raw_len, h->raw);
		h->raw_len = 0;
	}
}

static void cb_pressure(struct conn *conn, bool blocked, void *ctx)
{
	struct harness *h = ctx;
	logf_(h, blocked ? "P1|" : "P0|");
	if (blocked)
		h->pressure_on++;
	else
		h->pressure_off++;
	if (!blocked)
		produce_big(h);
}

static void cb_starttls_done(struct conn *conn, void *ctx)
{
	struct harness *h = ctx;
	assert_true(conn_tls_active(conn));
	assert_non_null(conn_tls_version(conn));
	assert_non_null(conn_tls_cipher(conn));
	assert_non_null(conn_ssl(conn));
	logf_(h, "S|");
}

static void cb_timeout(struct conn *conn, void *ctx)
{
	struct harness *h = ctx;
	logf_(h, "TO|");
	conn_write(conn, "* BYE Autologout\r\n", 18);
}

static void cb_closed(struct conn *conn, enum conn_close_reason reason, const char *detail,
		      void *ctx)
{
	struct harness *h = ctx;
	logf_(h, "C:%s|", conn_close_reason_str(reason));
	h->closed = true;
	h->reason = reason;
	snprintf(h->detail, sizeof(h->detail), "%s", detail);
	assert_false(conn_is_open(conn));
	assert_int_equal(conn_write(conn, "x", 1), -1);
	/* freeing inside the callback is allowed */
	conn_free(&h->conn);
}

static const struct conn_callbacks callbacks = {
    .ready = cb_ready,
    .line = cb_line,
    .line_too_long = cb_too_long,
    .raw = cb_raw,
    .output_pressure = cb_pressure,
    .starttls_done = cb_starttls_done,
    .timeout = cb_timeout,
    .closed = cb_closed,
};

static void peer_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;
	static char chunk[65536];
	track_input(h);
	for (;;) {
		const char *p;
		size_t n;
		if (h->head_pos < h->head_len) {
			p = h->head + h->head_pos;
			n = h->head_len - h->head_pos;
		} else if (h->gen_left > 0) {
			memset(chunk, h->gen_byte, sizeof(chunk));
			p = chunk;
			n = h->gen_left < sizeof(chunk) ? h->gen_left : sizeof(chunk);
		} else if (h->tail_pos < h->tail_len) {
			p = h->tail + h->tail_pos;
			n = h->tail_len - h->tail_pos;
		} else {
			event_del(h->peer_wr);
			if (h->shutdown_after_write)
				shutdown(h->peer, SHUT_WR);
			return;
		}
		ssize_t w = write(h->peer, p, n);
		if (w < 0) {
			if (errno == EAGAIN)
				return;
			event_del(h->peer_wr);
			return;
		}
		if (h->head_pos < h->head_len)
			h->head_pos += (size_t)w;
		else if (h->gen_left > 0)
			h->gen_left -= (size_t)w;
		else
			h->tail_pos += (size_t)w;
	}
}

static void peer_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;
	char buf[65536];
	ssize_t n = read(h->peer, buf, sizeof(buf));
	if (n == 0 || (n < 0 && errno != EAGAIN)) {
		h->peer_eof = true;
		event_del(h->peer_rd);
		return;
	}
	if (n < 0)
		return;
	/* keep only the first 64 KiB of text, count the rest */
	size_t keep = (size_t)n;
	if (h->in_len < 65536) {
		if (h->in_len + keep > 65536)
			keep = 65536 - h->in_len;
		if (h->in_len + keep + 1 > h->in_cap) {
			h->in_cap = h->in_len + keep + 1 + 4096;
			h->in = xrealloc(h->in, h->in_cap);
		}
		memcpy(h->in + h->in_len, buf, keep);
		h->in[h->in_len + keep] = '\0';
	}
	h->in_len += (size_t)n;
}

static void ticker_cb(evutil_socket_t fd, short what, void *arg)
{
	track_input(arg);
}

static void harness_init(struct harness *h, struct event_base *base)
{
	memset(h, 0, sizeof(*h));
	h->base = base != NULL ? base : event_base_new();
	h->own_base = base == NULL;
	h->peer = -1;
	h->in = xcalloc(1, 1);
	h->in_cap = 1;
	h->ticker = event_new(h->base, -1, EV_PERSIST, ticker_cb, h);
	struct timeval tv = {0, 10 * 1000};
	event_add(h->ticker, &tv);
	h->resume_timer = evtimer_new(h->base, resume_cb, h);
}

static void harness_conn(struct harness *h, int fd, const struct conn_settings *set)
{
	char *error = NULL;
	struct conn_settings def = {.service = "test"};
	h->conn = conn_new(h->base, fd, set != NULL ? set : &def, &callbacks, h, &error);
	assert_non_null(h->conn);
	assert_int_equal(strlen(conn_session_id(h->conn)), CONN_SESSION_ID_LEN);
	assert_ptr_equal(conn_log(h->conn)->session, conn_session_id(h->conn));
}

/* the peer end of a socket pair, driven by the loop */
static void harness_peer(struct harness *h, int fd, bool reading)
{
	h->peer = fd;
	assert_int_equal(net_set_nonblock_cloexec(fd), 0);
	h->peer_rd = event_new(h->base, fd, EV_READ | EV_PERSIST, peer_read_cb, h);
	h->peer_wr = event_new(h->base, fd, EV_WRITE | EV_PERSIST, peer_write_cb, h);
	if (reading)
		event_add(h->peer_rd, NULL);
}

static void harness_send(struct harness *h, const char *data, size_t len)
{
	h->head = data;
	h->head_len = len;
	h->head_pos = 0;
	event_add(h->peer_wr, NULL);
}

static void harness_pair(struct harness *h, const struct conn_settings *set, bool peer_reading)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	harness_init(h, NULL);
	harness_peer(h, sv[1], peer_reading);
	harness_conn(h, sv[0], set);
}

static void harness_deinit(struct harness *h)
{
	conn_free(&h->conn);
	if (h->peer_rd != NULL)
		event_free(h->peer_rd);
	if (h->peer_wr != NULL)
		event_free(h->peer_wr);
	event_free(h->ticker);
	event_free(h->resume_timer);
	if (h->peer >= 0)
		close(h->peer);
	free(h->in);
	if (h->own_base)
		event_base_free(h->base);
}

#define SEND(h, s) harness_send(h, s, sizeof(s) - 1)

static void test_lines_trickled(void **state)
{
	static const char input[] = "A1 NOOP\r\nA2 LOGIN x y\nA3\r\n\r\n";
	const char *expect = "L:A1 NOOP|L:A2 LOGIN x y|L:A3|L:|";
	struct harness h;

	/* one byte per write, the loop running between bytes */
	harness_pair(&h, NULL, true);
	for (size_t i = 0; i < sizeof(input) - 1; i++) {
		assert_int_equal(write(h.peer, input + i, 1), 1);
		for (int k = 0; k < 3; k++)
			event_base_loop(h.base, EVLOOP_NONBLOCK);
	}
	RUN_UNTIL(&h, strcmp(h.log, expect) == 0, 2000);
	assert_string_equal(h.log, expect);
	assert_int_equal(h.ready, 1);
	harness_deinit(&h);

	/* two writes split at every byte boundary */
	for (size_t k = 1; k < sizeof(input) - 1; k++) {
		harness_pair(&h, NULL, true);
		assert_int_equal(write(h.peer, input, k), (ssize_t)k);
		run_for(&h, 1);
		assert_int_equal(write(h.peer, input + k, sizeof(input) - 1 - k),
				 (ssize_t)(sizeof(input) - 1 - k));
		RUN_UNTIL(&h, strcmp(h.log, expect) == 0, 2000);
		assert_string_equal(h.log, expect);
		harness_deinit(&h);
	}
}

static void test_greeting_echo_quit(void **state)
{
	struct harness h;
	harness_pair(&h, NULL, true);
	h.greeting = "OK ready";
	h.echo = true;
	SEND(&h, "CAPA\r\nQUIT\r\nNOOP\r\n");
	RUN_UNTIL(&h, h.closed && h.peer_eof, 2000);
	/* input after QUIT is discarded; the reply is flushed before close */
	assert_string_equal(h.log, "L:CAPA|L:QUIT|C:local|");
	assert_string_equal(h.in, "OK ready\r\nECHO CAPA PLAIN\r\nBYE\r\n");
	assert_int_equal(h.reason, CONN_CLOSE_LOCAL);
	assert_null(h.conn);
	harness_deinit(&h);
}

static void test_too_long_line(void **state)
{
	struct harness h;
	struct conn_settings set = {.service = "test", .max_line = 16};
	harness_pair(&h, &set, true);
	h.echo = true;
	SEND(&h, "short\r\n0123456789012345678901234567890123456789\r\nnext\r\n");
	RUN_UNTIL(&h, strstr(h.in, "ECHO next") != NULL, 2000);
	assert_string_equal(h.log, "L:short|T|L:next|");
	assert_string_equal(h.in, "ECHO short PLAIN\r\nBAD too long\r\nECHO next PLAIN\r\n");

	/* a larger bound applies from the next line on */
	conn_set_max_line(h.conn, 64);
	SEND(&h, "0123456789012345678901234567890123456789\r\n");
	RUN_UNTIL(&h, strstr(h.log, "L:0123") != NULL, 2000);
	assert_non_null(strstr(h.log, "L:0123456789012345678901234567890123456789|"));
	harness_deinit(&h);
}

static void test_huge_line_bounded(void **state)
{
	struct harness h;
	struct conn_settings set = {.service = "test", .max_line = 1024};
	harness_pair(&h, &set, true);
	h.echo = true;
	h.gen_left = 10 * 1024 * 1024;
	h.gen_byte = 'a';
	h.tail = "\r\nNEXT\r\n";
	h.tail_len = 8;
	event_add(h.peer_wr, NULL);
	RUN_UNTIL(&h, strstr(h.log, "L:NEXT|") != NULL, 20000);
	assert_string_equal(h.log, "T|L:NEXT|");
	assert_int_equal(h.gen_left, 0);
	/* never more than the input bound plus one line held */
	assert_true(h.max_input_buffered <= CONN_INPUT_HIGH + 1024 + 1);
	assert_true(h.max_input_buffered > 0);
	RUN_UNTIL(&h, strstr(h.in, "ECHO NEXT") != NULL, 2000);
	assert_string_equal(h.in, "BAD too long\r\nECHO NEXT PLAIN\r\n");
	harness_deinit(&h);
}

static void test_literal(void **state)
{
	static const char input[] = "A1 APPEND {10}\r\n0123456789 tail\r\nA2 NOOP\r\n";
	struct harness h;
	harness_pair(&h, NULL, true);
	for (size_t i = 0; i < sizeof(input) - 1; i++) {
		assert_int_equal(write(h.peer, input + i, 1), 1);
		for (int k = 0; k < 3; k++)
			event_base_loop(h.base, EVLOOP_NONBLOCK);
	}
	RUN_UNTIL(&h, strstr(h.log, "L:A2 NOOP|") != NULL, 2000);
	assert_string_equal(h.log, "L:A1 APPEND {10}|R:0123456789|L: tail|L:A2 NOOP|");
	/* trickled bytes are handed on as they come */
	assert_int_equal(h.max_raw_chunk, 1);
	harness_deinit(&h);

	/* a 4 MiB literal is delivered in chunks, never held whole */
	harness_pair(&h, NULL, true);
	h.head = "A2 APPEND {4194304}\r\n";
	h.head_len = strlen(h.head);
	h.gen_left = 4194304;
	h.gen_byte = 'z';
	h.tail = "\r\nA3 NOOP\r\n";
	h.tail_len = strlen(h.tail);
	event_add(h.peer_wr, NULL);
	RUN_UNTIL(&h, strstr(h.log, "L:A3 NOOP|") != NULL, 20000);
	assert_string_equal(h.log, "L:A2 APPEND {4194304}|R:zzzzzzzzzzzzzzzz|L:|L:A3 NOOP|");
	assert_int_equal(h.raw_total, 4194304);
	assert_true(h.max_raw_chunk <= CONN_INPUT_HIGH);
	assert_true(h.max_input_buffered <= CONN_INPUT_HIGH + CONN_DEFAULT_MAX_LINE + 1);
	harness_deinit(&h);
}

static void test_backpressure(void **state)
{
	struct harness h;
	struct conn_settings set = {.service = "test", .output_high = 64 * 1024};
	harness_pair(&h, &set, false);
	h.big_left = 1024 * 1024;
	SEND(&h, "BIG\r\n");
	/* until the socket buffer is full, output drains to half and the
	 * producer refills; then it stays blocked */
	RUN_UNTIL(&h, h.pressure_on >= 1, 2000);
	run_for(&h, 300);
	assert_true(conn_output_blocked(h.conn));
	assert_true(conn_output_pending(h.conn) > 32 * 1024);
	assert_true(h.big_left > 0);
	int on = h.pressure_on, off = h.pressure_off;
	assert_int_equal(on, off + 1);

	/* the peer does not read: its next command is not read either */
	SEND(&h, "NEXT\r\n");
	run_for(&h, 200);
	assert_null(strstr(h.log, "L:NEXT"));
	assert_int_equal(conn_input_buffered(h.conn), 0);
	assert_int_equal(h.pressure_on, on);
	assert_int_equal(h.pressure_off, off);

	/* the peer reads: output drains, production resumes, then input */
	event_add(h.peer_rd, NULL);
	RUN_UNTIL(&h, strstr(h.log, "L:NEXT|") != NULL, 10000);
	assert_non_null(strstr(h.log, "L:NEXT|"));
	assert_int_equal(h.big_left, 0);
	assert_int_equal(h.pressure_on, h.pressure_off);
	assert_true(strstr(h.log, "L:NEXT|") > strrchr(h.log, '1'));
	RUN_UNTIL(&h, h.in_len >= 1024 * 1024, 5000);
	assert_int_equal(h.in_len, 1024 * 1024);
	harness_deinit(&h);
}

static void test_idle_timeout(void **state)
{
	struct harness h;
	struct conn_settings set = {.service = "test", .idle_timeout_ms = 100};
	harness_pair(&h, &set, true);
	double t0 = now_ms();
	RUN_UNTIL(&h, h.closed && h.peer_eof, 3000);
	assert_true(now_ms() - t0 >= 90);
	assert_string_equal(h.log, "TO|C:timeout|");
	assert_int_equal(h.reason, CONN_CLOSE_TIMEOUT);
	assert_string_equal(h.in, "* BYE Autologout\r\n");
	harness_deinit(&h);

	/* post-auth: a longer timeout set from a command, then a shorter */
	set.idle_timeout_ms = 150;
	harness_pair(&h, &set, true);
	SEND(&h, "POSTAUTH\r\n");
	run_for(&h, 400);
	assert_false(h.closed);
	conn_set_idle_timeout(h.conn, 50);
	RUN_UNTIL(&h, h.closed, 3000);
	assert_string_equal(h.log, "L:POSTAUTH|TO|C:timeout|");
	harness_deinit(&h);

	/* bytes trickled without ever ending a line do not keep it alive */
	set.idle_timeout_ms = 200;
	harness_pair(&h, &set, true);
	t0 = now_ms();
	for (int i = 0; i < 40 && !h.closed; i++) {
		assert_int_equal(write(h.peer, "x", 1), 1);
		run_for(&h, 20);
	}
	assert_true(h.closed);
	assert_true(now_ms() - t0 < 600);
	harness_deinit(&h);
}

static void test_flush_timeout(void **state)
{
	struct harness h;
	struct conn_settings set = {.service = "test", .flush_timeout_ms = 200};
	harness_pair(&h, &set, false);
	SEND(&h, "DUMPQUIT\r\n");
	double t0 = now_ms();
	RUN_UNTIL(&h, h.closed, 3000);
	assert_true(h.closed);
	assert_int_equal(h.reason, CONN_CLOSE_LOCAL);
	assert_true(now_ms() - t0 >= 150);
	assert_true(now_ms() - t0 < 2000);
	harness_deinit(&h);
}

static void test_eof_after_pipeline(void **state)
{
	struct harness h;
	harness_pair(&h, NULL, true);
	h.echo = true;
	h.shutdown_after_write = true;
	SEND(&h, "A\r\nB\r\npartial");
	RUN_UNTIL(&h, h.closed && h.peer_eof, 2000);
	/* complete lines are served and their replies flushed, then close */
	assert_string_equal(h.log, "L:A|L:B|C:eof|");
	assert_string_equal(h.in, "ECHO A PLAIN\r\nECHO B PLAIN\r\n");
	harness_deinit(&h);
}

static void test_pause_resume(void **state)
{
	struct harness h;
	harness_pair(&h, NULL, true);
	SEND(&h, "WAIT\r\nX\r\nY\r\n");
	run_for(&h, 50);
	assert_string_equal(h.log, "L:WAIT|");
	RUN_UNTIL(&h, strstr(h.log, "L:Y|") != NULL, 2000);
	assert_string_equal(h.log, "L:WAIT|L:X|L:Y|");
	harness_deinit(&h);
}

static void test_free_inside_callback(void **state)
{
	struct harness h;
	harness_pair(&h, NULL, true);
	SEND(&h, "A\r\nFREE\r\nB\r\n");
	RUN_UNTIL(&h, h.peer_eof, 2000);
	assert_string_equal(h.log, "L:A|L:FREE|");
	assert_null(h.conn);
	assert_true(h.peer_eof);
	harness_deinit(&h);
}

/* the TLS client, run in a thread with a blocking socket */
struct client {
	int fd;
	const char *proxy;
	size_t proxy_len;
	bool implicit;
	const char *starttls_cmd; /* sent in plaintext before the upgrade */
	const char *host;
	char transcript[1024];
	atomic_int done;
};

static void client_add(struct client *c, const char *text)
{
	size_t len = strlen(c->transcript);
	snprintf(c->transcript + len, sizeof(c->transcript) - len, "%s|", text);
}

static int plain_read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	while (n + 1 < size) {
		char ch;
		if (read(fd, &ch, 1) != 1)
			return -1;
		if (ch == '\n')
			break;
		if (ch != '\r')
			buf[n++] = ch;
	}
	buf[n] = '\0';
	return 0;
}

static int ssl_read_line(SSL *ssl, char *buf, size_t size)
{
	size_t n = 0;
	while (n + 1 < size) {
		char ch;
		if (SSL_read(ssl, &ch, 1) != 1)
			return -1;
		if (ch == '\n')
			break;
		if (ch != '\r')
			buf[n++] = ch;
	}
	buf[n] = '\0';
	return 0;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	char line[512];
	SSL *ssl = NULL;

	if (c->proxy_len > 0 && write(c->fd, c->proxy, c->proxy_len) != (ssize_t)c->proxy_len)
		goto out;
	if (!c->implicit) {
		if (plain_read_line(c->fd, line, sizeof(line)) < 0)
			goto out;
		client_add(c, line);
		size_t len = strlen(c->starttls_cmd);
		if (write(c->fd, c->starttls_cmd, len) != (ssize_t)len)
			goto out;
		if (plain_read_line(c->fd, line, sizeof(line)) < 0)
			goto out;
		client_add(c, line);
	}
	ssl = SSL_new(client_ctx);
	SSL_set_fd(ssl, c->fd);
	SSL_set_tlsext_host_name(ssl, c->host);
	SSL_set1_host(ssl, c->host);
	if (SSL_connect(ssl) != 1) {
		client_add(c, "HANDSHAKE-FAILED");
		goto out;
	}
	if (c->implicit) {
		if (ssl_read_line(ssl, line, sizeof(line)) < 0)
			goto out;
		client_add(c, line);
	}
	SSL_write(ssl, "CAPA\r\n", 6);
	if (ssl_read_line(ssl, line, sizeof(line)) < 0)
		goto out;
	client_add(c, line);
	SSL_write(ssl, "QUIT\r\n", 6);
	if (ssl_read_line(ssl, line, sizeof(line)) < 0)
		goto out;
	client_add(c, line);
	char ch;
	if (SSL_read(ssl, &ch, 1) <= 0)
		client_add(c, "EOF");
out:
	if (ssl != NULL)
		SSL_free(ssl);
	ERR_clear_error();
	atomic_store(&c->done, 1);
	return NULL;
}

static void client_start(struct client *c, pthread_t *thread, int fd)
{
	c->fd = fd;
	if (c->host == NULL)
		c->host = HOST;
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(pthread_create(thread, NULL, client_main, c), 0);
}

static void test_starttls(void **state)
{
	int sv[2];
	struct harness h;
	struct client c = {.starttls_cmd = "STARTTLS\r\n"};
	pthread_t thread;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	harness_init(&h, NULL);
	h.greeting = "OK ready";
	h.echo = true;
	harness_conn(&h, sv[0], NULL);
	client_start(&c, &thread, sv[1]);
	RUN_UNTIL(&h, atomic_load(&c.done) && h.closed, 10000);
	pthread_join(thread, NULL);
	assert_string_equal(c.transcript, "OK ready|OK begin|ECHO CAPA TLS|BYE|EOF|");
	assert_string_equal(h.log, "L:STARTTLS|S|L:CAPA|L:QUIT|C:local|");
	close(sv[1]);
	harness_deinit(&h);
}

static void test_starttls_injection(void **state)
{
	int sv[2];
	struct harness h;
	/* NOOP travels in the same packet as STARTTLS, in plaintext */
	struct client c = {.starttls_cmd = "STARTTLS\r\nNOOP\r\n"};
	pthread_t thread;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	harness_init(&h, NULL);
	h.greeting = "OK ready";
	h.echo = true;
	harness_conn(&h, sv[0], NULL);
	client_start(&c, &thread, sv[1]);
	RUN_UNTIL(&h, atomic_load(&c.done) && h.closed, 10000);
	pthread_join(thread, NULL);
	/* NOOP is never delivered, neither before nor after the upgrade */
	assert_string_equal(h.log, "L:STARTTLS|S|L:CAPA|L:QUIT|C:local|");
	assert_string_equal(c.transcript, "OK ready|OK begin|ECHO CAPA TLS|BYE|EOF|");
	close(sv[1]);
	harness_deinit(&h);
}

static void test_implicit_tls(void **state)
{
	int sv[2];
	struct harness h;
	struct client c = {.implicit = true};
	pthread_t thread;
	struct conn_settings set = {.service = "test", .tls_ctx = tls_server_ctx(tls)};

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	harness_init(&h, NULL);
	h.greeting = "OK ready";
	h.echo = true;
	harness_conn(&h, sv[0], &set);
	client_start(&c, &thread, sv[1]);
	RUN_UNTIL(&h, atomic_load(&c.done) && h.closed, 10000);
	pthread_join(thread, NULL);
	assert_string_equal(c.transcript, "OK ready|ECHO CAPA TLS|BYE|EOF|");
	assert_string_equal(h.log, "L:CAPA|L:QUIT|C:local|");
	assert_true(h.tls_at_ready);
	close(sv[1]);
	harness_deinit(&h);
}

static void test_tls_handshake_failure(void **state)
{
	struct harness h;
	struct conn_settings set = {.service = "test", .tls_ctx = tls_server_ctx(tls)};
	harness_pair(&h, &set, true);
	SEND(&h, "A1 CAPABILITY\r\n");
	RUN_UNTIL(&h, h.closed, 3000);
	assert_int_equal(h.reason, CONN_CLOSE_TLS_FAILED);
	assert_int_equal(h.ready, 0);
	assert_true(h.detail[0] != '\0');
	harness_deinit(&h);
}

static void test_tls_client_conn(void **state)
{
	int sv[2];
	struct harness server, client;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	harness_init(&server, NULL);
	harness_init(&client, server.base);
	server.greeting = "OK ready";
	server.echo = true;
	struct conn_settings sset = {.service = "imap4-backend", .tls_ctx = tls_server_ctx(tls)};
	struct conn_settings cset = {
	    .service = "imap4", .client = true, .tls_ctx = client_ctx, .tls_server_name = HOST};
	harness_conn(&server, sv[0], &sset);
	harness_conn(&client, sv[1], &cset);
	RUN_UNTIL(&server, strstr(client.log, "L:OK ready|") != NULL, 5000);
	assert_true(client.tls_at_ready);
	assert_int_equal(conn_printf(client.conn, "%s\r\n", "CAPA"), 0);
	RUN_UNTIL(&server, strstr(client.log, "L:ECHO CAPA TLS|") != NULL, 5000);
	conn_close_after_flush(client.conn);
	RUN_UNTIL(&server, server.closed && client.closed, 5000);
	assert_string_equal(server.log, "L:CAPA|C:eof|");
	assert_string_equal(client.log, "L:OK ready|L:ECHO CAPA TLS|C:local|");
	harness_deinit(&client);
	harness_deinit(&server);

	/* the client verifies the name it expects */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	harness_init(&server, NULL);
	harness_init(&client, server.base);
	cset.tls_server_name = "other.postern.test";
	harness_conn(&server, sv[0], &sset);
	harness_conn(&client, sv[1], &cset);
	RUN_UNTIL(&server, server.closed && client.closed, 5000);
	assert_int_equal(client.reason, CONN_CLOSE_TLS_FAILED);
	assert_int_equal(client.ready, 0);
	harness_deinit(&client);
	harness_deinit(&server);
}

/* PROXY v2 over TCP loopback */
static size_t proxy_v4(unsigned char *buf, bool local)
{
	static const unsigned char sig[12] = "\r\n\r\n\0\r\nQUIT\n";
	unsigned char addrs[12] = {203, 0, 113, 7, 192, 0, 2, 10, 0x15, 0xb3, 0x00, 0x8f};
	memcpy(buf, sig, 12);
	buf[12] = local ? 0x20 : 0x21;
	buf[13] = 0x11;
	buf[14] = 0;
	buf[15] = 12;
	memcpy(buf + 16, addrs, 12);
	return 28;
}

static void tcp_pair(int *server_r, int *client_r)
{
	struct net_addr addr;
	memset(&addr, 0, sizeof(addr));
	struct sockaddr_in *sin = (struct sockaddr_in *)&addr.ss;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.len = sizeof(*sin);
	char *error = NULL;
	int lfd = net_listen(&addr, 4, &error);
	assert_true(lfd >= 0);
	socklen_t len = sizeof(addr.ss);
	getsockname(lfd, (struct sockaddr *)&addr.ss, &len);
	int cfd;
	int ret = net_connect_nonblock(&addr, &cfd, &error);
	assert_true(ret >= 0);
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	*server_r = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	assert_true(*server_r >= 0);
	pfd.fd = cfd;
	pfd.events = POLLOUT;
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	assert_int_equal(net_connect_finish(cfd, &error), 1);
	*client_r = cfd;
	close(lfd);
}

static struct net_cidr *proxy_list;

static void proxy_harness(struct harness *h, const char *trusted, struct conn_settings *set)
{
	struct net_cidr *list;
	size_t count;
	char *error = NULL;
	free(proxy_list);
	assert_int_equal(net_cidr_parse_list(trusted, &list, &count, &error), 0);
	proxy_list = list;
	set->service = "test";
	set->proxy_trusted = list;
	set->proxy_trusted_count = count;
	int sfd, cfd;
	tcp_pair(&sfd, &cfd);
	harness_init(h, NULL);
	harness_peer(h, cfd, true);
	harness_conn(h, sfd, set);
}

static void test_proxy_trusted(void **state)
{
	struct harness h;
	struct conn_settings set = {0};
	unsigned char buf[64];

	/* header and first command in one packet: nothing is lost */
	proxy_harness(&h, "127.0.0.0/8", &set);
	size_t n = proxy_v4(buf, false);
	memcpy(buf + n, "HELLO\r\n", 7);
	harness_send(&h, (const char *)buf, n + 7);
	RUN_UNTIL(&h, strstr(h.log, "L:HELLO|") != NULL, 2000);
	assert_string_equal(h.log, "L:HELLO|");
	assert_string_equal(h.peer_at_ready, "203.0.113.7:5555");
	assert_string_equal(h.local_at_ready, "192.0.2.10:143");
	assert_string_equal(conn_log(h.conn)->peer, "203.0.113.7:5555");
	harness_deinit(&h);

	/* trickled one byte at a time */
	proxy_harness(&h, "127.0.0.0/8", &set);
	n = proxy_v4(buf, false);
	memcpy(buf + n, "HELLO\r\n", 7);
	for (size_t i = 0; i < n + 7; i++) {
		assert_int_equal(write(h.peer, buf + i, 1), 1);
		run_for(&h, 1);
	}
	RUN_UNTIL(&h, strstr(h.log, "L:HELLO|") != NULL, 2000);
	assert_string_equal(h.log, "L:HELLO|");
	assert_string_equal(h.peer_at_ready, "203.0.113.7:5555");
	harness_deinit(&h);

	/* LOCAL keeps the socket's addresses */
	proxy_harness(&h, "127.0.0.1", &set);
	n = proxy_v4(buf, true);
	memcpy(buf + n, "HELLO\r\n", 7);
	harness_send(&h, (const char *)buf, n + 7);
	RUN_UNTIL(&h, strstr(h.log, "L:HELLO|") != NULL, 2000);
	assert_non_null(strstr(h.peer_at_ready, "127.0.0.1:"));
	harness_deinit(&h);
}

static void test_proxy_untrusted_and_bad(void **state)
{
	struct harness h;
	struct conn_settings set = {0};

	/* not trusted: the header is not read, bytes are protocol input */
	proxy_harness(&h, "10.0.0.0/8, ::1", &set);
	SEND(&h, "HELLO\r\n");
	RUN_UNTIL(&h, strstr(h.log, "L:HELLO|") != NULL, 2000);
	assert_string_equal(h.log, "L:HELLO|");
	assert_non_null(strstr(h.peer_at_ready, "127.0.0.1:"));
	harness_deinit(&h);

	/* trusted but a v1 header: closed, never ready */
	proxy_harness(&h, "127.0.0.0/8", &set);
	SEND(&h, "PROXY TCP4 203.0.113.7 192.0.2.10 5555 143\r\nHELLO\r\n");
	RUN_UNTIL(&h, h.closed && h.peer_eof, 2000);
	assert_int_equal(h.reason, CONN_CLOSE_PROXY_FAILED);
	assert_int_equal(h.ready, 0);
	assert_string_equal(h.log, "C:proxy-failed|");
	harness_deinit(&h);

	/* trusted and silent: the set-up timeout closes it without goodbye */
	set.idle_timeout_ms = 100;
	proxy_harness(&h, "127.0.0.0/8", &set);
	RUN_UNTIL(&h, h.closed, 2000);
	assert_int_equal(h.reason, CONN_CLOSE_TIMEOUT);
	assert_string_equal(h.log, "C:timeout|");
	harness_deinit(&h);
}

static void test_proxy_then_tls(void **state)
{
	struct harness h;
	struct conn_settings set = {.tls_ctx = tls_server_ctx(tls)};
	unsigned char buf[64];
	struct client c = {.implicit = true};
	pthread_t thread;
	size_t n = proxy_v4(buf, false);
	c.proxy = (const char *)buf;
	c.proxy_len = n;

	proxy_harness(&h, "127.0.0.0/8", &set);
	/* the thread owns the client socket, not the loop */
	event_free(h.peer_rd);
	event_free(h.peer_wr);
	h.peer_rd = h.peer_wr = NULL;
	h.greeting = "OK ready";
	h.echo = true;
	client_start(&c, &thread, h.peer);
	RUN_UNTIL(&h, atomic_load(&c.done) && h.closed, 10000);
	pthread_join(thread, NULL);
	assert_string_equal(c.transcript, "OK ready|ECHO CAPA TLS|BYE|EOF|");
	assert_string_equal(h.peer_at_ready, "203.0.113.7:5555");
	assert_true(h.tls_at_ready);
	harness_deinit(&h);
}

static int group_setup(void **state)
{
	tmpdir = test_tmpdir();
	if (tmpdir == NULL)
		return -1;
	cert_path = xasprintf("%s/cert.pem", tmpdir);
	key_path = xasprintf("%s/key.pem", tmpdir);
	char *error = NULL;
	if (test_cert_write(cert_path, key_path, HOST) < 0 ||
	    tls_server_open(cert_path, key_path, &tls, &error) < 0)
		return -1;
	client_ctx = tls_client_ctx_new(true, cert_path, &error);
	return client_ctx == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
	free(proxy_list);
	tls_server_free(&tls);
	SSL_CTX_free(client_ctx);
	test_tmpdir_remove(tmpdir);
	free(tmpdir);
	free(cert_path);
	free(key_path);
	return 0;
}

int main(void)
{
	/* as in every postern process: a peer gone mid-write is an error
	 * return, not a signal */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines_trickled),
	    cmocka_unit_test(test_greeting_echo_quit),
	    cmocka_unit_test(test_too_long_line),
	    cmocka_unit_test(test_huge_line_bounded),
	    cmocka_unit_test(test_literal),
	    cmocka_unit_test(test_backpressure),
	    cmocka_unit_test(test_idle_timeout),
	    cmocka_unit_test(test_flush_timeout),
	    cmocka_unit_test(test_eof_after_pipeline),
	    cmocka_unit_test(test_pause_resume),
	    cmocka_unit_test(test_free_inside_callback),
	    cmocka_unit_test(test_starttls),
	    cmocka_unit_test(test_starttls_injection),
	    cmocka_unit_test(test_implicit_tls),
	    cmocka_unit_test(test_tls_handshake_failure),
	    cmocka_unit_test(test_tls_client_conn),
	    cmocka_unit_test(test_proxy_trusted),
	    cmocka_unit_test(test_proxy_untrusted_and_bad),
	    cmocka_unit_test(test_proxy_then_tls),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
