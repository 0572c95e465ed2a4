#include <ctype.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/worker.h"
#include "lib/xalloc.h"
#include "lmtpd/lmtpd_private.h"
#include "net/conn.h"
#include "proto/smtp/smtp_server.h"
#include "store/store.h"

/* One LMTP transaction: recipients checked with authd, the body streamed
 * into every recipient's store, one reply per recipient at the end.
 *
 * Streaming rather than spooling: at DATA each distinct user's store is
 * opened and an appender begun (store_append_begin writes to the Maildir's
 * tmp/), and every body chunk the engine hands out is written to every open
 * appender at once. Memory stays bounded by the engine's and conn's buffers
 * whatever the message size, there is no spool file to clean up after a
 * crash (an unfinished tmp/ file is the store's to reap), and no second
 * copy of the bytes is made. The cost is one open store per distinct user
 * for the duration of DATA, bounded by LMTP_MAX_RECIPIENTS. Recipients of
 * the same user (alice and alice+tag) share one stored copy and each get
 * the reply of that copy. */

/* ---- MAIL ---- */

int lmtp_delivery_mail(struct lmtp_session *s, const struct smtp_mail *mail)
{
	lmtp_delivery_reset(s);
	s->sender = xstrdup(mail->path.address);
	s->size_hint = mail->size;
	s->smtputf8 = mail->smtputf8;
	smtp_server_reply(s->srv, 250, "2.1.0", "<%s> Sender ok", s->sender);
	return 1;
}

/* ---- RCPT: ask authd ---- */

static void lmtp_lookup_clear(struct lmtp_session *s)
{
	s->lookup_id = 0;
	if (s->lookup_timer != NULL)
		event_del(s->lookup_timer);
	free(s->lookup_address);
	s->lookup_address = NULL;
	free(s->lookup_local);
	s->lookup_local = NULL;
	free(s->lookup_sent);
	s->lookup_sent = NULL;
	free(s->lookup_user);
	s->lookup_user = NULL;
	s->lookup_verifying = false;
}

static void lmtp_lookup_done(struct lmtp_session *s, int verdict)
{
	lmtp_lookup_clear(s);
	smtp_server_complete(s->srv, verdict);
}

static void lmtp_lookup_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct lmtp_session *s = arg;
	if (s->lookup_id == 0)
		return;
	log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "recipient <%s>: authd did not answer",
		s->lookup_address);
	smtp_server_reply(s->srv, 451, "4.3.0", "<%s> Temporary lookup failure", s->lookup_address);
	lmtp_lookup_done(s, -1);
	lmtpd_sync_input(s);
}

/* Ask authd about user (type IPC_USER_LOOKUP), or have it check a sent
 * copy's authorisation (IPC_SENT_VERIFY with the digest and MAC); the
 * answer comes to lmtp_delivery_lookup_reply(). */
static int lmtp_authd_send(struct lmtp_session *s, int type, const char *user, const char *digest,
			   const char *mac)
{
	struct lmtpd *lm = s->lm;
	if (++lm->next_lookup_id == 0)
		lm->next_lookup_id = 1;
	char id[16];
	snprintf(id, sizeof(id), "%u", lm->next_lookup_id);
	struct ipc_field f[] = {{"id", id}, {"user", user}, {"digest", digest}, {"mac", mac}};
	if (worker_authd_send(lm->worker, type, f, type == IPC_SENT_VERIFY ? 4 : 2) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "authd unreachable");
		return -1;
	}
	s->lookup_id = lm->next_lookup_id;
	if (s->lookup_timer == NULL)
		s->lookup_timer =
		    evtimer_new(worker_event_base(lm->worker), lmtp_lookup_timeout_cb, s);
	struct timeval tv = {LMTP_LOOKUP_TIMEOUT_S, 0};
	evtimer_add(s->lookup_timer, &tv);
	return 0;
}

static int lmtp_lookup_send(struct lmtp_session *s, const char *user)
{
	return lmtp_authd_send(s, IPC_USER_LOOKUP, user, NULL, NULL);
}

/* "DIGEST.MAC": 64 hex digits each. */
static bool lmtp_sent_copy_valid(const char *value)
{
	if (strlen(value) != 129 || value[64] != '.')
		return false;
	for (size_t i = 0; i < 129; i++)
		if (i != 64 && !isxdigit((unsigned char)value[i]))
			return false;
	return true;
}

/* The recipient is looked up as "local@domain" first (directory names may
 * carry a domain), then, when that is unknown, as the bare local part. A
 * "+detail" is dropped in both: alice+tag@example.test -> alice@example.test
 * -> alice. The domain itself is not checked (see lmtpd.h). */
int lmtp_delivery_rcpt(struct lmtp_session *s, const struct smtp_rcpt *rcpt)
{
	char local[SMTP_MAX_PATH + 1];
	snprintf(local, sizeof(local), "%s", rcpt->path.local_part);
	char *plus = strchr(local, '+');
	if (plus != NULL && plus != local)
		*plus = '\0';
	if (local[0] == '\0') {
		smtp_server_reply(s->srv, 550, "5.1.1", "<%s> User unknown", rcpt->path.address);
		return -1;
	}
	if (rcpt->sent_copy != NULL && !lmtp_sent_copy_valid(rcpt->sent_copy)) {
		smtp_server_reply(s->srv, 501, "5.5.4", "Bad XSENTCOPY parameter");
		return -1;
	}
	bool has_domain = rcpt->path.domain[0] != '\0';
	char *first = has_domain ? xasprintf("%s@%s", local, rcpt->path.domain) : xstrdup(local);
	int r = lmtp_lookup_send(s, first);
	free(first);
	if (r < 0) {
		smtp_server_reply(s->srv, 451, "4.3.0", "<%s> Temporary lookup failure",
				  rcpt->path.address);
		return -1;
	}
	free(s->lookup_address);
	s->lookup_address = xstrdup(rcpt->path.address);
	free(s->lookup_local);
	s->lookup_local = has_domain ? xstrdup(local) : NULL;
	free(s->lookup_sent);
	s->lookup_sent = rcpt->sent_copy != NULL ? xstrdup(rcpt->sent_copy) : NULL;
	return 0;
}

/* The box of user's copy: one per user, and one per user and authorised
 * sent copy (digest NULL for a delivery to INBOX). */
static size_t lmtp_box_for(struct lmtp_session *s, const char *user, uint64_t quota,
			   const char *address, const char *digest)
{
	for (size_t i = 0; i < s->nboxes; i++)
		if (strcmp(s->boxes[i].user, user) == 0 &&
		    s->boxes[i].sent_copy == (digest != NULL) &&
		    (digest == NULL || strcasecmp(s->boxes[i].digest, digest) == 0))
			return i;
	struct lmtp_box *b = &s->boxes[s->nboxes];
	memset(b, 0, sizeof(*b));
	b->user = xstrdup(user);
	b->quota = quota;
	b->first_rcpt = xstrdup(address);
	b->state = LMTP_BOX_WAITING;
	if (digest != NULL) {
		b->sent_copy = true;
		snprintf(b->digest, sizeof(b->digest), "%s", digest);
	}
	return s->nboxes++;
}

/* authd answered whether the XSENTCOPY of the recipient being looked up is
 * authorised for the user found. */
static void lmtp_verify_reply(struct lmtp_session *s, const struct ipc_msg *msg)
{
	const char *result = ipc_msg_get(msg, "result");
	const char *address = s->lookup_address != NULL ? s->lookup_address : "";
	int verdict;
	if (result != NULL && strcmp(result, "ok") == 0 && s->nrcpts < LMTP_MAX_RECIPIENTS) {
		char digest[65];
		snprintf(digest, sizeof(digest), "%.64s", s->lookup_sent);
		struct lmtp_rcpt *r = &s->rcpts[s->nrcpts++];
		r->address = xstrdup(address);
		r->box = lmtp_box_for(s, s->lookup_user, s->lookup_quota, address, digest);
		smtp_server_reply(s->srv, 250, "2.1.5", "<%s> Sent copy ok", address);
		verdict = 1;
	} else if (result != NULL && strcmp(result, "fail") == 0) {
		const char *reason = ipc_msg_get(msg, "reason");
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "refused: sent copy for <%s>: %s",
			address, reason != NULL ? reason : "?");
		smtp_server_reply(s->srv, 550, "5.7.1", "<%s> Sent copy not authorised", address);
		verdict = -1;
	} else {
		smtp_server_reply(s->srv, 451, "4.3.0", "<%s> Temporary lookup failure", address);
		verdict = -1;
	}
	lmtp_lookup_done(s, verdict);
}

void lmtp_delivery_lookup_reply(struct lmtp_session *s, const struct ipc_msg *msg)
{
	const char *result = ipc_msg_get(msg, "result");
	const char *user = ipc_msg_get(msg, "user");
	const char *quota_text = ipc_msg_get(msg, "quota");
	const char *address = s->lookup_address != NULL ? s->lookup_address : "";
	s->lookup_id = 0;
	if (s->lookup_verifying) {
		lmtp_verify_reply(s, msg);
		return;
	}
	if (result != NULL && strcmp(result, "unknown") == 0 && s->lookup_local != NULL) {
		/* not a name with a domain: try the local part alone */
		char *local = s->lookup_local;
		s->lookup_local = NULL;
		int r = lmtp_lookup_send(s, local);
		free(local);
		if (r == 0)
			return;
		smtp_server_reply(s->srv, 451, "4.3.0", "<%s> Temporary lookup failure", address);
		lmtp_lookup_done(s, -1);
		return;
	}
	int verdict;
	if (result != NULL && strcmp(result, "ok") == 0 && user != NULL && *user != '\0' &&
	    s->lookup_sent != NULL) {
		/* a copy for the user's Sent folder: only with authd's word */
		char digest[65];
		snprintf(digest, sizeof(digest), "%.64s", s->lookup_sent);
		s->lookup_user = xstrdup(user);
		s->lookup_quota = quota_text != NULL ? strtoull(quota_text, NULL, 10) : 0;
		s->lookup_verifying = true;
		if (lmtp_authd_send(s, IPC_SENT_VERIFY, user, digest, s->lookup_sent + 65) == 0)
			return;
		smtp_server_reply(s->srv, 451, "4.3.0", "<%s> Temporary lookup failure", address);
		lmtp_lookup_done(s, -1);
		return;
	}
	if (result != NULL && strcmp(result, "ok") == 0 && user != NULL && *user != '\0' &&
	    s->nrcpts < LMTP_MAX_RECIPIENTS) {
		uint64_t quota = quota_text != NULL ? strtoull(quota_text, NULL, 10) : 0;
		struct lmtp_rcpt *r = &s->rcpts[s->nrcpts++];
		r->address = xstrdup(address);
		r->box = lmtp_box_for(s, user, quota, address, NULL);
		smtp_server_reply(s->srv, 250, "2.1.5", "<%s> Recipient ok", address);
		verdict = 1;
	} else if (result != NULL && strcmp(result, "unknown") == 0) {
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "rejected: unknown recipient <%s>",
			address);
		metrics_delivery(METRICS_DELIVERY_UNKNOWN_RECIPIENT, 1);
		smtp_server_reply(s->srv, 550, "5.1.1", "<%s> User unknown", address);
		verdict = -1;
	} else {
		const char *reason = ipc_msg_get(msg, "reason");
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "recipient <%s>: lookup failed: %s",
			address,
			reason != NULL	 ? reason
			: result != NULL ? result
					 : "?");
		smtp_server_reply(s->srv, 451, "4.3.0", "<%s> Temporary lookup failure", address);
		verdict = -1;
	}
	lmtp_lookup_done(s, verdict);
}

/* ---- DATA: open every user's store ---- */

static void lmtp_box_fail(struct lmtp_session *s, struct lmtp_box *b, const char *what, char *error)
{
	log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "delivery to %s: %s: %s", b->user, what,
		error != NULL ? error : "?");
	free(error);
	if (b->append != NULL)
		store_append_abort(&b->append);
	store_close(&b->store);
	b->state = LMTP_BOX_FAILED;
}

/* The folder a sent copy goes to: the one with SPECIAL-USE \Sent (every
 * new store has one), else "Sent" made with that role (or taken as it is
 * when a folder of that name exists without it). Returns the name
 * (malloc'ed) or NULL with *error_r. */
static char *lmtp_sent_folder(struct store *store, char **error_r)
{
	struct store_folder_info *list = NULL;
	size_t n = 0;
	if (store_folder_list(store, &list, &n, error_r) < 0)
		return NULL;
	char *name = NULL;
	for (size_t i = 0; i < n && name == NULL; i++)
		if (list[i].exists && list[i].role != NULL &&
		    strcmp(list[i].role, STORE_ROLE_SENT) == 0)
			name = xstrdup(list[i].name);
	store_folder_list_free(&list, n);
	if (name != NULL)
		return name;
	char *error = NULL;
	if (store_folder_create(store, "Sent", STORE_ROLE_SENT, &error) < 0) {
		*error_r = error;
		return NULL;
	}
	free(error);
	return xstrdup("Sent");
}

/* The trace lines every stored copy starts with (RFC 5321 4.4). */
static char *lmtp_trace_header(struct lmtp_session *s, const struct lmtp_box *b)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	long off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	snprintf(date, sizeof(date), "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
		 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 sign, off / 60, off % 60);
	/* a unix socket peer has no address worth naming */
	const char *peer = conn_peer(s->conn);
	if (strncmp(peer, "unix:", 5) == 0)
		peer = "local";
	return xasprintf("Return-Path: <%s>\r\n"
			 "Received: from %s (%s)\r\n"
			 "\tby %s (postern) with %s id %s\r\n"
			 "\tfor <%s>; %s\r\n",
			 s->sender != NULL ? s->sender : "", s->lhlo != NULL ? s->lhlo : "unknown",
			 peer, s->lm->hostname, s->smtputf8 ? "UTF8LMTP" : "LMTP",
			 conn_session_id(s->conn), b->first_rcpt, date);
}

int lmtp_delivery_data_begin(struct lmtp_session *s)
{
	for (size_t i = 0; i < s->nboxes; i++) {
		struct lmtp_box *b = &s->boxes[i];
		char *error = NULL;
		if (store_open(s->lm->mail_root, b->user, b->quota, &b->store, &error) < 0) {
			lmtp_box_fail(s, b, "cannot open the store", error);
			continue;
		}
		/* a sent copy is the message as submitted: no trace fields */
		char *header = b->sent_copy ? xstrdup("") : lmtp_trace_header(s, b);
		size_t header_len = strlen(header);
		bool over_quota = false;
		uint64_t hint = s->size_hint != 0 ? s->size_hint + header_len : 0;
		char *folder = b->sent_copy ? lmtp_sent_folder(b->store, &error) : xstrdup("INBOX");
		if (folder == NULL) {
			free(header);
			lmtp_box_fail(s, b, "cannot find or make the Sent folder", error);
			continue;
		}
		int begun =
		    store_append_begin(b->store, folder, hint, &b->append, &over_quota, &error);
		free(folder);
		if (begun < 0) {
			free(header);
			if (over_quota) {
				free(error);
				store_close(&b->store);
				b->state = LMTP_BOX_OVER_QUOTA;
				continue;
			}
			lmtp_box_fail(s, b, "cannot begin the message", error);
			continue;
		}
		int r = store_append_write(b->append, header, header_len, &error);
		free(header);
		if (r < 0) {
			lmtp_box_fail(s, b, "cannot write", error);
			continue;
		}
		if (b->sent_copy) {
			b->sha = EVP_MD_CTX_new();
			if (b->sha == NULL || EVP_DigestInit_ex(b->sha, EVP_sha256(), NULL) != 1) {
				lmtp_box_fail(s, b, "SHA-256", xstrdup("cannot start a digest"));
				continue;
			}
		}
		b->state = LMTP_BOX_OPEN;
	}
	/* the 354 goes out even when no store could be opened: LMTP wants the
	 * body before the per-recipient replies */
	return 1;
}

void lmtp_delivery_data(struct lmtp_session *s, const void *data, size_t len)
{
	for (size_t i = 0; i < s->nboxes; i++) {
		struct lmtp_box *b = &s->boxes[i];
		char *error = NULL;
		if (b->state != LMTP_BOX_OPEN)
			continue;
		if (b->sha != NULL)
			EVP_DigestUpdate(b->sha, data, len);
		if (store_append_write(b->append, data, len, &error) < 0)
			lmtp_box_fail(s, b, "cannot write", error);
	}
}

/* ---- the end: commit, then one reply per recipient ---- */

int lmtp_delivery_data_end(struct lmtp_session *s, const struct smtp_data_result *result)
{
	for (size_t i = 0; i < s->nboxes; i++) {
		struct lmtp_box *b = &s->boxes[i];
		if (b->state != LMTP_BOX_OPEN)
			continue;
		if (result->error != SMTP_DATA_OK) {
			store_append_abort(&b->append);
			store_close(&b->store);
			b->state = LMTP_BOX_REJECTED;
			continue;
		}
		if (b->sent_copy) {
			unsigned char md[EVP_MAX_MD_SIZE];
			unsigned mdlen = 0;
			char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
			if (b->sha != NULL && EVP_DigestFinal_ex(b->sha, md, &mdlen) == 1)
				for (unsigned k = 0; k < mdlen; k++)
					snprintf(hex + 2 * k, 3, "%02x", md[k]);
			if (strcasecmp(hex, b->digest) != 0) {
				log_msg(LOG_LEVEL_WARN, conn_log(s->conn),
					"refused: sent copy for %s: not the authorised message",
					b->user);
				store_append_abort(&b->append);
				store_close(&b->store);
				b->state = LMTP_BOX_MISMATCH;
				continue;
			}
		}
		static const char *const seen[] = {"\\Seen"};
		bool over_quota = false;
		char *error = NULL;
		uint32_t uid = 0;
		int r = store_append_commit(&b->append, b->sent_copy ? seen : NULL,
					    b->sent_copy ? 1 : 0, 0, &uid, &over_quota, &error);
		if (r == 1) {
			b->state = LMTP_BOX_DONE;
			b->uid = uid;
			store_close(&b->store);
		} else if (over_quota) {
			free(error);
			store_close(&b->store);
			b->state = LMTP_BOX_OVER_QUOTA;
		} else {
			lmtp_box_fail(s, b, "cannot commit", error);
		}
	}
	for (size_t i = 0; i < s->nrcpts; i++) {
		const struct lmtp_rcpt *r = &s->rcpts[i];
		const struct lmtp_box *b = &s->boxes[r->box];
		switch (b->state) {
		case LMTP_BOX_DONE:
			log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
				"delivered: from=<%s> to=<%s> user=%s%s uid=%u size=%llu",
				s->sender != NULL ? s->sender : "", r->address, b->user,
				b->sent_copy ? " folder=Sent" : "", b->uid,
				(unsigned long long)result->size);
			smtp_server_reply(s->srv, 250, "2.0.0", "<%s> Saved as UID %u", r->address,
					  b->uid);
			metrics_delivery(METRICS_DELIVERY_DELIVERED, 1);
			break;
		case LMTP_BOX_OVER_QUOTA:
			log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "rejected: <%s> over quota",
				r->address);
			smtp_server_reply(s->srv, 552, "5.2.2", "<%s> Mailbox full: over quota",
					  r->address);
			metrics_delivery(METRICS_DELIVERY_OVER_QUOTA, 1);
			break;
		case LMTP_BOX_REJECTED:
			smtp_server_reply_data_error(s->srv, result->error, r->address);
			metrics_delivery(METRICS_DELIVERY_REJECTED, 1);
			break;
		case LMTP_BOX_MISMATCH:
			smtp_server_reply(s->srv, 554, "5.7.1",
					  "<%s> Not the message the sent copy names", r->address);
			break;
		case LMTP_BOX_WAITING:
		case LMTP_BOX_OPEN:
		case LMTP_BOX_FAILED:
			smtp_server_reply(s->srv, 451, "4.3.0",
					  "<%s> Temporary failure, try again later", r->address);
			metrics_delivery(METRICS_DELIVERY_TEMPFAIL, 1);
			break;
		}
	}
	if (result->error != SMTP_DATA_OK)
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "rejected: message from <%s>: %s",
			s->sender != NULL ? s->sender : "",
			result->error == SMTP_DATA_TOO_BIG ? "too big" : "line too long");
	lmtp_delivery_reset(s);
	return 1;
}

void lmtp_delivery_reset(struct lmtp_session *s)
{
	for (size_t i = 0; i < s->nboxes; i++) {
		struct lmtp_box *b = &s->boxes[i];
		if (b->append != NULL)
			store_append_abort(&b->append);
		store_close(&b->store);
		EVP_MD_CTX_free(b->sha);
		free(b->user);
		free(b->first_rcpt);
	}
	s->nboxes = 0;
	for (size_t i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i].address);
	s->nrcpts = 0;
	free(s->sender);
	s->sender = NULL;
	s->size_hint = 0;
	s->smtputf8 = false;
	/* a lookup still out is forgotten: its answer finds no session id */
	lmtp_lookup_clear(s);
}
