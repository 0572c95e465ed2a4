#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imapd/imapd_private.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "store/store.h"

/* The not-authenticated state (the front end's XLOGIN, an administrator's
 * direct LOGIN) and the commands of every state: CAPABILITY, NOOP, LOGOUT,
 * ID, ENABLE. */

/* RFC 7888: LITERAL+ or LITERAL-, never both */
static const char *imapd_literal_cap(const struct imapd_session *s)
{
	return s->srv->literal_minus ? "LITERAL-" : "LITERAL+";
}

const char *imapd_capabilities_pre(const struct imapd_session *s)
{
	static char caps[128];
	snprintf(caps, sizeof(caps), "IMAP4rev1 IMAP4rev2 %s ID", imapd_literal_cap(s));
	return caps;
}

const char *imapd_capabilities(const struct imapd_session *s)
{
	static char caps[768];
	snprintf(caps, sizeof(caps),
		 "IMAP4rev1 IMAP4rev2 %s ID"
		 " ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN "
		 "SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS "
		 "ESEARCH SEARCHRES CONDSTORE QRESYNC BINARY STATUS=SIZE UTF8=ACCEPT QUOTA "
		 "QUOTA=RES-STORAGE SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT "
		 "THREAD=REFERENCES WITHIN MULTIAPPEND COMPRESS=DEFLATE OBJECTID SAVEDATE "
		 "APPENDLIMIT=%llu",
		 imapd_literal_cap(s), (unsigned long long)s->srv->append_limit);
	return caps;
}

/* "<tag> XLOGIN user client-address expiry ticket" from the front end. */
bool imapd_xlogin(struct imapd_session *s, char *line, size_t len)
{
	if (strlen(line) != len)
		return false;
	char *sp = strchr(line, ' ');
	if (sp == NULL || strncasecmp(sp + 1, "XLOGIN ", 7) != 0)
		return false;
	*sp = '\0';
	metrics_command_begin(&s->metrics, "XLOGIN");
	char *args = sp + 8;
	char *fields[5];
	unsigned n = 0;
	for (char *save = NULL, *f = strtok_r(args, " ", &save); f != NULL;
	     f = strtok_r(NULL, " ", &save)) {
		if (n == 5)
			break;
		fields[n++] = f;
	}
	free(s->login_tag);
	s->login_tag = xstrdup(line);
	if (n != 4 || strlen(line) > IMAP_PARSER_MAX_TAG) {
		metrics_command_end(&s->metrics);
		conn_printf(s->conn, "%s BAD Usage: XLOGIN user client-address expiry ticket\r\n",
			    s->login_tag);
		return true;
	}
	free(s->client);
	s->client = xstrdup(fields[1]);
	if (imapd_verify_ticket(s, fields[0], fields[1], fields[2], fields[3]) < 0) {
		metrics_command_end(&s->metrics);
		conn_printf(s->conn,
			    "%s NO [UNAVAILABLE] Authentication is temporarily "
			    "unavailable\r\n",
			    s->login_tag);
	}
	return true;
}

/* An administrator's direct login (direct-admin-login):
 * LOGIN user*admin admin-password. */
void imapd_cmd_login(struct imapd_session *s, struct imap_command *cmd)
{
	if (!imapd_direct_login_allowed(s)) {
		imapd_done(s, IMAP_NO, IMAP_CODE_AUTHENTICATIONFAILED, NULL,
			   "This back end serves front ends only (direct-admin-login is off)");
		return;
	}
	const struct imap_cmd_login *l = &cmd->u.login;
	const char *star = strchr(l->user, '*');
	if (star == NULL || star == l->user || star[1] == '\0' || strlen(l->user) != l->user_len ||
	    strlen(l->password) != l->password_len) {
		imapd_done(s, IMAP_BAD, IMAP_CODE_NONE, NULL,
			   "Usage: LOGIN user*administrator "
			   "password");
		return;
	}
	char *target = xstrndup(l->user, (size_t)(star - l->user));
	free(s->client);
	s->client = xstrdup(conn_peer(s->conn));
	free(s->login_tag);
	s->login_tag = xstrdup(cmd->tag);
	s->cmd = NULL;
	if (imapd_direct_login(s, star + 1, l->password, target) < 0)
		conn_printf(s->conn,
			    "%s NO [UNAVAILABLE] Authentication is temporarily "
			    "unavailable\r\n",
			    s->login_tag);
	free(target);
}

void imapd_login_verified(struct imapd_session *s, bool ok, const char *user,
			  unsigned long long quota, const char *reason)
{
	metrics_command_end(&s->metrics);
	conn_input_resume(s->conn);
	s->state = IMAPD_NOT_AUTH;
	const char *tag = s->login_tag != NULL ? s->login_tag : "*";
	if (!ok || user == NULL) {
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "login refused for client %s: %s",
			s->client != NULL ? s->client : "?", reason);
		conn_printf(s->conn, "%s NO [AUTHENTICATIONFAILED] Login refused\r\n", tag);
		return;
	}
	char *error = NULL;
	if (imapd_user_attach(s, user, quota, &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: cannot open the mailbox: %s",
			user, error);
		free(error);
		conn_printf(s->conn, "%s NO [UNAVAILABLE] Cannot open the mailbox\r\n", tag);
		return;
	}
	s->user = xstrdup(user);
	s->state = IMAPD_AUTH;
	conn_set_idle_timeout(s->conn, s->srv->auth_timeout_ms);
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "login user=%s client=%s", user, s->client);
	conn_printf(s->conn, "%s OK [CAPABILITY %s] Logged in\r\n", tag, imapd_capabilities(s));
}

void imapd_cmd_capability(struct imapd_session *s, struct imap_command *cmd)
{
	(void)cmd;
	imapd_untagged(s, "CAPABILITY %s",
		       s->state == IMAPD_NOT_AUTH ? imapd_capabilities_pre(s)
						  : imapd_capabilities(s));
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "Capability completed");
}

void imapd_cmd_noop(struct imapd_session *s, struct imap_command *cmd)
{
	imapd_poll_changes(s);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "%s completed", cmd->def->name);
}

void imapd_cmd_logout(struct imapd_session *s, struct imap_command *cmd)
{
	(void)cmd;
	imapd_untagged(s, "BYE Logging out");
	/* no updates after BYE */
	s->state = s->state == IMAPD_SELECTED ? IMAPD_AUTH : s->state;
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "Logout completed");
	imapd_close(s);
}

void imapd_cmd_id(struct imapd_session *s, struct imap_command *cmd)
{
	(void)cmd;
	imapd_untagged(s, "ID (\"name\" \"postern\" \"version\" \"%s\")", "0.1.0");
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "ID completed");
}

/* COMPRESS DEFLATE (RFC 4978): the OK goes out uncompressed, everything
 * after it both ways is raw DEFLATE. The front end relays the bytes
 * unchanged, so the client's stream ends here. */
void imapd_cmd_compress(struct imapd_session *s, struct imap_command *cmd)
{
	(void)cmd;
	if (conn_compress_active(s->conn)) {
		imapd_done(s, IMAP_NO, IMAP_CODE_COMPRESSIONACTIVE, NULL,
			   "Compression is already active");
		return;
	}
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "DEFLATE active");
	const char *error;
	if (conn_compress_start(s->conn, &error) < 0) {
		/* the OK is out: the stream cannot go on uncompressed */
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "COMPRESS: %s", error);
		imapd_close(s);
	}
}

void imapd_cmd_enable(struct imapd_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_enable *e = &cmd->u.enable;
	struct imap_buf *b = &s->out;
	imap_buf_str(b, "* ENABLED");
	for (unsigned i = 0; i < e->count; i++) {
		if (strcmp(e->capabilities[i], "CONDSTORE") == 0) {
			if (!s->condstore)
				imap_buf_str(b, " CONDSTORE");
			s->condstore = true;
		} else if (strcmp(e->capabilities[i], "QRESYNC") == 0) {
			/* QRESYNC implies CONDSTORE (RFC 7162 3.2.3) */
			if (!s->condstore)
				imap_buf_str(b, " CONDSTORE");
			if (!s->qresync)
				imap_buf_str(b, " QRESYNC");
			s->condstore = s->qresync = true;
		} else if (strcmp(e->capabilities[i], "IMAP4REV2") == 0) {
			if (!s->rev2)
				imap_buf_str(b, " IMAP4rev2");
			s->rev2 = true;
		} else if (strcmp(e->capabilities[i], "UTF8=ACCEPT") == 0) {
			if (!s->utf8)
				imap_buf_str(b, " UTF8=ACCEPT");
			/* mailbox names are UTF-8 on the wire from the next command on */
			s->utf8 = true;
			s->parse_ctx.utf8_accept = true;
			imap_parser_set_ctx(s->parser, &s->parse_ctx);
		}
	}
	imap_buf_str(b, "\r\n");
	imapd_flush(s);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "Enabled");
}

/* QUOTA (RFC 9208): one quota root, "", over all folders, with the
 * STORAGE resource in KiB. GETQUOTA, GETQUOTAROOT; SETQUOTA is for the
 * administrator (posternctl user set). */
static void imapd_write_quota(struct imapd_session *s)
{
	struct store *store = imapd_store(s);
	uint64_t limit = store_quota_limit(store);
	if (limit == 0)
		imapd_untagged(s, "QUOTA \"\" ()");
	else
		imapd_untagged(s, "QUOTA \"\" (STORAGE %llu %llu)",
			       (unsigned long long)((store_quota_used(store) + 1023) / 1024),
			       (unsigned long long)(limit / 1024));
}

void imapd_cmd_getquota(struct imapd_session *s, struct imap_command *cmd)
{
	if (cmd->u.quota.root[0] != '\0') {
		imapd_done(s, IMAP_NO, IMAP_CODE_NONEXISTENT, NULL, "The only quota root is \"\"");
		return;
	}
	imapd_write_quota(s);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "GETQUOTA completed");
}

void imapd_cmd_getquotaroot(struct imapd_session *s, struct imap_command *cmd)
{
	imap_buf_str(&s->out, "* QUOTAROOT ");
	imap_write_mailbox(&s->out, cmd->u.mailbox.mailbox.name, s->utf8);
	imap_buf_str(&s->out, " \"\"\r\n");
	imapd_flush(s);
	imapd_write_quota(s);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "GETQUOTAROOT completed");
}

void imapd_cmd_setquota(struct imapd_session *s, struct imap_command *cmd)
{
	(void)cmd;
	imapd_done(s, IMAP_NO, IMAP_CODE_NOPERM, NULL, "Quotas are set by the administrator");
}
