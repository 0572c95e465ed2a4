#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "admin/admin.h"
#include "directory/directory.h"
#include "directory/settings_db.h"
#include "lib/net_addr.h"
#include "lib/settings.h"
#include "lib/xalloc.h"

/* `posternctl test pop3|imap4|smtp`: the connectivity tests administrators
 * know as Test-PopConnectivity / Test-ImapConnectivity /
 * Test-SmtpConnectivity. Each step (connect, TLS, greeting and
 * capabilities, login, and in the full test: get a test message into the
 * mailbox, find it, delete it, log out) is timed and reported as Success,
 * Failure (with its cause) or Skipped. Exit 0 only when every step passed.
 * The client is plain blocking sockets and OpenSSL: it tests the server,
 * not itself.
 *
 * The full pop3/imap4 test submits its message through the submission
 * service when that is running and the user may send (so the whole path a
 * mail program uses is tested), else delivers it through the lmtp socket.
 * The full smtp test submits a message to the user and finds it over
 * IMAP4 (or POP3 when only that is running and enabled for the user);
 * when the user keeps copies in Sent, the IMAP4 part removes that copy
 * too. */

#define TEST_MAX_STEPS 24
#define TEST_MAX_LINE  8192

enum test_connection { TEST_PLAINTEXT, TEST_SSL, TEST_TLS };

struct test_step {
	const char *scenario;
	const char *result; /* "Success", "Failure", "Skipped" */
	double ms;
	char error[256];
	char server[280];     /* host:port the step talked to */
	const char *protocol; /* "pop3", "imap4", "smtp" */
};

struct test_run {
	const char *protocol; /* of the current connection: "pop3", "imap4", "smtp" */
	char server[256];
	char port[16];
	enum test_connection connection;
	bool trust_any;
	bool light;
	int timeout_ms;
	const char *user;
	char password[512];
	const char *datadir;

	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char buf[TEST_MAX_LINE];
	size_t buflen;
	unsigned tag;

	struct test_step steps[TEST_MAX_STEPS];
	size_t nsteps;
	struct timespec started;
	/* while false, steps are not listed: a failure's text goes to quiet */
	bool record;
	char quiet[256];
	/* imap4: the message also has a copy in the Sent folder to remove */
	bool sent_copy;
	char address[300]; /* the user's mail address */
};

static double test_elapsed_ms(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) * 1000.0 +
	       (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

static void test_begin(struct test_run *t)
{
	clock_gettime(CLOCK_MONOTONIC, &t->started);
}

static bool test_end(struct test_run *t, const char *scenario, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool test_end(struct test_run *t, const char *scenario, bool ok, const char *fmt, ...)
{
	if (!t->record) {
		if (!ok && fmt != NULL) {
			char text[200];
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(text, sizeof(text), fmt, ap);
			va_end(ap);
			snprintf(t->quiet, sizeof(t->quiet), "%s: %s", scenario, text);
		}
		return ok;
	}
	if (t->nsteps == TEST_MAX_STEPS)
		return ok;
	struct test_step *s = &t->steps[t->nsteps++];
	snprintf(s->server, sizeof(s->server), "%s%s%s", t->server, t->port[0] != '\0' ? ":" : "",
		 t->port);
	s->protocol = t->protocol;
	s->scenario = scenario;
	s->result = ok ? "Success" : "Failure";
	s->ms = test_elapsed_ms(&t->started);
	s->error[0] = '\0';
	if (!ok && fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->error, sizeof(s->error), fmt, ap);
		va_end(ap);
	}
	return ok;
}

static void test_skip(struct test_run *t, const char *scenario, const char *protocol)
{
	if (t->nsteps == TEST_MAX_STEPS)
		return;
	struct test_step *s = &t->steps[t->nsteps++];
	/* a session never started has no server yet */
	if (t->protocol != NULL && strcmp(protocol, t->protocol) == 0)
		snprintf(s->server, sizeof(s->server), "%s:%s", t->server, t->port);
	else
		snprintf(s->server, sizeof(s->server), "-");
	s->protocol = protocol;
	s->scenario = scenario;
	s->result = "Skipped";
	s->ms = 0;
	s->error[0] = '\0';
}

/* ---- transport ---- */

static int test_wait(struct test_run *t, short events)
{
	struct pollfd pfd = {t->fd, events, 0};
	int r;
	do {
		r = poll(&pfd, 1, t->timeout_ms);
	} while (r < 0 && errno == EINTR);
	return r > 0 ? 0 : -1;
}

static int test_send(struct test_run *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int test_send(struct test_run *t, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	size_t off = 0;
	while (off < (size_t)n) {
		int w;
		if (t->ssl != NULL) {
			w = SSL_write(t->ssl, line + off, n - (int)off);
			if (w <= 0) {
				int e = SSL_get_error(t->ssl, w);
				if ((e == SSL_ERROR_WANT_WRITE && test_wait(t, POLLOUT) == 0) ||
				    (e == SSL_ERROR_WANT_READ && test_wait(t, POLLIN) == 0))
					continue;
				return -1;
			}
		} else {
			w = (int)send(t->fd, line + off, (size_t)n - off, MSG_NOSIGNAL);
			if (w < 0 && errno == EAGAIN && test_wait(t, POLLOUT) == 0)
				continue;
			if (w <= 0)
				return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

/* one line without CRLF into out; -1 on timeout, EOF or an over-long line */
static int test_line(struct test_run *t, char *out, size_t size)
{
	for (;;) {
		char *nl = memchr(t->buf, '\n', t->buflen);
		if (nl != NULL) {
			size_t len = (size_t)(nl - t->buf);
			size_t copy = len > 0 && t->buf[len - 1] == '\r' ? len - 1 : len;
			if (copy >= size)
				copy = size - 1;
			memcpy(out, t->buf, copy);
			out[copy] = '\0';
			memmove(t->buf, nl + 1, t->buflen - len - 1);
			t->buflen -= len + 1;
			return 0;
		}
		if (t->buflen == sizeof(t->buf))
			return -1;
		if ((t->ssl == NULL || SSL_pending(t->ssl) == 0) && test_wait(t, POLLIN) < 0)
			return -1;
		int n;
		if (t->ssl != NULL) {
			n = SSL_read(t->ssl, t->buf + t->buflen, (int)(sizeof(t->buf) - t->buflen));
			if (n <= 0) {
				/* a record arrives in pieces: wait for the rest */
				int e = SSL_get_error(t->ssl, n);
				if (e == SSL_ERROR_WANT_READ)
					continue;
				if (e == SSL_ERROR_WANT_WRITE && test_wait(t, POLLOUT) == 0)
					continue;
				return -1;
			}
		} else {
			n = (int)recv(t->fd, t->buf + t->buflen, sizeof(t->buf) - t->buflen, 0);
			if (n < 0 && errno == EAGAIN)
				continue;
			if (n <= 0)
				return -1;
		}
		t->buflen += (size_t)n;
	}
}

static bool test_connect(struct test_run *t)
{
	test_begin(t);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int r = getaddrinfo(t->server, t->port, &hints, &res);
	if (r != 0)
		return test_end(t, "Connect", false, "cannot resolve %s: %s", t->server,
				gai_strerror(r));
	int err = 0;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		t->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (t->fd < 0)
			continue;
		if (connect(t->fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && test_wait(t, POLLOUT) == 0)) {
			socklen_t len = sizeof(err);
			getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err == 0)
				break;
		} else {
			err = errno != EINPROGRESS ? errno : ETIMEDOUT;
		}
		close(t->fd);
		t->fd = -1;
	}
	freeaddrinfo(res);
	if (t->fd < 0)
		return test_end(t, "Connect", false, "%s:%s: %s", t->server, t->port,
				err == ECONNREFUSED ? "connection refused (is the service started?)"
						    : strerror(err != 0 ? err : ETIMEDOUT));
	/* the socket stays non-blocking: every wait is a poll() with the timeout */
	return test_end(t, "Connect", true, NULL);
}

static bool test_tls(struct test_run *t)
{
	test_begin(t);
	t->ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	if (!t->trust_any) {
		SSL_CTX_set_default_verify_paths(t->ctx);
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	}
	t->ssl = SSL_new(t->ctx);
	SSL_set_fd(t->ssl, t->fd);
	SSL_set_tlsext_host_name(t->ssl, t->server);
	if (!t->trust_any)
		SSL_set1_host(t->ssl, t->server);
	for (;;) {
		int r = SSL_connect(t->ssl);
		if (r == 1)
			break;
		int e = SSL_get_error(t->ssl, r);
		if ((e == SSL_ERROR_WANT_READ && test_wait(t, POLLIN) == 0) ||
		    (e == SSL_ERROR_WANT_WRITE && test_wait(t, POLLOUT) == 0))
			continue;
		long verify = SSL_get_verify_result(t->ssl);
		if (verify != X509_V_OK)
			return test_end(t, "TLS", false,
					"certificate not trusted: %s (use --trust-any-certificate "
					"for a self-signed one)",
					X509_verify_cert_error_string(verify));
		char buf[160];
		ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
		return test_end(t, "TLS", false, "handshake failed: %s", buf);
	}
	return test_end(t, "TLS", true, NULL);
}

/* ---- POP3 ---- */

static bool pop3_ok(const char *line)
{
	return strncmp(line, "+OK", 3) == 0;
}

static bool test_pop3(struct test_run *t, const char *message_id)
{
	char line[TEST_MAX_LINE];
	test_begin(t);
	if (test_line(t, line, sizeof(line)) < 0 || !pop3_ok(line))
		return test_end(t, "Greeting", false, "no +OK greeting");
	test_end(t, "Greeting", true, NULL);
	if (t->connection == TEST_TLS) {
		test_begin(t);
		if (test_send(t, "STLS\r\n") < 0 || test_line(t, line, sizeof(line)) < 0 ||
		    !pop3_ok(line))
			return test_end(t, "TLS", false, "STLS refused: %s", line);
		if (!test_tls(t))
			return false;
	}
	test_begin(t);
	bool stls = false, user = false;
	if (test_send(t, "CAPA\r\n") < 0 || test_line(t, line, sizeof(line)) < 0 || !pop3_ok(line))
		return test_end(t, "Capabilities", false, "CAPA failed");
	for (int i = 0; i < 100; i++) {
		if (test_line(t, line, sizeof(line)) < 0)
			return test_end(t, "Capabilities", false, "CAPA list cut off");
		if (strcmp(line, ".") == 0)
			break;
		stls = stls || strcmp(line, "STLS") == 0;
		user = user || strcmp(line, "USER") == 0;
	}
	if (!user)
		return test_end(t, "Capabilities", false,
				"USER is not offered on this connection (login-type)%s",
				stls ? "; try --connection tls or ssl" : "");
	test_end(t, "Capabilities", true, NULL);

	test_begin(t);
	if (test_send(t, "USER %s\r\n", t->user) < 0 || test_line(t, line, sizeof(line)) < 0 ||
	    test_send(t, "PASS %s\r\n", t->password) < 0 || test_line(t, line, sizeof(line)) < 0)
		return test_end(t, "Login", false, "no answer");
	if (!pop3_ok(line))
		return test_end(t, "Login", false, "refused: %s", line);
	test_end(t, "Login", true, NULL);
	if (message_id == NULL)
		goto logout;

	/* find the test message by its Message-ID in the headers */
	test_begin(t);
	if (test_send(t, "STAT\r\n") < 0 || test_line(t, line, sizeof(line)) < 0 || !pop3_ok(line))
		return test_end(t, "Find message", false, "STAT failed: %s", line);
	long count = strtol(line + 4, NULL, 10);
	long found = 0;
	for (long n = count; n >= 1 && found == 0; n--) {
		if (test_send(t, "TOP %ld 0\r\n", n) < 0 || test_line(t, line, sizeof(line)) < 0)
			return test_end(t, "Find message", false, "TOP failed");
		if (!pop3_ok(line))
			continue;
		for (;;) {
			if (test_line(t, line, sizeof(line)) < 0)
				return test_end(t, "Find message", false, "TOP cut off");
			if (strcmp(line, ".") == 0)
				break;
			if (strcasestr(line, message_id) != NULL)
				found = n;
		}
	}
	if (found == 0)
		return test_end(t, "Find message", false, "the test message did not arrive");
	test_end(t, "Find message", true, NULL);
	test_begin(t);
	if (test_send(t, "DELE %ld\r\n", found) < 0 || test_line(t, line, sizeof(line)) < 0 ||
	    !pop3_ok(line))
		return test_end(t, "Delete message", false, "DELE failed: %s", line);
	test_end(t, "Delete message", true, NULL);
logout:
	test_begin(t);
	if (test_send(t, "QUIT\r\n") < 0 || test_line(t, line, sizeof(line)) < 0 || !pop3_ok(line))
		return test_end(t, "Logout", false, "QUIT failed");
	return test_end(t, "Logout", true, NULL);
}

/* ---- IMAP4 ---- */

/* send a tagged command and read to its tagged answer; the last untagged
 * line that contains `want` (if given) is copied to found */
static int imap_command(struct test_run *t, char *answer, size_t size, const char *want,
			char *found, size_t found_size, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static int imap_command(struct test_run *t, char *answer, size_t size, const char *want,
			char *found, size_t found_size, const char *fmt, ...)
{
	char cmd[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char tag[16];
	snprintf(tag, sizeof(tag), "t%u", ++t->tag);
	if (test_send(t, "%s %s\r\n", tag, cmd) < 0)
		return -1;
	size_t taglen = strlen(tag);
	for (int i = 0; i < 100000; i++) {
		if (test_line(t, answer, size) < 0)
			return -1;
		if (strncmp(answer, tag, taglen) == 0 && answer[taglen] == ' ') {
			memmove(answer, answer + taglen + 1, strlen(answer + taglen + 1) + 1);
			return strncmp(answer, "OK", 2) == 0 ? 1 : 0;
		}
		if (want != NULL && found != NULL && strcasestr(answer, want) != NULL)
			snprintf(found, found_size, "%s", answer);
	}
	return -1;
}

/* The submission service files the user's copy in the folder with
 * SPECIAL-USE \Sent a moment after it answered: find it there and remove
 * it. Returns NULL, or what went wrong (static text). */
static const char *imap_remove_sent_copy(struct test_run *t, const char *message_id)
{
	static char why[300];
	char line[TEST_MAX_LINE], found[TEST_MAX_LINE], folder[512] = "";
	/* one LIST line per folder: the one whose attributes hold \Sent */
	char cmd[32];
	snprintf(cmd, sizeof(cmd), "t%u", ++t->tag);
	if (test_send(t, "%s LIST \"\" \"*\"\r\n", cmd) < 0)
		return "LIST failed";
	for (;;) {
		if (test_line(t, line, sizeof(line)) < 0)
			return "LIST failed";
		if (strncmp(line, cmd, strlen(cmd)) == 0)
			break;
		char *close = strchr(line, ')');
		if (strncmp(line, "* LIST (", 8) != 0 || close == NULL)
			continue;
		*close = '\0';
		if (strstr(line, "\\Sent") == NULL)
			continue;
		/* ') "/" NAME': the name quoted or as an atom */
		char *name = strchr(close + 1, ' ');
		name = name != NULL ? strchr(name + 1, ' ') : NULL;
		if (name != NULL)
			snprintf(folder, sizeof(folder), "%s", name + 1);
	}
	if (folder[0] == '\0')
		return "the user keeps copies in Sent, but has no folder with \\Sent";
	if (imap_command(t, line, sizeof(line), NULL, NULL, 0, "SELECT %s", folder) != 1) {
		snprintf(why, sizeof(why), "SELECT %.60s failed: %.200s", folder, line);
		return why;
	}
	unsigned long uid = 0;
	for (int i = 0; i < 50 && uid == 0; i++) {
		if (i > 0) {
			struct timespec pause = {0, 200 * 1000 * 1000};
			nanosleep(&pause, NULL);
		}
		found[0] = '\0';
		if (imap_command(t, line, sizeof(line), "* SEARCH", found, sizeof(found),
				 "UID SEARCH HEADER Message-ID \"%s\"", message_id) != 1)
			return "SEARCH in Sent failed";
		uid = strtoul(found + (strlen(found) > 9 ? 9 : strlen(found)), NULL, 10);
	}
	if (uid == 0) {
		snprintf(why, sizeof(why), "the copy in %.200s did not appear within 10 s", folder);
		return why;
	}
	if (imap_command(t, line, sizeof(line), NULL, NULL, 0,
			 "UID STORE %lu +FLAGS.SILENT (\\Deleted)", uid) != 1 ||
	    imap_command(t, line, sizeof(line), NULL, NULL, 0, "UID EXPUNGE %lu", uid) != 1) {
		snprintf(why, sizeof(why), "removing the copy in Sent: %.200s", line);
		return why;
	}
	return NULL;
}

static bool test_imap(struct test_run *t, const char *message_id)
{
	char line[TEST_MAX_LINE], found[TEST_MAX_LINE];
	test_begin(t);
	if (test_line(t, line, sizeof(line)) < 0 || strncmp(line, "* OK", 4) != 0)
		return test_end(t, "Greeting", false, "no * OK greeting");
	test_end(t, "Greeting", true, NULL);
	if (t->connection == TEST_TLS) {
		test_begin(t);
		if (imap_command(t, line, sizeof(line), NULL, NULL, 0, "STARTTLS") != 1)
			return test_end(t, "TLS", false, "STARTTLS refused: %s", line);
		if (!test_tls(t))
			return false;
	}
	test_begin(t);
	found[0] = '\0';
	if (imap_command(t, line, sizeof(line), "CAPABILITY", found, sizeof(found), "CAPABILITY") !=
	    1)
		return test_end(t, "Capabilities", false, "CAPABILITY failed: %s", line);
	if (strstr(found, "LOGINDISABLED") != NULL)
		return test_end(t, "Capabilities", false,
				"LOGINDISABLED on this connection (login-type; try --connection "
				"ssl or tls)");
	test_end(t, "Capabilities", true, NULL);

	test_begin(t);
	int r = imap_command(t, line, sizeof(line), NULL, NULL, 0, "LOGIN \"%s\" \"%s\"", t->user,
			     t->password);
	if (r != 1)
		return test_end(t, "Login", false, "%s", r < 0 ? "no answer" : line);
	test_end(t, "Login", true, NULL);
	if (message_id == NULL)
		goto logout;

	test_begin(t);
	if (imap_command(t, line, sizeof(line), NULL, NULL, 0, "SELECT INBOX") != 1)
		return test_end(t, "Find message", false, "SELECT INBOX failed: %s", line);
	found[0] = '\0';
	if (imap_command(t, line, sizeof(line), "* SEARCH", found, sizeof(found),
			 "UID SEARCH HEADER Message-ID \"%s\"", message_id) != 1)
		return test_end(t, "Find message", false, "SEARCH failed: %s", line);
	unsigned long uid = strtoul(found + (strlen(found) > 9 ? 9 : strlen(found)), NULL, 10);
	if (uid == 0)
		return test_end(t, "Find message", false, "the test message did not arrive");
	test_end(t, "Find message", true, NULL);
	test_begin(t);
	if (imap_command(t, line, sizeof(line), NULL, NULL, 0,
			 "UID STORE %lu +FLAGS.SILENT (\\Deleted)", uid) != 1 ||
	    imap_command(t, line, sizeof(line), NULL, NULL, 0, "UID EXPUNGE %lu", uid) != 1)
		return test_end(t, "Delete message", false, "%s", line);
	if (t->sent_copy) {
		const char *why = imap_remove_sent_copy(t, message_id);
		if (why != NULL)
			return test_end(t, "Delete message", false, "%s", why);
	}
	test_end(t, "Delete message", true, NULL);
logout:
	test_begin(t);
	if (imap_command(t, line, sizeof(line), NULL, NULL, 0, "LOGOUT") != 1)
		return test_end(t, "Logout", false, "LOGOUT failed");
	return test_end(t, "Logout", true, NULL);
}

/* ---- SMTP ---- */

/* Read one reply (all its lines); the last line into last, every line
 * (without codes) into all when given. Returns the code, or -1. */
static int smtp_reply(struct test_run *t, char *last, size_t size, char *all, size_t all_size)
{
	if (all != NULL)
		all[0] = '\0';
	for (int i = 0; i < 200; i++) {
		if (test_line(t, last, size) < 0)
			return -1;
		if (strlen(last) < 3 || !isdigit((unsigned char)last[0]) ||
		    !isdigit((unsigned char)last[1]) || !isdigit((unsigned char)last[2]))
			return -1;
		if (all != NULL && strlen(last) > 4) {
			size_t used = strlen(all);
			snprintf(all + used, all_size - used, "%s\n", last + 4);
		}
		if (last[3] != '-')
			return atoi(last);
	}
	return -1;
}

static int smtp_command(struct test_run *t, char *last, size_t size, char *all, size_t all_size,
			const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int smtp_command(struct test_run *t, char *last, size_t size, char *all, size_t all_size,
			const char *fmt, ...)
{
	char cmd[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (test_send(t, "%s\r\n", cmd) < 0) {
		snprintf(last, size, "connection lost");
		return -1;
	}
	int code = smtp_reply(t, last, size, all, all_size);
	if (code < 0)
		snprintf(last, size, "no answer");
	return code;
}

/* An EHLO keyword line ("AUTH PLAIN LOGIN") that starts with kw and, when
 * word is given, lists it. */
static bool smtp_keyword(const char *ehlo, const char *kw, const char *word)
{
	size_t n = strlen(kw);
	for (const char *p = ehlo; *p != '\0';) {
		const char *end = strchr(p, '\n');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len >= n && strncasecmp(p, kw, n) == 0 && (len == n || p[n] == ' ')) {
			if (word == NULL)
				return true;
			char line[512];
			snprintf(line, sizeof(line), " %.*s ", (int)len, p);
			char want[64];
			snprintf(want, sizeof(want), " %s ", word);
			if (strcasestr(line, want) != NULL)
				return true;
		}
		p += len + (end != NULL ? 1 : 0);
	}
	return false;
}

/* What a refused AUTH means, for the table. */
static const char *smtp_auth_cause(int code)
{
	switch (code) {
	case 535:
		return "wrong user name or password";
	case 525:
		return "the account may not send mail (smtp is off for it, or a guest or "
		       "administrator account)";
	case 538:
		return "the server wants TLS first (login-type)";
	case 454:
		return "a temporary failure at the server";
	default:
		return "refused";
	}
}

/* The SMTP session after connect (and implicit TLS): greeting, EHLO,
 * STARTTLS (connection tls), AUTH PLAIN and, with message_id, the test
 * message to the user's own address, then QUIT. With refuse_send, the send
 * step fails for that reason without sending. */
static bool test_smtp(struct test_run *t, const char *message_id, const char *refuse_send)
{
	char line[TEST_MAX_LINE], ehlo[TEST_MAX_LINE];
	test_begin(t);
	int code = smtp_reply(t, line, sizeof(line), NULL, 0);
	if (code != 220)
		return test_end(t, "Greeting", false, "no 220 greeting: %s",
				code < 0 ? "no answer" : line);
	test_end(t, "Greeting", true, NULL);
	if (t->connection == TEST_TLS) {
		test_begin(t);
		code = smtp_command(t, line, sizeof(line), ehlo, sizeof(ehlo), "EHLO posternctl");
		if (code != 250)
			return test_end(t, "TLS", false, "EHLO refused: %s", line);
		if (!smtp_keyword(ehlo, "STARTTLS", NULL))
			return test_end(t, "TLS", false, "STARTTLS is not offered");
		code = smtp_command(t, line, sizeof(line), NULL, 0, "STARTTLS");
		if (code != 220)
			return test_end(t, "TLS", false, "STARTTLS refused: %s", line);
		if (!test_tls(t))
			return false;
	}
	test_begin(t);
	code = smtp_command(t, line, sizeof(line), ehlo, sizeof(ehlo), "EHLO posternctl");
	if (code != 250)
		return test_end(t, "Capabilities", false, "EHLO refused: %s", line);
	if (!smtp_keyword(ehlo, "AUTH", "PLAIN"))
		return test_end(
		    t, "Capabilities", false,
		    "AUTH PLAIN is not offered on this connection (login-type)%s",
		    smtp_keyword(ehlo, "STARTTLS", NULL) ? "; try --connection tls or ssl" : "");
	test_end(t, "Capabilities", true, NULL);

	test_begin(t);
	size_t ulen = strlen(t->user), plen = strlen(t->password);
	unsigned char plain[1100];
	char token[1500];
	if (ulen + plen + 2 > sizeof(plain))
		return test_end(t, "Login", false, "user name or password too long");
	plain[0] = '\0';
	memcpy(plain + 1, t->user, ulen);
	plain[1 + ulen] = '\0';
	memcpy(plain + 2 + ulen, t->password, plen);
	EVP_EncodeBlock((unsigned char *)token, plain, (int)(ulen + plen + 2));
	OPENSSL_cleanse(plain, sizeof(plain));
	code = smtp_command(t, line, sizeof(line), NULL, 0, "AUTH PLAIN %s", token);
	OPENSSL_cleanse(token, sizeof(token));
	if (code != 235)
		return test_end(t, "Login", false, "%s: %s", smtp_auth_cause(code),
				code < 0 ? "no answer" : line);
	test_end(t, "Login", true, NULL);

	bool sent = true;
	if (refuse_send != NULL) {
		test_begin(t);
		sent = test_end(t, "Send test message", false, "%s", refuse_send);
	} else if (message_id != NULL) {
		test_begin(t);
		char date[64];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
		const char *step = "MAIL";
		code = smtp_command(t, line, sizeof(line), NULL, 0, "MAIL FROM:<%s>", t->address);
		if (code == 250) {
			step = "RCPT";
			code = smtp_command(t, line, sizeof(line), NULL, 0, "RCPT TO:<%s>",
					    t->address);
		}
		if (code == 250) {
			step = "DATA";
			code = smtp_command(t, line, sizeof(line), NULL, 0, "DATA");
		}
		if (code == 354) {
			step = "the message";
			code = smtp_command(
			    t, line, sizeof(line), NULL, 0,
			    "From: <%s>\r\nTo: <%s>\r\nSubject: postern connectivity test\r\n"
			    "Date: %s\r\nMessage-ID: %s\r\n\r\n"
			    "This message was sent by posternctl test and is deleted by it.\r\n.",
			    t->address, t->address, date, message_id);
		}
		if (code != 250)
			return test_end(t, "Send test message", false, "%s refused: %s", step,
					line);
		test_end(t, "Send test message", true, NULL);
	}
	test_begin(t);
	code = smtp_command(t, line, sizeof(line), NULL, 0, "QUIT");
	if (code != 221)
		return test_end(t, "Logout", false, "QUIT: %s", line);
	return test_end(t, "Logout", true, NULL) && sent;
}

static void test_disconnect(struct test_run *t)
{
	if (t->ssl != NULL)
		SSL_free(t->ssl);
	t->ssl = NULL;
	if (t->ctx != NULL)
		SSL_CTX_free(t->ctx);
	t->ctx = NULL;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	t->buflen = 0;
}

/* ---- delivery of the test message (full test) ---- */

static bool test_lmtp(struct test_run *t, const char *message_id);

static int lmtp_expect(int fd, char *buf, size_t size, char want)
{
	size_t len = 0;
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		if (poll(&pfd, 1, 10000) <= 0)
			return -1;
		ssize_t n = read(fd, buf + len, size - len - 1);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		/* the last line of a reply has a space after its code */
		char *last = buf;
		for (char *p = buf; (p = strstr(p, "\r\n")) != NULL && p[2] != '\0'; p += 2)
			last = p + 2;
		if (strstr(last, "\r\n") != NULL && strlen(last) >= 4 && last[3] == ' ')
			return last[0] == want ? 0 : -1;
	}
}

static bool test_deliver(struct test_run *t, const char *message_id)
{
	char server[256], port[16];
	snprintf(server, sizeof(server), "%s", t->server);
	snprintf(port, sizeof(port), "%s", t->port);
	const char *protocol = t->protocol;
	bool ok = test_lmtp(t, message_id);
	snprintf(t->server, sizeof(t->server), "%s", server);
	snprintf(t->port, sizeof(t->port), "%s", port);
	t->protocol = protocol;
	return ok;
}

static bool test_lmtp(struct test_run *t, const char *message_id)
{
	test_begin(t);
	t->protocol = "lmtp";
	struct settings_db *db;
	char *error = NULL, *socket_path = NULL;
	if (settings_db_open(t->datadir, true, &db, &error) < 0 ||
	    settings_db_get(db, "lmtp", "unix-socket", &socket_path, &error) < 0) {
		bool r = test_end(t, "Deliver test message", false, "%s", error);
		free(error);
		return r;
	}
	settings_db_close(&db);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (socket_path[0] == '/')
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", socket_path);
	else
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", t->datadir, socket_path);
	free(socket_path);
	snprintf(t->server, sizeof(t->server), "%s", sun.sun_path);
	t->port[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (fd >= 0)
			close(fd);
		return test_end(t, "Deliver test message", false,
				"cannot reach the lmtp service at %s (is it started?)",
				sun.sun_path);
	}
	char buf[4096];
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	bool ok = lmtp_expect(fd, buf, sizeof(buf), '2') == 0;
	if (ok) {
		dprintf(fd, "LHLO posternctl\r\n");
		ok = lmtp_expect(fd, buf, sizeof(buf), '2') == 0;
	}
	if (ok) {
		dprintf(fd, "MAIL FROM:<>\r\n");
		ok = lmtp_expect(fd, buf, sizeof(buf), '2') == 0;
	}
	if (ok) {
		dprintf(fd, "RCPT TO:<%s>\r\n", t->address);
		ok = lmtp_expect(fd, buf, sizeof(buf), '2') == 0;
	}
	if (ok) {
		dprintf(fd, "DATA\r\n");
		ok = lmtp_expect(fd, buf, sizeof(buf), '3') == 0;
	}
	if (ok) {
		dprintf(fd,
			"From: posternctl <postmaster@localhost>\r\nTo: <%s>\r\n"
			"Subject: postern connectivity test\r\nDate: %s\r\nMessage-ID: %s\r\n\r\n"
			"This message was sent by posternctl test and is deleted by it.\r\n.\r\n",
			t->user, date, message_id);
		ok = lmtp_expect(fd, buf, sizeof(buf), '2') == 0;
	}
	dprintf(fd, "QUIT\r\n");
	close(fd);
	char *nl = strstr(buf, "\r\n");
	if (nl != NULL)
		*nl = '\0';
	return test_end(t, "Deliver test message", ok, "lmtp refused it: %s", buf);
}

/* ---- settings of the instance ---- */

/* the first binding of a list as host and port */
static int test_binding(const char *datadir, const char *service, const char *key, char *host,
			size_t hsize, char *port, size_t psize, bool quiet)
{
	struct settings_db *db;
	char *error = NULL, *value = NULL;
	if (settings_db_open(datadir, true, &db, &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		return -1;
	}
	int r = settings_db_get(db, service, key, &value, &error);
	settings_db_close(&db);
	if (r < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		return -1;
	}
	struct net_addr *addrs = NULL;
	size_t n = 0;
	if (net_addr_parse_list(value, &addrs, &n, &error) < 0 || n == 0) {
		free(error);
		free(value);
		free(addrs);
		if (!quiet)
			fprintf(stderr, "posternctl: %s has no %s; give --server and --port\n",
				service, key);
		return -1;
	}
	free(value);
	char text[160];
	net_addr_format(&addrs[0], text, sizeof(text));
	free(addrs);
	char *colon = strrchr(text, ':');
	*colon = '\0';
	char *h = text;
	if (h[0] == '[') {
		h++;
		h[strlen(h) - 1] = '\0';
	}
	/* a wildcard address is reached through loopback */
	if (strcmp(h, "0.0.0.0") == 0)
		h = (char *)"127.0.0.1";
	else if (strcmp(h, "::") == 0)
		h = (char *)"::1";
	snprintf(host, hsize, "%s", h);
	snprintf(port, psize, "%s", colon + 1);
	return 0;
}

static void test_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: posternctl test pop3|imap4|smtp --user NAME [--password-stdin]\n"
	    "                  [--server HOST] [--port N] [--connection plaintext|ssl|tls]\n"
	    "                  [--light] [--timeout SECONDS] [--trust-any-certificate] [--json]\n"
	    "  Logs in through the front end (smtp: the submission service; ssl is port\n"
	    "  465, tls is STARTTLS on 587) and reports each step with its latency.\n"
	    "  pop3 and imap4 without --light also get a test message into the mailbox\n"
	    "  (through the submission service when it is running and the user may\n"
	    "  send, else through the lmtp service), find it and delete it; smtp without\n"
	    "  --light sends a test message to the user and finds and deletes it over\n"
	    "  IMAP4, or POP3 when only that is running and enabled for the user. The\n"
	    "  password is read from standard input. Exit status 0 only when every step\n"
	    "  succeeded.\n");
}

static void test_print(const struct test_run *t, bool json)
{
	if (json) {
		printf("[");
		for (size_t i = 0; i < t->nsteps; i++) {
			const struct test_step *s = &t->steps[i];
			printf("%s{\"server\":\"%s\",\"protocol\":\"%s\",\"scenario\":\"%s\","
			       "\"result\":\"%s\",\"latency_ms\":%.1f,\"error\":\"",
			       i ? "," : "", s->server, s->protocol, s->scenario, s->result, s->ms);
			for (const char *p = s->error; *p; p++) {
				if (*p == '"' || *p == '\\')
					putchar('\\');
				putchar((unsigned char)*p < 0x20 ? ' ' : *p);
			}
			printf("\"}");
		}
		printf("]\n");
		return;
	}
	printf("%-30s %-22s %-8s %10s  %s\n", "SERVER", "SCENARIO", "RESULT", "LATENCY", "ERROR");
	for (size_t i = 0; i < t->nsteps; i++) {
		const struct test_step *s = &t->steps[i];
		char server[320];
		snprintf(server, sizeof(server), "%s://%s", s->protocol, s->server);
		printf("%-30s %-22s %-8s %8.1fms  %s\n", server, s->scenario, s->result, s->ms,
		       s->error);
	}
}

static int test_read_password(char *out, size_t size)
{
	if (fgets(out, (int)size, stdin) == NULL)
		return -1;
	out[strcspn(out, "\r\n")] = '\0';
	return out[0] != '\0' ? 0 : -1;
}

/* ---- the instance: what runs, what the user may do ---- */

/* True when posternd runs service. */
static bool test_running(const char *datadir, const char *service)
{
	char cmd[64], *reply = NULL, *error = NULL;
	snprintf(cmd, sizeof(cmd), "status %s", service);
	int r = admin_control_request(datadir, cmd, &reply, &error);
	bool running = r == 1 && reply != NULL && strstr(reply, "\tstate=running") != NULL;
	free(reply);
	free(error);
	return running;
}

struct test_user {
	bool pop3, imap4, smtp;
	bool save_sent; /* copies of submitted mail go to Sent */
	char address[300];
};

/* The user's switches and address from the directory (all on, and
 * user@domain, when the directory cannot be read: the test then finds out
 * the hard way). */
static void test_user_info(struct test_run *t, struct test_user *u)
{
	memset(u, 0, sizeof(*u));
	u->pop3 = u->imap4 = u->smtp = true;
	char *error = NULL, *domain = NULL, *setting = NULL;
	struct directory *dir = NULL;
	struct directory_user *du = NULL;
	enum directory_save_sent save = DIRECTORY_SAVE_SENT_DEFAULT;
	if (directory_open(t->datadir, true, &dir, &error) == 0) {
		if (directory_meta_get(dir, DIRECTORY_META_DOMAIN, &domain, &error) <= 0)
			domain = NULL;
		if (directory_user_get(dir, t->user, &du, &error) == 1) {
			u->pop3 = du->pop3_enabled;
			u->imap4 = du->imap4_enabled;
			u->smtp = du->smtp_enabled;
			save = du->save_sent;
		}
	}
	free(error);
	error = NULL;
	directory_close(&dir);
	if (save == DIRECTORY_SAVE_SENT_DEFAULT) {
		struct settings_db *db = NULL;
		bool on = false;
		if (settings_db_open(t->datadir, true, &db, &error) == 0 &&
		    settings_db_get(db, "submission", "save-sent", &setting, &error) >= 0 &&
		    setting != NULL && settings_parse_bool(setting, &on) == 0)
			save = on ? DIRECTORY_SAVE_SENT_ON : DIRECTORY_SAVE_SENT_OFF;
		settings_db_close(&db);
		free(error);
		free(setting);
	}
	u->save_sent = save == DIRECTORY_SAVE_SENT_ON;
	if (strchr(t->user, '@') != NULL)
		snprintf(u->address, sizeof(u->address), "%s", t->user);
	else
		snprintf(u->address, sizeof(u->address), "%s@%s", du != NULL ? du->name : t->user,
			 domain != NULL ? domain : "localhost");
	directory_user_free(&du);
	free(domain);
}

/* Where the smtp test finds its message again: IMAP4 when it (front and
 * back end) runs and the user may use it, else POP3, else NULL. */
static const char *test_retrieval(struct test_run *t, const struct test_user *u)
{
	if (u->imap4 && test_running(t->datadir, "imap4") &&
	    test_running(t->datadir, "imap4-backend"))
		return "imap4";
	if (u->pop3 && test_running(t->datadir, "pop3") && test_running(t->datadir, "pop3-backend"))
		return "pop3";
	return NULL;
}

/* Point t at service's listener (SSL when it has one, else STARTTLS); the
 * host stays when the administrator named one. */
static int test_target(struct test_run *t, const char *service, bool keep_host)
{
	char host[256], port[16];
	t->connection = TEST_SSL;
	if (test_binding(t->datadir, service, "ssl-bindings", host, sizeof(host), port,
			 sizeof(port), true) < 0) {
		t->connection = TEST_TLS;
		if (test_binding(t->datadir, service, "unencrypted-or-tls-bindings", host,
				 sizeof(host), port, sizeof(port), true) < 0)
			return -1;
	}
	if (!keep_host)
		snprintf(t->server, sizeof(t->server), "%s", host);
	snprintf(t->port, sizeof(t->port), "%s", port);
	return 0;
}

/* The smtp test's second half: find the message over protocol and delete
 * it. */
static bool test_retrieve(struct test_run *t, const char *protocol, bool keep_host,
			  const char *message_id)
{
	t->protocol = protocol;
	t->tag = 0;
	if (test_target(t, protocol, keep_host) < 0) {
		test_begin(t);
		return test_end(t, "Connect", false, "%s has no listener in the settings",
				protocol);
	}
	bool ok = test_connect(t);
	if (ok && t->connection == TEST_SSL)
		ok = test_tls(t);
	if (ok)
		ok = strcmp(protocol, "pop3") == 0 ? test_pop3(t, message_id)
						   : test_imap(t, message_id);
	return ok;
}

/* The pop3/imap4 test's message, through the submission service as one
 * step. */
static bool test_submit(struct test_run *t, const char *message_id)
{
	char server[256], port[16];
	snprintf(server, sizeof(server), "%s", t->server);
	snprintf(port, sizeof(port), "%s", t->port);
	const char *protocol = t->protocol;
	enum test_connection connection = t->connection;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	t->protocol = "smtp";
	t->record = false;
	t->quiet[0] = '\0';
	bool ok = test_target(t, "submission", false) == 0;
	if (!ok)
		snprintf(t->quiet, sizeof(t->quiet), "the submission service has no listener");
	ok = ok && test_connect(t);
	if (ok && t->connection == TEST_SSL)
		ok = test_tls(t);
	if (ok)
		ok = test_smtp(t, message_id, NULL);
	test_disconnect(t);
	t->record = true;
	t->started = start;
	ok = test_end(t, "Submit test message", ok, "%s", t->quiet);
	snprintf(t->server, sizeof(t->server), "%s", server);
	snprintf(t->port, sizeof(t->port), "%s", port);
	t->protocol = protocol;
	t->connection = connection;
	t->tag = 0;
	return ok;
}

/* The steps a run should take, to list those it never reached. */
struct test_plan {
	struct {
		const char *scenario;
		const char *protocol;
	} steps[TEST_MAX_STEPS];
	size_t n;
};

static void test_plan_add(struct test_plan *p, const char *scenario, const char *protocol)
{
	if (p->n < TEST_MAX_STEPS) {
		p->steps[p->n].scenario = scenario;
		p->steps[p->n++].protocol = protocol;
	}
}

/* One session's steps; find and remove (may be NULL) between login and
 * logout. */
static void test_plan_session(struct test_plan *p, const char *protocol,
			      enum test_connection connection, const char *find, const char *remove)
{
	test_plan_add(p, "Connect", protocol);
	if (connection == TEST_SSL)
		test_plan_add(p, "TLS", protocol);
	test_plan_add(p, "Greeting", protocol);
	if (connection == TEST_TLS)
		test_plan_add(p, "TLS", protocol);
	test_plan_add(p, "Capabilities", protocol);
	test_plan_add(p, "Login", protocol);
	if (find != NULL)
		test_plan_add(p, find, protocol);
	if (remove != NULL)
		test_plan_add(p, remove, protocol);
	test_plan_add(p, "Logout", protocol);
}

int admin_test_main(const char *datadir, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		test_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	static struct test_run t;
	memset(&t, 0, sizeof(t));
	t.fd = -1;
	t.datadir = datadir;
	t.timeout_ms = 120 * 1000;
	t.connection = TEST_SSL;
	t.record = true;
	if (strcmp(argv[1], "pop3") == 0 || strcmp(argv[1], "imap4") == 0 ||
	    strcmp(argv[1], "smtp") == 0) {
		t.protocol = argv[1];
	} else {
		fprintf(stderr, "posternctl: test: protocol must be pop3, imap4 or smtp\n");
		return 2;
	}
	bool json = false, port_given = false;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--user") == 0 && v != NULL) {
			t.user = v;
			i++;
		} else if (strcmp(a, "--password-stdin") == 0) {
			/* the default; accepted for scripts that say it */
		} else if (strcmp(a, "--server") == 0 && v != NULL) {
			snprintf(t.server, sizeof(t.server), "%s", v);
			i++;
		} else if (strcmp(a, "--port") == 0 && v != NULL) {
			snprintf(t.port, sizeof(t.port), "%s", v);
			port_given = true;
			i++;
		} else if (strcmp(a, "--connection") == 0 && v != NULL) {
			if (strcasecmp(v, "plaintext") == 0)
				t.connection = TEST_PLAINTEXT;
			else if (strcasecmp(v, "ssl") == 0)
				t.connection = TEST_SSL;
			else if (strcasecmp(v, "tls") == 0)
				t.connection = TEST_TLS;
			else {
				fprintf(stderr, "posternctl: test: --connection plaintext, ssl or "
						"tls\n");
				return 2;
			}
			i++;
		} else if (strcmp(a, "--timeout") == 0 && v != NULL) {
			long s = strtol(v, NULL, 10);
			if (s < 1 || s > 3600) {
				fprintf(stderr, "posternctl: test: --timeout 1 to 3600 seconds\n");
				return 2;
			}
			t.timeout_ms = (int)s * 1000;
			i++;
		} else if (strcmp(a, "--light") == 0) {
			t.light = true;
		} else if (strcmp(a, "--trust-any-certificate") == 0) {
			t.trust_any = true;
		} else if (strcmp(a, "--json") == 0) {
			json = true;
		} else {
			test_usage(stderr);
			return 2;
		}
	}
	if (t.user == NULL) {
		fprintf(stderr, "posternctl: test: --user NAME is required\n");
		return 2;
	}
	if (test_read_password(t.password, sizeof(t.password)) < 0) {
		fprintf(stderr, "posternctl: test: give the password on standard input\n");
		return 2;
	}
	/* where to connect: the front end's own bindings unless told */
	const char *service = strcmp(t.protocol, "smtp") == 0 ? "submission" : t.protocol;
	bool server_given = t.server[0] != '\0';
	if (!server_given || !port_given) {
		char host[256], port[16];
		const char *key =
		    t.connection == TEST_SSL ? "ssl-bindings" : "unencrypted-or-tls-bindings";
		if (test_binding(datadir, service, key, host, sizeof(host), port, sizeof(port),
				 false) < 0)
			return 1;
		if (!server_given)
			snprintf(t.server, sizeof(t.server), "%s", host);
		if (!port_given)
			snprintf(t.port, sizeof(t.port), "%s", port);
	}
	struct test_user u;
	test_user_info(&t, &u);
	snprintf(t.address, sizeof(t.address), "%s", u.address);

	char message_id[160] = "";
	if (!t.light) {
		unsigned char rnd[8];
		RAND_bytes(rnd, sizeof(rnd));
		const char *at = strrchr(u.address, '@');
		snprintf(message_id, sizeof(message_id),
			 "<posternctl-test.%02x%02x%02x%02x%02x%02x%02x%02x@%s>", rnd[0], rnd[1],
			 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7],
			 at != NULL ? at + 1 : "localhost");
	}
	struct test_plan plan = {0};
	bool ok;
	const char *retrieval = NULL; /* smtp: "imap4" or "pop3" */
	if (strcmp(t.protocol, "smtp") == 0) {
		if (!t.light)
			retrieval = test_retrieval(&t, &u);
		const char *refuse = NULL;
		if (!t.light && retrieval == NULL)
			refuse = "neither IMAP4 nor POP3 is running and enabled for this user: the "
				 "test message could not be found again, so it is not sent";
		test_plan_session(&plan, "smtp", t.connection,
				  !t.light ? "Send test message" : NULL, NULL);
		if (retrieval != NULL)
			test_plan_session(&plan, retrieval, TEST_SSL, "Find message",
					  "Delete message");
		ok = test_connect(&t);
		if (ok && t.connection == TEST_SSL)
			ok = test_tls(&t);
		if (ok)
			ok = test_smtp(&t, t.light ? NULL : message_id, refuse);
		if (ok && retrieval != NULL) {
			test_disconnect(&t);
			t.sent_copy = u.save_sent && strcmp(retrieval, "imap4") == 0;
			ok = test_retrieve(&t, retrieval, server_given, message_id);
			if (ok && u.save_sent && strcmp(retrieval, "pop3") == 0)
				fprintf(
				    stderr,
				    "posternctl: note: %s keeps copies in Sent; the copy of the "
				    "test message stays there (POP3 cannot reach it)\n",
				    t.user);
		}
	} else {
		bool submit = false;
		if (!t.light) {
			/* the path a mail program's message takes, when it can be
			 * cleaned up afterwards: POP3 cannot reach a copy in Sent */
			submit = u.smtp && test_running(datadir, "submission") &&
				 test_running(datadir, "lmtp") &&
				 (strcmp(t.protocol, "imap4") == 0 || !u.save_sent);
			t.sent_copy = submit && u.save_sent;
			plan.steps[plan.n].scenario =
			    submit ? "Submit test message" : "Deliver test message";
			plan.steps[plan.n++].protocol = submit ? "smtp" : "lmtp";
		}
		test_plan_session(&plan, t.protocol, t.connection, !t.light ? "Find message" : NULL,
				  !t.light ? "Delete message" : NULL);
		ok = t.light ||
		     (submit ? test_submit(&t, message_id) : test_deliver(&t, message_id));
		ok = ok && test_connect(&t);
		if (ok && t.connection == TEST_SSL)
			ok = test_tls(&t);
		if (ok)
			ok = strcmp(t.protocol, "pop3") == 0
				 ? test_pop3(&t, t.light ? NULL : message_id)
				 : test_imap(&t, t.light ? NULL : message_id);
	}
	/* steps never reached are reported as skipped */
	for (size_t i = t.nsteps; i < plan.n; i++)
		test_skip(&t, plan.steps[i].scenario, plan.steps[i].protocol);
	for (size_t i = 0; i < t.nsteps; i++)
		ok = ok && strcmp(t.steps[i].result, "Failure") != 0;
	test_print(&t, json);
	if (t.ssl != NULL)
		SSL_free(t.ssl);
	if (t.ctx != NULL)
		SSL_CTX_free(t.ctx);
	if (t.fd >= 0)
		close(t.fd);
	OPENSSL_cleanse(t.password, sizeof(t.password));
	return ok ? 0 : 1;
}
