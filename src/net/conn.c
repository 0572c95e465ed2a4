#include "net/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "lib/net_addr.h"
#include "lib/xalloc.h"
#include "net/conn_deflate.h"
#include "net/line_reader.h"
#include "net/proxy_header.h"
#include "net/tls.h"

/* bytes of unread socket input drained before close(), so that the kernel
 * sends FIN rather than RST and the peer gets our last reply */
#define CONN_LINGER_DRAIN (64 * 1024)

enum conn_state {
	CONN_STATE_PROXY,	   /* reading the PROXY header straight from the fd */
	CONN_STATE_HANDSHAKE,	   /* implicit TLS handshake */
	CONN_STATE_OPEN,	   /* the protocol talks */
	CONN_STATE_STARTTLS_FLUSH, /* the go-ahead reply is being flushed */
	CONN_STATE_STARTTLS_HANDSHAKE,
	CONN_STATE_CLOSING, /* flushing before close */
	CONN_STATE_CLOSED,
};

struct conn {
	struct event_base *base;
	enum conn_state state;
	int fd; /* held directly only while no bufferevent owns it */
	struct bufferevent *bev;
	struct event *proxy_ev;
	struct event *kick; /* runs conn_step() from the loop */
	struct event *idle_timer;
	struct event *flush_timer;

	struct conn_callbacks cb;
	void *ctx;

	struct line_reader reader;
	struct proxy_header_parser proxy;

	SSL_CTX *implicit_tls_ctx; /* held until the TLS bufferevent exists */
	SSL_CTX *starttls_ctx;	   /* held from conn_starttls() to the switch */
	bool client;
	char *tls_server_name;
	bool tls_active;
	const char *tls_version;
	const char *tls_cipher;

	size_t output_high;
	unsigned idle_timeout_ms;
	unsigned flush_timeout_ms;
	struct timespec last_activity;

	bool ready_pending;
	bool protocol_paused;
	bool output_over;
	bool pressure_reported;
	bool eof;
	bool delivering;      /* inside a line/raw/too-long callback */
	bool discard_pending; /* input discard asked for while delivering */
	unsigned depth;	      /* nesting of loop callbacks into this conn */
	bool freed;

	enum conn_close_reason close_reason;
	char *close_detail;

	/* COMPRESS=DEFLATE: the socket carries raw DEFLATE both ways; the
	 * protocol reads from plain_in (inflated as it consumes) and its
	 * writes are compressed into the bufferevent's output */
	struct conn_deflate *zip;
	struct evbuffer *plain_in;

	struct sockaddr_storage peer_ss, local_ss;
	socklen_t peer_len, local_len;
	char peer_text[128];
	char local_text[128];
	char session_id[CONN_SESSION_ID_LEN + 1];
	char *service;
	struct log_ctx log;
};

static void conn_step(struct conn *conn);
static void conn_finish_close(struct conn *conn, enum conn_close_reason reason, const char *detail);

const char *conn_close_reason_str(enum conn_close_reason reason)
{
	switch (reason) {
	case CONN_CLOSE_LOCAL:
		return "local";
	case CONN_CLOSE_EOF:
		return "eof";
	case CONN_CLOSE_ERROR:
		return "error";
	case CONN_CLOSE_TIMEOUT:
		return "timeout";
	case CONN_CLOSE_TLS_FAILED:
		return "tls-failed";
	case CONN_CLOSE_PROXY_FAILED:
		return "proxy-failed";
	}
	return "unknown";
}

static void conn_now(struct timespec *ts_r)
{
	clock_gettime(CLOCK_MONOTONIC, ts_r);
}

static void conn_session_id_make(char id_r[CONN_SESSION_ID_LEN + 1])
{
	static unsigned long counter;
	unsigned char bytes[CONN_SESSION_ID_LEN / 2];
	if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
		ERR_clear_error();
		/* still unique within this run: pid and a counter */
		snprintf(id_r, CONN_SESSION_ID_LEN + 1, "%08lx%08lx",
			 (unsigned long)getpid() & 0xffffffffUL, ++counter & 0xffffffffUL);
		return;
	}
	for (size_t i = 0; i < sizeof(bytes); i++)
		snprintf(id_r + i * 2, 3, "%02x", bytes[i]);
}

static void conn_format_addresses(struct conn *conn)
{
	if (conn->peer_len > 0)
		net_sockaddr_format((struct sockaddr *)&conn->peer_ss, conn->peer_len,
				    conn->peer_text, sizeof(conn->peer_text));
	else
		snprintf(conn->peer_text, sizeof(conn->peer_text), "?");
	if (conn->local_len > 0)
		net_sockaddr_format((struct sockaddr *)&conn->local_ss, conn->local_len,
				    conn->local_text, sizeof(conn->local_text));
	else
		snprintf(conn->local_text, sizeof(conn->local_text), "?");
}

static void conn_kick(struct conn *conn)
{
	if (conn->kick != NULL)
		event_active(conn->kick, EV_TIMEOUT, 0);
}

static size_t conn_output_len(const struct conn *conn)
{
	if (conn->bev == NULL)
		return 0;
	return evbuffer_get_length(bufferevent_get_output(conn->bev));
}

static void conn_update_reading(struct conn *conn)
{
	if (conn->bev == NULL)
		return;
	bool want = (conn->state == CONN_STATE_OPEN || conn->state == CONN_STATE_HANDSHAKE ||
		     conn->state == CONN_STATE_STARTTLS_HANDSHAKE) &&
		    !conn->protocol_paused && !conn->output_over && !conn->eof;
	if (want)
		bufferevent_enable(conn->bev, EV_READ);
	else
		bufferevent_disable(conn->bev, EV_READ);
}

/* the write callback fires when output drains to the low mark: half the
 * high watermark normally, empty when a flush is awaited */
static void conn_update_write_watermark(struct conn *conn)
{
	if (conn->bev == NULL)
		return;
	size_t low = conn->output_high / 2;
	if (conn->state == CONN_STATE_STARTTLS_FLUSH || conn->state == CONN_STATE_CLOSING)
		low = 0;
	bufferevent_setwatermark(conn->bev, EV_WRITE, low, 0);
}

static void conn_arm_idle(struct conn *conn)
{
	if (conn->idle_timer == NULL)
		return;
	evtimer_del(conn->idle_timer);
	if (conn->idle_timeout_ms == CONN_NO_TIMEOUT || conn->state == CONN_STATE_CLOSING ||
	    conn->state == CONN_STATE_CLOSED)
		return;
	struct timespec now;
	conn_now(&now);
	long long elapsed_ms = (long long)(now.tv_sec - conn->last_activity.tv_sec) * 1000 +
			       (now.tv_nsec - conn->last_activity.tv_nsec) / 1000000;
	long long left = (long long)conn->idle_timeout_ms - elapsed_ms;
	if (left < 0)
		left = 0;
	struct timeval tv = {.tv_sec = (time_t)(left / 1000),
			     .tv_usec = (suseconds_t)((left % 1000) * 1000)};
	evtimer_add(conn->idle_timer, &tv);
}

static void conn_enter(struct conn *conn)
{
	conn->depth++;
}

static void conn_destroy(struct conn *conn);

/* returns true when the conn was freed on the way out */
static bool conn_leave(struct conn *conn)
{
	if (--conn->depth == 0 && conn->freed) {
		conn_destroy(conn);
		return true;
	}
	return false;
}

static void conn_discard_input(struct conn *conn)
{
	if (conn->delivering) {
		/* the callback may still use the line or the raw chunk */
		conn->discard_pending = true;
		return;
	}
	line_reader_reset(&conn->reader);
	if (conn->bev != NULL) {
		struct evbuffer *in = bufferevent_get_input(conn->bev);
		evbuffer_drain(in, evbuffer_get_length(in));
	}
	if (conn->plain_in != NULL)
		evbuffer_drain(conn->plain_in, evbuffer_get_length(conn->plain_in));
}

static const char *conn_bev_error(struct conn *conn, char *buf, size_t size)
{
	unsigned long err;
	size_t pos = 0;
	buf[0] = '\0';
	while (conn->bev != NULL && (err = bufferevent_get_openssl_error(conn->bev)) != 0) {
		/* libevent also queues the bare SSL_get_error() code (library
		 * 0): it says nothing the real entries do not */
		if (ERR_GET_LIB(err) == 0 || pos + 3 >= size)
			continue;
		if (pos > 0) {
			buf[pos++] = ';';
			buf[pos++] = ' ';
		}
		ERR_error_string_n(err, buf + pos, size - pos);
		pos += strlen(buf + pos);
	}
	if (pos == 0) {
		/* callbacks are deferred: errno may be stale, SO_ERROR is not */
		int e = 0;
		socklen_t len = sizeof(e);
		if (conn->bev == NULL ||
		    getsockopt(bufferevent_getfd(conn->bev), SOL_SOCKET, SO_ERROR, &e, &len) < 0 ||
		    e == 0)
			e = EVUTIL_SOCKET_ERROR();
		snprintf(buf, size, "%s", e != 0 ? strerror(e) : "connection failed");
	}
	return buf;
}

static void conn_release_transport(struct conn *conn, bool tls_goodbye)
{
	if (conn->idle_timer != NULL)
		evtimer_del(conn->idle_timer);
	if (conn->flush_timer != NULL)
		evtimer_del(conn->flush_timer);
	if (conn->proxy_ev != NULL) {
		event_free(conn->proxy_ev);
		conn->proxy_ev = NULL;
	}
	int fd = conn->fd;
	if (conn->bev != NULL) {
		fd = bufferevent_getfd(conn->bev);
		SSL *ssl = bufferevent_openssl_get_ssl(conn->bev);
		if (ssl != NULL && conn->tls_active && tls_goodbye)
			(void)SSL_shutdown(ssl);
	}
	if (fd >= 0) {
		char sink[4096];
		for (size_t drained = 0; drained < CONN_LINGER_DRAIN; drained += sizeof(sink))
			if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
				break;
	}
	if (conn->bev != NULL) {
		/* the bufferevent owns the fd (and the SSL) */
		bufferevent_free(conn->bev);
		conn->bev = NULL;
	} else if (conn->fd >= 0) {
		close(conn->fd);
	}
	conn->fd = -1;
	ERR_clear_error();
}

static void conn_finish_close(struct conn *conn, enum conn_close_reason reason, const char *detail)
{
	if (conn->state == CONN_STATE_CLOSED)
		return;
	bool goodbye =
	    reason == CONN_CLOSE_LOCAL || reason == CONN_CLOSE_TIMEOUT || reason == CONN_CLOSE_EOF;
	conn->state = CONN_STATE_CLOSED;
	conn_release_transport(conn, goodbye);
	log_msg(LOG_LEVEL_DEBUG, &conn->log, "connection closed (%s%s%s)",
		conn_close_reason_str(reason), detail[0] != '\0' ? ": " : "", detail);
	if (conn->cb.closed != NULL)
		conn->cb.closed(conn, reason, detail, conn->ctx);
}

static void conn_start_close(struct conn *conn, enum conn_close_reason reason, const char *detail)
{
	if (conn->state == CONN_STATE_CLOSING || conn->state == CONN_STATE_CLOSED)
		return;
	conn->state = CONN_STATE_CLOSING;
	conn->close_reason = reason;
	free(conn->close_detail);
	conn->close_detail = xstrdup(detail);
	conn_discard_input(conn);
	if (conn->proxy_ev != NULL)
		event_del(conn->proxy_ev);
	evtimer_del(conn->idle_timer);
	struct timeval tv = {.tv_sec = conn->flush_timeout_ms / 1000,
			     .tv_usec = (suseconds_t)(conn->flush_timeout_ms % 1000) * 1000};
	evtimer_add(conn->flush_timer, &tv);
	conn_update_write_watermark(conn);
	conn_update_reading(conn);
	conn_kick(conn);
}

static void conn_tls_established(struct conn *conn)
{
	SSL *ssl = bufferevent_openssl_get_ssl(conn->bev);
	if (ssl == NULL)
		return;
	conn->tls_active = true;
	conn->tls_version = SSL_get_version(ssl);
	conn->tls_cipher = SSL_get_cipher_name(ssl);
	log_msg(LOG_LEVEL_DEBUG, &conn->log, "TLS established: %s %s", conn->tls_version,
		conn->tls_cipher);
}

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

static void conn_bev_configure(struct conn *conn)
{
	bufferevent_setcb(conn->bev, conn_read_cb, conn_write_cb, conn_event_cb, conn);
	bufferevent_setwatermark(conn->bev, EV_READ, 0, CONN_INPUT_HIGH);
	conn_update_write_watermark(conn);
	bufferevent_enable(conn->bev, EV_WRITE);
	conn_update_reading(conn);
}

/* a TLS bufferevent taking over fd; on failure fd is still the caller's */
static struct bufferevent *conn_tls_bev_new(struct conn *conn, int fd, SSL_CTX *ctx, char **error_r)
{
	char text[256];
	ERR_clear_error();
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL) {
		*error_r = xasprintf("SSL_new: %s", tls_error_text(text, sizeof(text)));
		return NULL;
	}
	if (conn->client && conn->tls_server_name != NULL) {
		SSL_set_tlsext_host_name(ssl, conn->tls_server_name);
		if ((SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) != 0)
			SSL_set1_host(ssl, conn->tls_server_name);
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    conn->base, fd, ssl,
	    conn->client ? BUFFEREVENT_SSL_CONNECTING : BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		*error_r = xstrdup("cannot create a TLS bufferevent");
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* create the bufferevent once the fd carries protocol (or TLS) bytes */
static int conn_setup_transport(struct conn *conn, char **error_r)
{
	if (conn->implicit_tls_ctx != NULL) {
		conn->bev = conn_tls_bev_new(conn, conn->fd, conn->implicit_tls_ctx, error_r);
		SSL_CTX_free(conn->implicit_tls_ctx);
		conn->implicit_tls_ctx = NULL;
		if (conn->bev == NULL)
			return -1;
		conn->state = CONN_STATE_HANDSHAKE;
	} else {
		conn->bev = bufferevent_socket_new(conn->base, conn->fd,
						   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (conn->bev == NULL) {
			*error_r = xstrdup("cannot create a bufferevent");
			return -1;
		}
		conn->state = CONN_STATE_OPEN;
		conn->ready_pending = true;
		conn_kick(conn);
	}
	conn->fd = -1;
	conn_bev_configure(conn);
	return 0;
}

static void conn_switch_to_tls(struct conn *conn)
{
	SSL_CTX *ctx = conn->starttls_ctx;
	conn->starttls_ctx = NULL;
	/* detach the fd from the plaintext bufferevent and drop it together
	 * with whatever plaintext it still holds */
	int fd = bufferevent_getfd(conn->bev);
	bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
	bufferevent_setfd(conn->bev, -1);
	bufferevent_free(conn->bev);
	conn->bev = NULL;
	conn->fd = fd;
	line_reader_reset(&conn->reader);

	char *error = NULL;
	conn->bev = conn_tls_bev_new(conn, fd, ctx, &error);
	SSL_CTX_free(ctx);
	if (conn->bev == NULL) {
		conn_finish_close(conn, CONN_CLOSE_ERROR, error);
		free(error);
		return;
	}
	conn->fd = -1;
	conn->state = CONN_STATE_STARTTLS_HANDSHAKE;
	conn_bev_configure(conn);
}

static void conn_check_pressure(struct conn *conn)
{
	size_t len = conn_output_len(conn);
	if (!conn->output_over && len > conn->output_high) {
		conn->output_over = true;
		conn_update_reading(conn);
	} else if (conn->output_over && len <= conn->output_high / 2) {
		conn->output_over = false;
		conn_update_reading(conn);
	}
	if (conn->output_over != conn->pressure_reported) {
		conn->pressure_reported = conn->output_over;
		if (conn->cb.output_pressure != NULL)
			conn->cb.output_pressure(conn, conn->output_over, conn->ctx);
	}
}

static bool conn_can_deliver(const struct conn *conn)
{
	return !conn->freed && conn->state == CONN_STATE_OPEN && !conn->protocol_paused &&
	       !conn->output_over && !conn->ready_pending && conn->bev != NULL;
}

/* what the protocol reads: the socket's bytes, or their inflated form */
static struct evbuffer *conn_input(struct conn *conn)
{
	return conn->plain_in != NULL ? conn->plain_in : bufferevent_get_input(conn->bev);
}

static void conn_input_failed(struct conn *conn, const char *error)
{
	log_msg(LOG_LEVEL_INFO, &conn->log, "input refused: %s", error);
	conn_discard_input(conn);
	if (conn->cb.input_error != NULL)
		conn->cb.input_error(conn, error, conn->ctx);
	if (!conn->freed)
		conn_start_close(conn, CONN_CLOSE_ERROR, error);
}

/* Inflate more of the compressed input once the protocol has consumed
 * most of what it had. Returns false when the stream failed (the conn is
 * closing). */
static bool conn_inflate_more(struct conn *conn)
{
	if (conn->zip == NULL || evbuffer_get_length(conn->plain_in) >= CONN_INPUT_HIGH / 2)
		return true;
	const char *error;
	if (conn_deflate_inflate(conn->zip, bufferevent_get_input(conn->bev), conn->plain_in,
				 CONN_INPUT_HIGH, &error) < 0) {
		conn_input_failed(conn, error);
		return false;
	}
	return true;
}

/* first non-empty contiguous extent at the front of the input */
static bool conn_input_extent(struct conn *conn, struct evbuffer_iovec *vec_r)
{
	if (!conn_inflate_more(conn))
		return false;
	struct evbuffer *in = conn_input(conn);
	struct evbuffer_iovec vec[4];
	int n = evbuffer_peek(in, -1, NULL, vec, 4);
	for (int i = 0; i < n && i < 4; i++) {
		if (vec[i].iov_len > 0) {
			*vec_r = vec[i];
			return true;
		}
	}
	return false;
}

static void conn_deliver(struct conn *conn, const struct line_reader_item *item)
{
	conn_now(&conn->last_activity);
	conn->delivering = true;
	switch (item->kind) {
	case LINE_READER_LINE:
		if (conn->cb.line != NULL)
			conn->cb.line(conn, item->data, item->len, conn->ctx);
		break;
	case LINE_READER_TOO_LONG:
		log_msg(LOG_LEVEL_DEBUG, &conn->log, "line longer than %zu bytes",
			conn->reader.max_line);
		if (conn->cb.line_too_long != NULL)
			conn->cb.line_too_long(conn, conn->ctx);
		break;
	case LINE_READER_RAW:
		if (conn->cb.raw != NULL)
			conn->cb.raw(conn, (const unsigned char *)item->data, item->len,
				     item->remaining, conn->ctx);
		break;
	}
	conn->delivering = false;
}

static void conn_dispatch(struct conn *conn)
{
	while (conn_can_deliver(conn)) {
		struct evbuffer_iovec vec;
		if (!conn_input_extent(conn, &vec))
			break;
		struct line_reader_item item;
		size_t consumed;
		int ret =
		    line_reader_feed(&conn->reader, vec.iov_base, vec.iov_len, &consumed, &item);
		struct evbuffer *in = conn_input(conn);
		if (ret == 0) {
			evbuffer_drain(in, consumed);
			continue;
		}
		/* a line lives in the reader's buffer: drop its bytes now; a raw
		 * chunk points into the input: drop it after the callback */
		if (item.kind != LINE_READER_RAW)
			evbuffer_drain(in, consumed);
		conn_deliver(conn, &item);
		if (conn->freed)
			return;
		if (conn->discard_pending) {
			conn->discard_pending = false;
			conn_discard_input(conn);
		} else if (item.kind == LINE_READER_RAW && conn->bev != NULL) {
			evbuffer_drain(conn_input(conn), consumed);
		}
	}
	if (conn_can_deliver(conn) && conn->eof &&
	    evbuffer_get_length(bufferevent_get_input(conn->bev)) == 0 &&
	    (conn->plain_in == NULL || evbuffer_get_length(conn->plain_in) == 0))
		conn_start_close(conn, CONN_CLOSE_EOF, "");
}

static void conn_step(struct conn *conn)
{
	if (conn->freed || conn->state == CONN_STATE_CLOSED)
		return;
	if (conn->ready_pending && conn->state == CONN_STATE_OPEN) {
		conn->ready_pending = false;
		conn_now(&conn->last_activity);
		conn_arm_idle(conn);
		if (conn->cb.ready != NULL)
			conn->cb.ready(conn, conn->ctx);
		if (conn->freed || conn->state == CONN_STATE_CLOSED)
			return;
	}
	if (conn->state == CONN_STATE_STARTTLS_FLUSH && conn_output_len(conn) == 0) {
		conn_switch_to_tls(conn);
		return;
	}
	if (conn->state == CONN_STATE_CLOSING && conn_output_len(conn) == 0) {
		conn_finish_close(conn, conn->close_reason, conn->close_detail);
		return;
	}
	if (conn->state == CONN_STATE_OPEN) {
		conn_check_pressure(conn);
		if (conn->freed || conn->state != CONN_STATE_OPEN)
			return;
	}
	conn_dispatch(conn);
}

static void conn_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;
	conn_enter(conn);
	conn_step(conn);
	conn_leave(conn);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *conn = arg;
	conn_enter(conn);
	conn_step(conn);
	conn_leave(conn);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *conn = arg;
	conn_enter(conn);
	if (conn->state == CONN_STATE_OPEN && !conn->freed) {
		/* output progress counts as activity (a slow FETCH download) */
		conn_now(&conn->last_activity);
	}
	conn_step(conn);
	conn_leave(conn);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *conn = arg;
	char text[512];

	conn_enter(conn);
	if ((what & BEV_EVENT_CONNECTED) != 0) {
		if (conn->state == CONN_STATE_HANDSHAKE) {
			conn_tls_established(conn);
			conn->state = CONN_STATE_OPEN;
			conn->ready_pending = true;
			conn_update_reading(conn);
			conn_step(conn);
		} else if (conn->state == CONN_STATE_STARTTLS_HANDSHAKE) {
			conn_tls_established(conn);
			conn->state = CONN_STATE_OPEN;
			conn_update_write_watermark(conn);
			conn_update_reading(conn);
			conn_now(&conn->last_activity);
			if (conn->cb.starttls_done != NULL)
				conn->cb.starttls_done(conn, conn->ctx);
			conn_step(conn);
		}
	} else if ((what & BEV_EVENT_EOF) != 0) {
		if (conn->state == CONN_STATE_OPEN) {
			conn->eof = true;
			conn_update_reading(conn);
			conn_step(conn);
		} else if (conn->state == CONN_STATE_CLOSING) {
			conn_finish_close(conn, conn->close_reason, conn->close_detail);
		} else if (conn->state == CONN_STATE_HANDSHAKE ||
			   conn->state == CONN_STATE_STARTTLS_HANDSHAKE) {
			conn_finish_close(conn, CONN_CLOSE_TLS_FAILED,
					  "peer closed during the TLS handshake");
		} else {
			conn_finish_close(conn, CONN_CLOSE_EOF, "");
		}
	} else if ((what & BEV_EVENT_ERROR) != 0) {
		conn_bev_error(conn, text, sizeof(text));
		if (conn->state == CONN_STATE_CLOSING) {
			conn_finish_close(conn, conn->close_reason, conn->close_detail);
		} else if (conn->state == CONN_STATE_HANDSHAKE ||
			   conn->state == CONN_STATE_STARTTLS_HANDSHAKE) {
			log_msg(LOG_LEVEL_INFO, &conn->log, "TLS handshake failed: %s", text);
			conn_finish_close(conn, CONN_CLOSE_TLS_FAILED, text);
		} else {
			conn_finish_close(conn, CONN_CLOSE_ERROR, text);
		}
	}
	conn_leave(conn);
}

static void conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;
	struct timespec now;

	conn_enter(conn);
	conn_now(&now);
	long long elapsed_ms = (long long)(now.tv_sec - conn->last_activity.tv_sec) * 1000 +
			       (now.tv_nsec - conn->last_activity.tv_nsec) / 1000000;
	if (conn->state == CONN_STATE_CLOSING || conn->state == CONN_STATE_CLOSED || conn->freed) {
		/* nothing: the flush timer bounds a closing conn */
	} else if (conn->idle_timeout_ms != CONN_NO_TIMEOUT &&
		   elapsed_ms < (long long)conn->idle_timeout_ms) {
		conn_arm_idle(conn);
	} else if (conn->state != CONN_STATE_OPEN || conn->ready_pending) {
		/* set-up (PROXY header, TLS handshake) or an upgrade stalled:
		 * there is no protocol to say goodbye in */
		conn_finish_close(conn, CONN_CLOSE_TIMEOUT, "connection set-up timed out");
	} else {
		if (conn->cb.timeout != NULL)
			conn->cb.timeout(conn, conn->ctx);
		if (!conn->freed) {
			if (conn->state == CONN_STATE_CLOSING)
				conn->close_reason = CONN_CLOSE_TIMEOUT;
			conn_start_close(conn, CONN_CLOSE_TIMEOUT, "idle timeout");
		}
	}
	conn_leave(conn);
}

static void conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;
	conn_enter(conn);
	if (conn->state == CONN_STATE_CLOSING)
		conn_finish_close(conn, conn->close_reason, conn->close_detail);
	conn_leave(conn);
}

static void conn_proxy_done(struct conn *conn, const struct proxy_header *hdr)
{
	event_free(conn->proxy_ev);
	conn->proxy_ev = NULL;
	if (!hdr->local) {
		memcpy(&conn->peer_ss, &hdr->src, hdr->src_len);
		conn->peer_len = hdr->src_len;
		memcpy(&conn->local_ss, &hdr->dst, hdr->dst_len);
		conn->local_len = hdr->dst_len;
		conn_format_addresses(conn);
	}
	char *error = NULL;
	if (conn_setup_transport(conn, &error) < 0) {
		conn_finish_close(conn, CONN_CLOSE_ERROR, error);
		free(error);
	}
}

static void conn_proxy_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;
	unsigned char buf[PROXY_HEADER_FIXED_LEN + PROXY_HEADER_MAX_PAYLOAD];

	conn_enter(conn);
	/* read only what the header still needs: the bytes after it belong
	 * to the protocol (or to the TLS handshake) */
	size_t want = proxy_header_wanted(&conn->proxy);
	if (want > sizeof(buf))
		want = sizeof(buf);
	ssize_t n = recv(conn->fd, buf, want, 0);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_finish_close(conn, CONN_CLOSE_ERROR, strerror(errno));
	} else if (n == 0) {
		conn_finish_close(conn, CONN_CLOSE_PROXY_FAILED,
				  "connection closed before the PROXY header");
	} else {
		struct proxy_header hdr;
		size_t consumed;
		const char *error;
		int ret = proxy_header_parse(&conn->proxy, buf, (size_t)n, &consumed, &hdr, &error);
		if (ret < 0) {
			log_msg(LOG_LEVEL_INFO, &conn->log, "bad PROXY header: %s", error);
			conn_finish_close(conn, CONN_CLOSE_PROXY_FAILED, error);
		} else if (ret > 0) {
			conn_proxy_done(conn, &hdr);
		}
	}
	conn_leave(conn);
}

struct conn *conn_new(struct event_base *base, int fd, const struct conn_settings *set,
		      const struct conn_callbacks *callbacks, void *ctx, char **error_r)
{
	struct conn *conn = xcalloc(1, sizeof(*conn));
	conn->base = base;
	conn->fd = fd;
	conn->state = CONN_STATE_OPEN;
	if (callbacks != NULL)
		conn->cb = *callbacks;
	conn->ctx = ctx;
	conn->client = set->client;
	conn->tls_server_name = set->tls_server_name != NULL ? xstrdup(set->tls_server_name) : NULL;
	conn->output_high = set->output_high != 0 ? set->output_high : CONN_DEFAULT_OUTPUT_HIGH;
	conn->idle_timeout_ms =
	    set->idle_timeout_ms != 0 ? set->idle_timeout_ms : CONN_DEFAULT_IDLE_TIMEOUT_MS;
	conn->flush_timeout_ms =
	    set->flush_timeout_ms != 0 ? set->flush_timeout_ms : CONN_DEFAULT_FLUSH_TIMEOUT_MS;
	line_reader_init(&conn->reader, set->max_line != 0 ? set->max_line : CONN_DEFAULT_MAX_LINE);
	proxy_header_parser_init(&conn->proxy);
	conn_now(&conn->last_activity);

	conn->peer_len = sizeof(conn->peer_ss);
	if (getpeername(fd, (struct sockaddr *)&conn->peer_ss, &conn->peer_len) < 0)
		conn->peer_len = 0;
	conn->local_len = sizeof(conn->local_ss);
	if (getsockname(fd, (struct sockaddr *)&conn->local_ss, &conn->local_len) < 0)
		conn->local_len = 0;
	conn_format_addresses(conn);
	conn_session_id_make(conn->session_id);
	conn->service = xstrdup(set->service != NULL ? set->service : "");
	conn->log.service = conn->service[0] != '\0' ? conn->service : NULL;
	conn->log.session = conn->session_id;
	conn->log.peer = conn->peer_text;

	conn->kick = event_new(base, -1, 0, conn_kick_cb, conn);
	conn->idle_timer = evtimer_new(base, conn_idle_cb, conn);
	conn->flush_timer = evtimer_new(base, conn_flush_cb, conn);
	if (conn->kick == NULL || conn->idle_timer == NULL || conn->flush_timer == NULL) {
		*error_r = xstrdup("cannot create events");
		conn_destroy(conn);
		return NULL;
	}
	if (set->tls_ctx != NULL) {
		SSL_CTX_up_ref(set->tls_ctx);
		conn->implicit_tls_ctx = set->tls_ctx;
	}

	bool proxied = set->proxy_trusted_count > 0 && conn->peer_len > 0 &&
		       net_cidr_match(set->proxy_trusted, set->proxy_trusted_count,
				      (struct sockaddr *)&conn->peer_ss);
	if (proxied) {
		conn->state = CONN_STATE_PROXY;
		conn->proxy_ev = event_new(base, fd, EV_READ | EV_PERSIST, conn_proxy_cb, conn);
		if (conn->proxy_ev == NULL || event_add(conn->proxy_ev, NULL) < 0) {
			*error_r = xstrdup("cannot watch the connection");
			conn_destroy(conn);
			return NULL;
		}
	} else if (conn_setup_transport(conn, error_r) < 0) {
		conn_destroy(conn);
		return NULL;
	}
	conn_arm_idle(conn);
	return conn;
}

static void conn_destroy(struct conn *conn)
{
	conn->state = CONN_STATE_CLOSED;
	conn_release_transport(conn, false);
	if (conn->kick != NULL)
		event_free(conn->kick);
	if (conn->idle_timer != NULL)
		event_free(conn->idle_timer);
	if (conn->flush_timer != NULL)
		event_free(conn->flush_timer);
	SSL_CTX_free(conn->implicit_tls_ctx);
	SSL_CTX_free(conn->starttls_ctx);
	line_reader_deinit(&conn->reader);
	conn_deflate_free(&conn->zip);
	if (conn->plain_in != NULL)
		evbuffer_free(conn->plain_in);
	free(conn->tls_server_name);
	free(conn->close_detail);
	free(conn->service);
	free(conn);
}

void conn_free(struct conn **connp)
{
	struct conn *conn = *connp;
	if (conn == NULL)
		return;
	*connp = NULL;
	if (conn->freed)
		return;
	conn->freed = true;
	memset(&conn->cb, 0, sizeof(conn->cb));
	if (conn->depth > 0) {
		/* inside one of this conn's callbacks: the outermost one
		 * destroys it on the way out */
		if (conn->state != CONN_STATE_CLOSED) {
			conn->state = CONN_STATE_CLOSED;
			if (conn->bev != NULL)
				bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
		}
		return;
	}
	conn_destroy(conn);
}

void conn_set_callbacks(struct conn *conn, const struct conn_callbacks *callbacks, void *ctx)
{
	if (conn->freed)
		return;
	if (callbacks != NULL)
		conn->cb = *callbacks;
	else
		memset(&conn->cb, 0, sizeof(conn->cb));
	conn->ctx = ctx;
}

static bool conn_can_write(const struct conn *conn)
{
	return !conn->freed && conn->bev != NULL &&
	       (conn->state == CONN_STATE_OPEN || conn->state == CONN_STATE_HANDSHAKE ||
		conn->state == CONN_STATE_STARTTLS_HANDSHAKE);
}

static void conn_after_write(struct conn *conn)
{
	if (!conn->output_over && conn_output_len(conn) > conn->output_high) {
		conn->output_over = true;
		conn_update_reading(conn);
		/* the protocol hears about it from the loop, not from here */
		conn_kick(conn);
	}
}

int conn_write(struct conn *conn, const void *data, size_t len)
{
	if (!conn_can_write(conn))
		return -1;
	if (len > 0 && conn->zip != NULL) {
		const char *error;
		if (conn_deflate_compress(conn->zip, data, len, bufferevent_get_output(conn->bev),
					  &error) < 0) {
			log_msg(LOG_LEVEL_ERROR, &conn->log, "%s", error);
			conn_start_close(conn, CONN_CLOSE_ERROR, error);
			return -1;
		}
	} else if (len > 0 && bufferevent_write(conn->bev, data, len) < 0) {
		return -1;
	}
	conn_after_write(conn);
	return 0;
}

int conn_vprintf(struct conn *conn, const char *fmt, va_list ap)
{
	if (!conn_can_write(conn))
		return -1;
	if (conn->zip != NULL) {
		char *text = NULL;
		int n = vasprintf(&text, fmt, ap);
		if (n < 0)
			return -1;
		int ret = conn_write(conn, text, (size_t)n);
		free(text);
		return ret;
	}
	if (evbuffer_add_vprintf(bufferevent_get_output(conn->bev), fmt, ap) < 0)
		return -1;
	conn_after_write(conn);
	return 0;
}

int conn_compress_start(struct conn *conn, const char **error_r)
{
	if (conn->zip != NULL) {
		*error_r = "compression is already active";
		return -1;
	}
	if (conn->freed || conn->state != CONN_STATE_OPEN || conn->bev == NULL) {
		*error_r = "connection is closing";
		return -1;
	}
	conn->zip = conn_deflate_new(error_r);
	if (conn->zip == NULL)
		return -1;
	conn->plain_in = evbuffer_new();
	/* bytes after the command that started it are compressed already:
	 * they stay in the socket's buffer and are inflated from there */
	conn_kick(conn);
	return 0;
}

bool conn_compress_active(const struct conn *conn)
{
	return conn->zip != NULL;
}

int conn_printf(struct conn *conn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int ret = conn_vprintf(conn, fmt, ap);
	va_end(ap);
	return ret;
}

bool conn_output_blocked(const struct conn *conn)
{
	return conn->output_over;
}

size_t conn_output_pending(const struct conn *conn)
{
	return conn_output_len(conn);
}

size_t conn_input_buffered(const struct conn *conn)
{
	size_t n = line_reader_pending(&conn->reader);
	if (conn->bev != NULL)
		n += evbuffer_get_length(bufferevent_get_input(conn->bev));
	if (conn->plain_in != NULL)
		n += evbuffer_get_length(conn->plain_in);
	return n;
}

void conn_set_max_line(struct conn *conn, size_t max_line)
{
	line_reader_set_max_line(&conn->reader, max_line != 0 ? max_line : CONN_DEFAULT_MAX_LINE);
}

void conn_read_raw(struct conn *conn, size_t count)
{
	line_reader_read_raw(&conn->reader,
			     count == CONN_RAW_UNLIMITED ? LINE_READER_RAW_UNLIMITED : count);
}

void conn_read_lines(struct conn *conn)
{
	line_reader_read_lines(&conn->reader);
}

void conn_input_pause(struct conn *conn)
{
	conn->protocol_paused = true;
	conn_update_reading(conn);
}

void conn_input_resume(struct conn *conn)
{
	if (!conn->protocol_paused)
		return;
	conn->protocol_paused = false;
	conn_update_reading(conn);
	/* input may already be buffered: deliver it from the loop */
	conn_kick(conn);
}

void conn_set_output_high(struct conn *conn, size_t high)
{
	conn->output_high = high != 0 ? high : CONN_DEFAULT_OUTPUT_HIGH;
	conn_update_write_watermark(conn);
	conn_after_write(conn);
	conn_kick(conn);
}

void conn_set_idle_timeout(struct conn *conn, unsigned timeout_ms)
{
	conn->idle_timeout_ms = timeout_ms != 0 ? timeout_ms : CONN_DEFAULT_IDLE_TIMEOUT_MS;
	conn_arm_idle(conn);
}

void conn_touch(struct conn *conn)
{
	conn_now(&conn->last_activity);
}

void conn_set_flush_timeout(struct conn *conn, unsigned timeout_ms)
{
	conn->flush_timeout_ms = timeout_ms != 0 ? timeout_ms : CONN_DEFAULT_FLUSH_TIMEOUT_MS;
}

int conn_starttls(struct conn *conn, SSL_CTX *ctx, const char **error_r)
{
	if (conn->zip != NULL) {
		*error_r = "compression is active";
		return -1;
	}
	if (conn->tls_active || conn->state == CONN_STATE_HANDSHAKE ||
	    conn->state == CONN_STATE_STARTTLS_FLUSH ||
	    conn->state == CONN_STATE_STARTTLS_HANDSHAKE) {
		*error_r = "TLS is already active";
		return -1;
	}
	if (conn->freed || conn->state != CONN_STATE_OPEN || conn->bev == NULL) {
		*error_r = "connection is closing";
		return -1;
	}
	SSL_CTX_up_ref(ctx);
	conn->starttls_ctx = ctx;
	conn->state = CONN_STATE_STARTTLS_FLUSH;
	/* anything the peer sent after the STARTTLS line was sent before it
	 * could see our go-ahead: it is not part of the TLS session */
	conn_discard_input(conn);
	conn_update_reading(conn);
	conn_update_write_watermark(conn);
	conn_kick(conn);
	return 0;
}

void conn_close_after_flush(struct conn *conn)
{
	if (conn->freed)
		return;
	conn_start_close(conn, CONN_CLOSE_LOCAL, "");
}

const char *conn_peer(const struct conn *conn)
{
	return conn->peer_text;
}

const char *conn_local(const struct conn *conn)
{
	return conn->local_text;
}

const struct sockaddr *conn_peer_sockaddr(const struct conn *conn, socklen_t *len_r)
{
	*len_r = conn->peer_len;
	return (const struct sockaddr *)&conn->peer_ss;
}

const struct sockaddr *conn_local_sockaddr(const struct conn *conn, socklen_t *len_r)
{
	*len_r = conn->local_len;
	return (const struct sockaddr *)&conn->local_ss;
}

const char *conn_session_id(const struct conn *conn)
{
	return conn->session_id;
}

const struct log_ctx *conn_log(const struct conn *conn)
{
	return &conn->log;
}

bool conn_tls_active(const struct conn *conn)
{
	return conn->tls_active;
}

const char *conn_tls_version(const struct conn *conn)
{
	return conn->tls_version;
}

const char *conn_tls_cipher(const struct conn *conn)
{
	return conn->tls_cipher;
}

SSL *conn_ssl(const struct conn *conn)
{
	if (conn->bev == NULL || !conn->tls_active)
		return NULL;
	return bufferevent_openssl_get_ssl(conn->bev);
}

bool conn_is_open(const struct conn *conn)
{
	return !conn->freed && conn->state != CONN_STATE_CLOSED;
}

struct event_base *conn_event_base(const struct conn *conn)
{
	return conn->base;
}
