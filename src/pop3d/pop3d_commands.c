#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/protolog.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "pop3d/pop3d_private.h"
#include "store/store.h"

/* POP3 commands on the store. Messages are numbered 1..count over the
 * snapshot taken at login, in ascending UID order; DELE only marks, QUIT
 * expunges (the UPDATE state of RFC 1939); a session that ends any other way
 * changes nothing. */

void pop3d_reply(struct pop3d_session *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	conn_write(s->conn, line, len);
	conn_write(s->conn, "\r\n", 2);
	protolog_line(s->srv->protolog, conn_session_id(s->conn),
		      s->client != NULL ? s->client : conn_peer(s->conn), 'S', line, len);
}

/* the command for the protocol log, with tickets and passwords masked */
static void pop3d_log_command(struct pop3d_session *s, const char *line)
{
	if (!protolog_enabled(s->srv->protolog))
		return;
	char text[600];
	if (strncasecmp(line, "PASS ", 5) == 0)
		snprintf(text, sizeof(text), "PASS *");
	else if (strncasecmp(line, "XLOGIN ", 7) == 0)
		snprintf(text, sizeof(text), "XLOGIN *");
	else
		snprintf(text, sizeof(text), "%s", line);
	protolog_line(s->srv->protolog, conn_session_id(s->conn),
		      s->client != NULL ? s->client : conn_peer(s->conn), 'C', text, strlen(text));
}

static void pop3d_bad(struct pop3d_session *s, const char *text)
{
	pop3d_reply(s, "-ERR %s", text);
	if (++s->bad_commands >= POP3D_MAX_BAD_COMMANDS) {
		pop3d_reply(s, "-ERR Too many invalid commands");
		pop3d_close(s);
	}
}

void pop3d_session_release(struct pop3d_session *s)
{
	if (s->retr_fd >= 0)
		close(s->retr_fd);
	s->retr_fd = -1;
	store_folder_close(&s->inbox);
	store_close(&s->store);
	free(s->deleted);
	s->deleted = NULL;
	free(s->retrieved);
	s->retrieved = NULL;
	s->count = 0;
}

/* ---- argument helpers ---- */

/* a message number argument: 1..count and not deleted. Returns the index
 * (0-based) or -1 after answering the client. */
static long pop3d_msg_arg(struct pop3d_session *s, const char *arg)
{
	if (arg == NULL || *arg == '\0') {
		pop3d_bad(s, "Message number required");
		return -1;
	}
	char *end;
	errno = 0;
	unsigned long n = strtoul(arg, &end, 10);
	if (errno != 0 || *end != '\0' || arg[0] == '-' || arg[0] == '+') {
		pop3d_bad(s, "Invalid message number");
		return -1;
	}
	if (n == 0 || n > s->count) {
		pop3d_reply(s, "-ERR No such message");
		return -1;
	}
	if (s->deleted[n - 1]) {
		pop3d_reply(s, "-ERR Message %lu already deleted", n);
		return -1;
	}
	return (long)(n - 1);
}

static char *pop3d_next_arg(char **rest)
{
	if (*rest == NULL)
		return NULL;
	char *p = *rest;
	while (*p == ' ')
		p++;
	if (*p == '\0') {
		*rest = NULL;
		return NULL;
	}
	char *sp = strchr(p, ' ');
	if (sp != NULL) {
		*sp = '\0';
		*rest = sp + 1;
	} else {
		*rest = NULL;
	}
	return p;
}

/* ---- AUTHORIZATION ---- */

static void pop3d_cmd_xlogin(struct pop3d_session *s, char *args)
{
	char *user = pop3d_next_arg(&args);
	char *peer = pop3d_next_arg(&args);
	char *expiry = pop3d_next_arg(&args);
	char *mac = pop3d_next_arg(&args);
	if (mac == NULL || pop3d_next_arg(&args) != NULL) {
		pop3d_bad(s, "Usage: XLOGIN user client-address expiry ticket");
		return;
	}
	free(s->client);
	s->client = xstrdup(peer);
	if (pop3d_verify_ticket(s, user, peer, expiry, mac) < 0)
		pop3d_reply(s, "-ERR [SYS/TEMP] Authentication is temporarily unavailable");
}

/* The debugging mode for administrators (direct-admin-login): USER
 * target*admin, then PASS with the administrator's own password. */
static void pop3d_cmd_user(struct pop3d_session *s, char *args)
{
	char *star = args != NULL ? strchr(args, '*') : NULL;
	if (!pop3d_direct_login_allowed(s)) {
		pop3d_reply(s, "-ERR [AUTH] This back end serves front ends only (direct-admin-login "
			       "is off)");
		return;
	}
	if (star == NULL || star == args || star[1] == '\0' || strchr(args, ' ') != NULL) {
		pop3d_bad(s, "Usage: USER user*administrator");
		return;
	}
	free(s->direct_user);
	s->direct_user = xstrdup(args);
	pop3d_reply(s, "+OK");
}

static void pop3d_cmd_pass(struct pop3d_session *s, char *args)
{
	if (s->direct_user == NULL || args == NULL) {
		pop3d_bad(s, "Send USER user*administrator first");
		return;
	}
	char *target = s->direct_user;
	s->direct_user = NULL;
	char *star = strchr(target, '*');
	*star = '\0';
	free(s->client);
	s->client = xstrdup(conn_peer(s->conn));
	if (pop3d_direct_login(s, star + 1, args, target) < 0)
		pop3d_reply(s, "-ERR [SYS/TEMP] Authentication is temporarily unavailable");
	free(target);
}

void pop3d_login_verified(struct pop3d_session *s, bool ok, const char *user,
			  unsigned long long quota, const char *reason)
{
	metrics_command_end(&s->metrics);
	conn_input_resume(s->conn);
	s->state = POP3D_AUTHORIZATION;
	if (!ok || user == NULL) {
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "login refused for client %s: %s",
			s->client != NULL ? s->client : "?", reason);
		pop3d_reply(s, "-ERR [AUTH] Login refused");
		return;
	}
	char *error = NULL;
	if (store_open(pop3d_mail_root(s), user, quota, &s->store, &error) < 0 ||
	    store_folder_open(s->store, "INBOX", &s->inbox, &error) <= 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: cannot open the maildrop: %s",
			user, error != NULL ? error : "no INBOX");
		free(error);
		pop3d_session_release(s);
		pop3d_reply(s, "-ERR [SYS/TEMP] Cannot open the maildrop");
		return;
	}
	s->user = xstrdup(user);
	s->count = store_folder_count(s->inbox);
	s->deleted = xcalloc(s->count, sizeof(*s->deleted));
	s->retrieved = xcalloc(s->count, sizeof(*s->retrieved));
	s->state = POP3D_TRANSACTION;
	pop3d_session_set_authenticated_timeout(s);
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "login user=%s client=%s messages=%zu", user,
		s->client, s->count);
	pop3d_reply(s, "+OK Logged in.");
}

/* ---- TRANSACTION ---- */

static void pop3d_cmd_stat(struct pop3d_session *s, char *args)
{
	(void)args;
	size_t n = 0;
	unsigned long long size = 0;
	for (size_t i = 0; i < s->count; i++) {
		if (s->deleted[i])
			continue;
		n++;
		size += store_folder_message(s->inbox, i)->size;
	}
	pop3d_reply(s, "+OK %zu %llu", n, size);
}

static void pop3d_cmd_list(struct pop3d_session *s, char *args)
{
	char *arg = pop3d_next_arg(&args);
	if (arg != NULL) {
		long i = pop3d_msg_arg(s, arg);
		if (i >= 0)
			pop3d_reply(s, "+OK %ld %llu", i + 1,
				    (unsigned long long)store_folder_message(s->inbox, (size_t)i)->size);
		return;
	}
	size_t n = 0;
	unsigned long long size = 0;
	for (size_t i = 0; i < s->count; i++) {
		if (!s->deleted[i]) {
			n++;
			size += store_folder_message(s->inbox, i)->size;
		}
	}
	pop3d_reply(s, "+OK %zu messages (%llu octets)", n, size);
	for (size_t i = 0; i < s->count; i++)
		if (!s->deleted[i])
			conn_printf(s->conn, "%zu %llu\r\n", i + 1,
				    (unsigned long long)store_folder_message(s->inbox, i)->size);
	conn_write(s->conn, ".\r\n", 3);
}

static void pop3d_cmd_uidl(struct pop3d_session *s, char *args)
{
	char *arg = pop3d_next_arg(&args);
	if (arg != NULL) {
		long i = pop3d_msg_arg(s, arg);
		if (i >= 0)
			pop3d_reply(s, "+OK %ld %s", i + 1,
				    store_folder_message(s->inbox, (size_t)i)->guid);
		return;
	}
	pop3d_reply(s, "+OK");
	for (size_t i = 0; i < s->count; i++)
		if (!s->deleted[i])
			conn_printf(s->conn, "%zu %s\r\n", i + 1,
				    store_folder_message(s->inbox, i)->guid);
	conn_write(s->conn, ".\r\n", 3);
}

static void pop3d_dotstuff_out(void *ctx, const char *data, size_t len)
{
	struct pop3d_session *s = ctx;
	conn_write(s->conn, data, len);
}

void pop3d_retr_continue(struct pop3d_session *s)
{
	static char buf[POP3D_READ_CHUNK];
	while (s->retr_fd >= 0 && !conn_output_blocked(s->conn)) {
		ssize_t n = pop3_dotstuff_done(&s->dotstuff) ? 0 : read(s->retr_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* the response is under way: the only honest end is a close */
			log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: reading uid %u: %s",
				s->user, s->retr_uid, strerror(errno));
			close(s->retr_fd);
			s->retr_fd = -1;
			pop3d_close(s);
			return;
		}
		if (n == 0) {
			pop3_dotstuff_finish(&s->dotstuff);
			close(s->retr_fd);
			s->retr_fd = -1;
			/* RETR read the message: IMAP shows it seen after QUIT */
			if (!s->dotstuff.limit_lines)
				s->retrieved[s->retr_index] = true;
			metrics_command_end(&s->metrics);
			conn_input_resume(s->conn);
			return;
		}
		pop3_dotstuff_feed(&s->dotstuff, buf, (size_t)n);
	}
}

static void pop3d_send_message(struct pop3d_session *s, long index, long top_lines)
{
	const struct store_message *m = store_folder_message(s->inbox, (size_t)index);
	int fd = -1;
	char *error = NULL;
	int r = store_message_open(s->inbox, m->uid, &fd, &error);
	if (r <= 0) {
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "user=%s: uid %u: %s", s->user, m->uid,
			r == 0 ? "expunged by another session" : error);
		free(error);
		pop3d_reply(s, r == 0 ? "-ERR Message was removed by another session"
				      : "-ERR [SYS/TEMP] Cannot read the message");
		return;
	}
	if (top_lines < 0)
		pop3d_reply(s, "+OK %llu octets", (unsigned long long)m->size);
	else
		pop3d_reply(s, "+OK");
	s->retr_fd = fd;
	s->retr_uid = m->uid;
	s->retr_index = (size_t)index;
	pop3_dotstuff_init(&s->dotstuff, top_lines, pop3d_dotstuff_out, s);
	/* pipelined commands wait until the message has been sent */
	conn_input_pause(s->conn);
	pop3d_retr_continue(s);
}

static void pop3d_cmd_retr(struct pop3d_session *s, char *args)
{
	long i = pop3d_msg_arg(s, pop3d_next_arg(&args));
	if (i >= 0)
		pop3d_send_message(s, i, -1);
}

static void pop3d_cmd_top(struct pop3d_session *s, char *args)
{
	char *msg = pop3d_next_arg(&args);
	char *lines = pop3d_next_arg(&args);
	if (lines == NULL) {
		pop3d_bad(s, "Usage: TOP message lines");
		return;
	}
	char *end;
	errno = 0;
	long n = strtol(lines, &end, 10);
	if (errno != 0 || *end != '\0' || n < 0) {
		pop3d_bad(s, "Invalid line count");
		return;
	}
	long i = pop3d_msg_arg(s, msg);
	if (i >= 0)
		pop3d_send_message(s, i, n);
}

static void pop3d_cmd_dele(struct pop3d_session *s, char *args)
{
	long i = pop3d_msg_arg(s, pop3d_next_arg(&args));
	if (i < 0)
		return;
	s->deleted[i] = true;
	pop3d_reply(s, "+OK Message %ld deleted", i + 1);
}

static void pop3d_cmd_rset(struct pop3d_session *s, char *args)
{
	(void)args;
	memset(s->deleted, 0, s->count * sizeof(*s->deleted));
	pop3d_reply(s, "+OK");
}

static void pop3d_cmd_noop(struct pop3d_session *s, char *args)
{
	(void)args;
	pop3d_reply(s, "+OK");
}

static void pop3d_cmd_quit(struct pop3d_session *s, char *args)
{
	(void)args;
	if (s->state != POP3D_TRANSACTION) {
		pop3d_reply(s, "+OK Logging out");
		pop3d_close(s);
		return;
	}
	/* UPDATE: retrieved messages become \Seen, deleted ones go */
	for (size_t i = 0; i < s->count; i++) {
		if (!s->retrieved[i] || s->deleted[i] ||
		    (store_folder_message(s->inbox, i)->flags & STORE_FLAG_SEEN) != 0)
			continue;
		char *error = NULL;
		if (store_flags_update(s->inbox, store_folder_message(s->inbox, i)->uid,
				       STORE_FLAG_SEEN, 0, &error) < 0) {
			log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "user=%s: %s", s->user, error);
			free(error);
		}
	}
	uint32_t *uids = xcalloc(s->count + 1, sizeof(*uids));
	size_t n = 0;
	for (size_t i = 0; i < s->count; i++)
		if (s->deleted[i])
			uids[n++] = store_folder_message(s->inbox, i)->uid;
	char *error = NULL;
	if (n > 0 && store_expunge(s->inbox, uids, n, &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: expunge failed: %s", s->user,
			error);
		free(error);
		pop3d_reply(s, "-ERR [SYS/TEMP] Some deleted messages were not removed");
	} else {
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "logout user=%s deleted=%zu", s->user, n);
		pop3d_reply(s, "+OK Logging out, %zu messages deleted", n);
	}
	free(uids);
	pop3d_close(s);
}

static void pop3d_cmd_capa(struct pop3d_session *s, char *args)
{
	(void)args;
	conn_printf(s->conn, "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
			     "AUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION postern\r\n.\r\n");
}

enum pop3d_when { WHEN_AUTH = 1, WHEN_TRANS = 2, WHEN_ANY = 3 };

static const struct {
	const char *name;
	enum pop3d_when when;
	void (*run)(struct pop3d_session *s, char *args);
} pop3d_commands[] = {
	{"XLOGIN", WHEN_AUTH, pop3d_cmd_xlogin}, {"CAPA", WHEN_ANY, pop3d_cmd_capa},
	{"USER", WHEN_AUTH, pop3d_cmd_user},	 {"PASS", WHEN_AUTH, pop3d_cmd_pass},
	{"QUIT", WHEN_ANY, pop3d_cmd_quit},	 {"STAT", WHEN_TRANS, pop3d_cmd_stat},
	{"LIST", WHEN_TRANS, pop3d_cmd_list},	 {"UIDL", WHEN_TRANS, pop3d_cmd_uidl},
	{"RETR", WHEN_TRANS, pop3d_cmd_retr},	 {"TOP", WHEN_TRANS, pop3d_cmd_top},
	{"DELE", WHEN_TRANS, pop3d_cmd_dele},	 {"RSET", WHEN_TRANS, pop3d_cmd_rset},
	{"NOOP", WHEN_TRANS, pop3d_cmd_noop},
};

void pop3d_command(struct pop3d_session *s, char *line, size_t len)
{
	if (strlen(line) != len) {
		pop3d_bad(s, "NUL bytes are not allowed");
		return;
	}
	pop3d_log_command(s, line);
	char *args = strchr(line, ' ');
	if (args != NULL)
		*args++ = '\0';
	metrics_command_begin(&s->metrics, line);
	enum pop3d_when now = s->state == POP3D_TRANSACTION ? WHEN_TRANS : WHEN_AUTH;
	for (size_t i = 0; i < sizeof(pop3d_commands) / sizeof(pop3d_commands[0]); i++) {
		if (strcasecmp(line, pop3d_commands[i].name) != 0)
			continue;
		if ((pop3d_commands[i].when & now) == 0) {
			pop3d_bad(s, now == WHEN_AUTH ? "Not logged in" : "Already logged in");
			return;
		}
		pop3d_commands[i].run(s, args);
		return;
	}
	pop3d_bad(s, "Unknown command");
}
