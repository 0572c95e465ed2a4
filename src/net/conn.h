#ifndef POSTERN_CONN_H
#define POSTERN_CONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "lib/log.h"
#include "net/cidr.h"

/* One connection over a libevent bufferevent: plain, implicit TLS, or plain
 * upgraded in place by STARTTLS. Used by every protocol service for its
 * clients, and by the front end for its back-end connections.
 *
 * Input is delivered as lines (CRLF or bare LF, stripped) or, on request, as
 * exactly N raw bytes in chunks as they arrive. Every bound is enforced
 * here: line length (an over-long line is reported once and its rest
 * dropped without buffering), input held (at most CONN_INPUT_HIGH bytes
 * besides the partial line), output queued (past the high watermark input
 * stops and the protocol is told; it resumes at half), idle time, and the
 * time spent flushing before a close.
 *
 * The process must ignore SIGPIPE (libevent writes with writev(); a peer
 * gone mid-write is then an error return, reported as CONN_CLOSE_ERROR).
 *
 * Every callback runs from the event loop, never from inside a conn_*()
 * call made by the protocol. Inside any callback the protocol may call any
 * conn_*() function, including conn_free().
 *
 * Lifecycle: conn_new() -> ready -> lines / raw / ... -> closed -> conn_free().
 * closed is called exactly once for every ending except conn_free() on a
 * live connection; after it the conn is inert (writes fail, nothing more is
 * delivered) and the protocol frees it when convenient (inside the closed
 * callback is fine). */

#define CONN_DEFAULT_MAX_LINE	      8192
#define CONN_DEFAULT_OUTPUT_HIGH      (1024 * 1024)
#define CONN_DEFAULT_IDLE_TIMEOUT_MS  (180 * 1000)
#define CONN_DEFAULT_FLUSH_TIMEOUT_MS (5 * 1000)
/* input read from the socket but not yet delivered, at most */
#define CONN_INPUT_HIGH (64 * 1024)
/* CONN_RAW_UNLIMITED: raw mode until conn_read_lines() (relays) */
#define CONN_RAW_UNLIMITED  ((size_t)-1)
#define CONN_SESSION_ID_LEN 16

struct conn;
struct event_base;

enum conn_close_reason {
	CONN_CLOSE_LOCAL,	 /* conn_close_after_flush() */
	CONN_CLOSE_EOF,		 /* the peer closed */
	CONN_CLOSE_ERROR,	 /* socket or TLS record error */
	CONN_CLOSE_TIMEOUT,	 /* idle timeout (or PROXY/TLS set-up too slow) */
	CONN_CLOSE_TLS_FAILED,	 /* TLS handshake failed */
	CONN_CLOSE_PROXY_FAILED, /* bad or missing PROXY header from a trusted peer */
};

/* "local", "eof", "error", "timeout", "tls-failed", "proxy-failed" */
const char *conn_close_reason_str(enum conn_close_reason reason);

/* The protocol's hooks. Any may be NULL (a NULL line/raw drops the input;
 * a NULL timeout closes without a goodbye). ctx is the pointer given to
 * conn_new() or conn_set_callbacks(). */
struct conn_callbacks {
	/* The connection is set up: the peer address is final (after a PROXY
	 * header) and, for implicit TLS, the handshake is done. Send the
	 * greeting here. Called once, before any input. */
	void (*ready)(struct conn *conn, void *ctx);
	/* One complete line, CR/LF stripped, NUL-terminated at line[len]
	 * (it may also hold NUL bytes before). The buffer belongs to conn and
	 * may be modified in place until the callback returns. */
	void (*line)(struct conn *conn, char *line, size_t len, void *ctx);
	/* A line crossed max_line. Called once per such line, as soon as it
	 * crosses; its rest up to the next LF is dropped. Answer with an
	 * error; the next line is read normally. */
	void (*line_too_long)(struct conn *conn, void *ctx);
	/* Raw bytes asked for with conn_read_raw(); remaining is the count
	 * still due after this chunk (0: the next input is lines again).
	 * data is valid until the callback returns. */
	void (*raw)(struct conn *conn, const unsigned char *data, size_t len, size_t remaining,
		    void *ctx);
	/* blocked: the output queue passed the high watermark; input is no
	 * longer read or delivered; stop producing output. !blocked: it
	 * drained to half; produce more. Only called in pairs. */
	void (*output_pressure)(struct conn *conn, bool blocked, void *ctx);
	/* The handshake started by conn_starttls() completed; input resumes
	 * over TLS. */
	void (*starttls_done)(struct conn *conn, void *ctx);
	/* Idle timeout expired. Write the goodbye ("* BYE Autologout"); the
	 * conn then flushes (bounded) and closes with CONN_CLOSE_TIMEOUT. */
	void (*timeout)(struct conn *conn, void *ctx);
	/* The input cannot be read any further: the compressed stream is
	 * corrupt, ended, or expands past its bounds (net/conn_deflate.h).
	 * Write the goodbye; the conn then flushes (bounded) and closes with
	 * CONN_CLOSE_ERROR. */
	void (*input_error)(struct conn *conn, const char *text, void *ctx);
	/* The connection ended. detail is a human text for the log (may be
	 * ""). The conn stays allocated until conn_free(). */
	void (*closed)(struct conn *conn, enum conn_close_reason reason, const char *detail,
		       void *ctx);
};

struct conn_settings {
	/* service name for log lines ("imap4", "pop3-backend"); copied */
	const char *service;
	/* implicit TLS when non-NULL (the conn takes its own reference) */
	SSL_CTX *tls_ctx;
	/* outgoing connection: TLS runs as the client side */
	bool client;
	/* client side: SNI and, if the context verifies, the expected name */
	const char *tls_server_name;
	/* expect a PROXY v2 header first when the peer is in this list (the
	 * list must outlive conn_new(); it is only read there) */
	const struct net_cidr *proxy_trusted;
	size_t proxy_trusted_count;
	/* 0 for the defaults above */
	size_t max_line;
	size_t output_high;
	unsigned idle_timeout_ms; /* CONN_NO_TIMEOUT for none */
	unsigned flush_timeout_ms;
};
#define CONN_NO_TIMEOUT ((unsigned)-1)

/* Start a connection on fd, which must be connected (for an outgoing
 * connection: after net_connect_finish()) and non-blocking. The conn owns
 * fd from now on (closed by conn_free() or at close). No
 * callback runs before conn_new() returns. Returns NULL with *error_r
 * (malloc'ed) only when libevent or OpenSSL cannot set up; fd is closed
 * then too. */
struct conn *conn_new(struct event_base *base, int fd, const struct conn_settings *set,
		      const struct conn_callbacks *callbacks, void *ctx, char **error_r);
/* Tear down at once without the closed callback (output not yet sent is
 * lost), release everything and set *conn to NULL. Safe inside callbacks. */
void conn_free(struct conn **conn);

/* Replace the callbacks (e.g. pre-login dialogue -> relay). */
void conn_set_callbacks(struct conn *conn, const struct conn_callbacks *callbacks, void *ctx);

/* Queue output. Returns 0, or -1 when the conn is closing, closed, or
 * waiting for its STARTTLS upgrade (nothing is queued). */
int conn_write(struct conn *conn, const void *data, size_t len);
int conn_printf(struct conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int conn_vprintf(struct conn *conn, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* true while the output queue is past the high watermark. Producers loop
 * `while (more && !conn_output_blocked(conn))` and continue on
 * output_pressure(false). */
bool conn_output_blocked(const struct conn *conn);
/* Bytes queued and not yet handed to the kernel. */
size_t conn_output_pending(const struct conn *conn);
/* Input bytes held (unread socket data + the partial line). Bounded by
 * CONN_INPUT_HIGH + max_line + a few KiB whatever the peer sends. */
size_t conn_input_buffered(const struct conn *conn);

/* Line bound for the next line (0: default). */
void conn_set_max_line(struct conn *conn, size_t max_line);
/* Deliver the next count bytes through the raw callback, then lines again.
 * Call from the line callback that announced them (IMAP literal).
 * CONN_RAW_UNLIMITED: raw until conn_read_lines(). */
void conn_read_raw(struct conn *conn, size_t count);
/* Leave raw mode now. */
void conn_read_lines(struct conn *conn);

/* Stop reading and delivering input (e.g. while waiting for authd), and
 * resume. Buffered input is delivered after resume, from the loop. */
void conn_input_pause(struct conn *conn);
void conn_input_resume(struct conn *conn);

/* Output high watermark (0: default); reading stops above it and resumes at
 * half. */
void conn_set_output_high(struct conn *conn, size_t high);
/* Idle timeout, counted from the last complete input item (line, raw
 * chunk), output progress (the peer reading a long reply) or conn_touch().
 * Partial lines do not count, so trickling bytes keeps nobody alive.
 * Before ready (PROXY header, implicit TLS handshake) it bounds the whole
 * set-up, which then ends without a goodbye. CONN_NO_TIMEOUT disables it;
 * 0 restores the default. May be changed at any time (pre-auth vs
 * post-auth); the time already idle counts against the new value. */
void conn_set_idle_timeout(struct conn *conn, unsigned timeout_ms);
/* Count now as activity (a relay calls it when the other side talks). */
void conn_touch(struct conn *conn);
/* Bound on the time conn_close_after_flush() waits for the peer to read. */
void conn_set_flush_timeout(struct conn *conn, unsigned timeout_ms);

/* Upgrade to TLS in place (STARTTLS / STLS). Call right after queueing the
 * protocol's "go ahead" reply, typically from the line callback. Input
 * already received after the STARTTLS command line is discarded, never
 * delivered (the plaintext command-injection hole, CVE-2011-0411); no
 * more input is delivered until the handshake completes (starttls_done).
 * The handshake starts once the reply has been flushed. ctx: the server
 * context (tls_server_ctx()) or, for client conns, a client context.
 * Returns 0, or -1 with *error_r (static text) when TLS is already active
 * or starting, or the conn is closing. */
int conn_starttls(struct conn *conn, SSL_CTX *ctx, const char **error_r);

/* COMPRESS=DEFLATE (RFC 4978): from now on input is inflated and output
 * compressed with a sync flush after each write. Call right after queueing
 * the protocol's "go ahead" reply (it goes out uncompressed), typically
 * from the line callback of the command: the input after that line is
 * read as compressed. Inflated input is held at most CONN_INPUT_HIGH at a
 * time; the output watermark counts compressed bytes. There is no way
 * back, and STARTTLS is refused afterwards. Returns 0, or -1 with *error_r
 * (static) when already active, closing, or zlib cannot allocate. */
int conn_compress_start(struct conn *conn, const char **error_r);
bool conn_compress_active(const struct conn *conn);

/* Flush queued output (for at most the flush timeout), then close with
 * CONN_CLOSE_LOCAL. Input after this call is discarded. */
void conn_close_after_flush(struct conn *conn);

/* Peer and local addresses: after a PROXY header these are the client's
 * and the address it connected to. Text is "addr:port" / "[v6]:port" /
 * "unix:path". */
const char *conn_peer(const struct conn *conn);
const char *conn_local(const struct conn *conn);
const struct sockaddr *conn_peer_sockaddr(const struct conn *conn, socklen_t *len_r);
const struct sockaddr *conn_local_sockaddr(const struct conn *conn, socklen_t *len_r);
/* 16 hex chars, unique for this process's run (random). */
const char *conn_session_id(const struct conn *conn);
/* Log context (service, session, peer) for log_msg(). */
const struct log_ctx *conn_log(const struct conn *conn);
/* TLS state: active once the handshake completed. Version ("TLSv1.3") and
 * cipher ("TLS_AES_256_GCM_SHA384") are NULL without TLS. */
bool conn_tls_active(const struct conn *conn);
const char *conn_tls_version(const struct conn *conn);
const char *conn_tls_cipher(const struct conn *conn);
SSL *conn_ssl(const struct conn *conn);
/* true while the conn is open (closed not yet called). */
bool conn_is_open(const struct conn *conn);
struct event_base *conn_event_base(const struct conn *conn);

#endif
