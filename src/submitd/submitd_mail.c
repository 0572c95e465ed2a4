#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/settings.h"
#include "lib/xalloc.h"
#include "mail/mail_address.h"
#include "mail/mail_header.h"
#include "net/conn.h"
#include "proto/smtp/smtp_server.h"
#include "queue/queue.h"
#include "queue/queue_runner.h"
#include "submitd/submitd_private.h"

/* One submission transaction: the sender policy at MAIL, recipients
 * checked at RCPT (local ones with authd), the body spooled into the queue
 * with the header section held in memory until it ends (to check From and
 * to add Message-ID and Date when missing), and at the end the entry
 * committed and its local recipients delivered before the reply. */

/* ---- policy ---- */

bool submitd_sender_allowed(const struct submit_session *s, const char *address)
{
	if (s->address != NULL && strcasecmp(address, s->address) == 0)
		return true;
	unsigned n;
	char **list = settings_list_split(s->send_as != NULL ? s->send_as : "", &n);
	bool ok = false;
	for (unsigned i = 0; i < n && !ok; i++)
		ok = strcasecmp(list[i], address) == 0;
	settings_list_free(&list);
	return ok;
}

static bool sm_local_domain(const struct submit_session *s, const char *domain)
{
	if (s->domain != NULL && s->domain[0] != '\0' && strcasecmp(domain, s->domain) == 0)
		return true;
	for (char **d = s->sd->local_domains; d != NULL && *d != NULL; d++)
		if (strcasecmp(domain, *d) == 0)
			return true;
	return false;
}

/* ---- MAIL ---- */

int submitd_mail(struct submit_session *s, const struct smtp_mail *mail)
{
	if (s->user == NULL) {
		smtp_server_reply(s->srv, 530, "5.7.0", "Authentication required");
		return -1;
	}
	if (mail->path.null || !submitd_sender_allowed(s, mail->path.address)) {
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "refused: user=%s may not send as <%s>",
			s->user, mail->path.address);
		smtp_server_reply(s->srv, 553, "5.7.1", "<%s> Sender address not owned by user %s",
				  mail->path.address, s->user);
		return -1;
	}
	submitd_reset(s);
	s->in_mail = true;
	s->sender = xstrdup(mail->path.address);
	s->smtputf8 = mail->smtputf8;
	s->eightbit = mail->body == SMTP_BODY_8BITMIME;
	s->ret = mail->ret == SMTP_RET_FULL   ? QUEUE_RET_FULL
		 : mail->ret == SMTP_RET_HDRS ? QUEUE_RET_HDRS
					      : QUEUE_RET_DEFAULT;
	s->envid = xstrdup(mail->envid != NULL ? mail->envid : "");
	smtp_server_reply(s->srv, 250, "2.1.0", "<%s> Sender ok", s->sender);
	return 1;
}

/* ---- RCPT ---- */

static unsigned sm_notify(unsigned engine_mask)
{
	unsigned n = 0;
	if (engine_mask & SMTP_NOTIFY_NEVER)
		n |= QUEUE_NOTIFY_NEVER;
	if (engine_mask & SMTP_NOTIFY_SUCCESS)
		n |= QUEUE_NOTIFY_SUCCESS;
	if (engine_mask & SMTP_NOTIFY_FAILURE)
		n |= QUEUE_NOTIFY_FAILURE;
	if (engine_mask & SMTP_NOTIFY_DELAY)
		n |= QUEUE_NOTIFY_DELAY;
	return n;
}

static void sm_add_rcpt(struct submit_session *s, const char *address, bool local, const char *lmtp,
			unsigned notify, const char *orcpt)
{
	s->rcpts = xrealloc(s->rcpts, (s->nrcpts + 1) * sizeof(*s->rcpts));
	struct submit_rcpt *r = &s->rcpts[s->nrcpts++];
	r->address = xstrdup(address);
	r->local = local;
	r->lmtp = xstrdup(lmtp != NULL ? lmtp : "");
	r->notify = notify;
	r->orcpt = xstrdup(orcpt != NULL ? orcpt : "");
}

static void sm_lookup_clear(struct submit_session *s)
{
	s->lookup_id = 0;
	free(s->lookup_address);
	s->lookup_address = NULL;
	free(s->lookup_local);
	s->lookup_local = NULL;
	free(s->lookup_orcpt);
	s->lookup_orcpt = NULL;
}

static int sm_lookup_send(struct submit_session *s, const char *user)
{
	struct ipc_field f[] = {{"id", ""}, {"user", user}};
	s->lookup_id = submitd_authd_send(s, IPC_USER_LOOKUP, f, 2);
	return s->lookup_id != 0 ? 0 : -1;
}

int submitd_rcpt(struct submit_session *s, const struct smtp_rcpt *rcpt)
{
	const struct smtp_path *p = &rcpt->path;
	if (p->domain[0] == '\0') {
		/* <Postmaster>: the instance's own */
		smtp_server_reply(s->srv, 550, "5.1.1", "<%s> Recipient needs a domain",
				  p->address);
		return -1;
	}
	unsigned notify = sm_notify(rcpt->notify);
	if (!sm_local_domain(s, p->domain)) {
		sm_add_rcpt(s, p->address, false, NULL, notify, rcpt->orcpt);
		smtp_server_reply(s->srv, 250, "2.1.5", "<%s> Recipient ok", p->address);
		return 1;
	}
	/* a local recipient: as the lmtp service looks it up, "+detail" off */
	char local[SMTP_MAX_PATH + 1];
	snprintf(local, sizeof(local), "%s", p->local_part);
	char *plus = strchr(local, '+');
	if (plus != NULL && plus != local)
		*plus = '\0';
	char *first = xasprintf("%s@%s", local, p->domain);
	int r = sm_lookup_send(s, first);
	free(first);
	if (r < 0) {
		smtp_server_reply(s->srv, 451, "4.3.0", "<%s> Temporary lookup failure",
				  p->address);
		return -1;
	}
	s->lookup_address = xstrdup(p->address);
	s->lookup_local = xstrdup(local);
	s->lookup_notify = notify;
	s->lookup_orcpt = xstrdup(rcpt->orcpt != NULL ? rcpt->orcpt : "");
	return 0;
}

static void sm_copy_reply(struct submit_session *s, const struct ipc_msg *msg);

void submitd_lookup_timeout(struct submit_session *s)
{
	if (s->copy_pending) {
		sm_copy_reply(s, NULL);
		return;
	}
	log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "recipient <%s>: authd did not answer",
		s->lookup_address);
	smtp_server_reply(s->srv, 451, "4.3.0", "<%s> Temporary lookup failure", s->lookup_address);
	sm_lookup_clear(s);
	smtp_server_complete(s->srv, -1);
}

void submitd_lookup_reply(struct submit_session *s, const struct ipc_msg *msg)
{
	if (s->copy_pending) {
		s->lookup_id = 0;
		sm_copy_reply(s, msg);
		return;
	}
	const char *result = ipc_msg_get(msg, "result");
	const char *lmtp = ipc_msg_get(msg, "lmtp-address");
	const char *address = s->lookup_address != NULL ? s->lookup_address : "";
	s->lookup_id = 0;
	if (result != NULL && strcmp(result, "unknown") == 0 && s->lookup_local != NULL) {
		/* not a name with a domain: try the local part alone */
		char *local = s->lookup_local;
		s->lookup_local = NULL;
		int r = sm_lookup_send(s, local);
		free(local);
		if (r == 0)
			return;
		result = "tempfail";
	}
	int verdict;
	if (result != NULL && strcmp(result, "ok") == 0 && lmtp != NULL && *lmtp != '\0') {
		sm_add_rcpt(s, address, true, lmtp, s->lookup_notify, s->lookup_orcpt);
		smtp_server_reply(s->srv, 250, "2.1.5", "<%s> Recipient ok", address);
		verdict = 1;
	} else if (result != NULL && strcmp(result, "unknown") == 0) {
		metrics_delivery(METRICS_DELIVERY_UNKNOWN_RECIPIENT, 1);
		log_msg(LOG_LEVEL_INFO, conn_log(s->conn), "rejected: unknown recipient <%s>",
			address);
		smtp_server_reply(s->srv, 550, "5.1.1", "<%s> User unknown", address);
		verdict = -1;
	} else {
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "recipient <%s>: %s", address,
			result != NULL && strcmp(result, "ok") == 0
			    ? "its back end has no lmtp address"
			    : "lookup failed");
		smtp_server_reply(s->srv, 451, "4.3.0", "<%s> Temporary lookup failure", address);
		verdict = -1;
	}
	sm_lookup_clear(s);
	smtp_server_complete(s->srv, verdict);
}

/* ---- DATA ---- */

/* The trace field (RFC 5321 4.4) with the TLS details (RFC 8314 4.3 asks
 * for them) and the protocol name of RFC 3848. */
static char *sm_received(struct submit_session *s)
{
	char date[64];
	submitd_date(date, sizeof(date));
	bool tls = conn_tls_active(s->conn);
	char tls_text[200] = "";
	if (tls)
		snprintf(tls_text, sizeof(tls_text), "\r\n\t(using %s with cipher %s)",
			 conn_tls_version(s->conn), conn_tls_cipher(s->conn));
	/* "for" names the recipient only when there is one: a copy must not
	 * tell its reader who else got the message */
	char *for_text =
	    s->nrcpts == 1 ? xasprintf("\r\n\tfor <%s>", s->rcpts[0].address) : xstrdup("");
	char *received =
	    xasprintf("Received: from %s (%s)\r\n"
		      "\tby %s (postern) with %s id %s%s%s;\r\n"
		      "\t%s\r\n",
		      s->helo != NULL ? s->helo : "unknown", conn_peer(s->conn), s->sd->hostname,
		      tls ? "ESMTPSA" : "ESMTPA", queue_writer_id(s->qw), tls_text, for_text, date);
	free(for_text);
	return received;
}

int submitd_data_begin(struct submit_session *s)
{
	char *error = NULL;
	if (queue_writer_begin(s->sd->queue_dir, &s->qw, &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "queue: %s", error);
		free(error);
		smtp_server_reply(s->srv, 451, "4.3.0",
				  "Local error in processing, try again later");
		return -1;
	}
	char *received = sm_received(s);
	if (queue_writer_write(s->qw, received, strlen(received), &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "queue: %s", error);
		free(error);
		s->write_failed = true;
	}
	free(received);
	s->hdr = NULL;
	s->hdr_len = 0;
	s->hdr_done = s->hdr_too_big = s->from_bad = false;
	/* the Sent copy: everything from here on, as the client sent it (with
	 * the Message-ID and Date we add) */
	s->copy = s->save_sent != NULL && s->user_lmtp != NULL && s->user_lmtp[0] != '\0' &&
		  (strcmp(s->save_sent, "on") == 0 ||
		   (strcmp(s->save_sent, "default") == 0 && s->sd->save_sent));
	s->copy_offset = queue_writer_size(s->qw);
	if (s->copy) {
		s->copy_sha = EVP_MD_CTX_new();
		if (s->copy_sha == NULL ||
		    EVP_DigestInit_ex(s->copy_sha, EVP_sha256(), NULL) != 1) {
			log_msg(LOG_LEVEL_ERROR, conn_log(s->conn),
				"cannot start a SHA-256 digest");
			s->write_failed = true;
		}
	}
	return 1;
}

static void sm_write(struct submit_session *s, const void *data, size_t len)
{
	char *error = NULL;
	if (s->write_failed || len == 0)
		return;
	if (s->copy_sha != NULL)
		EVP_DigestUpdate(s->copy_sha, data, len);
	if (queue_writer_write(s->qw, data, len, &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "queue: %s", error);
		free(error);
		s->write_failed = true;
	}
}

/* The header section ended after hlen bytes of s->hdr (its last line's
 * CRLF included): check From, add what is missing, write it out. */
static void sm_header_done(struct submit_session *s, size_t hlen)
{
	s->hdr_done = true;
	char *from = mail_header_get(s->hdr, hlen, "From");
	if (from != NULL) {
		struct mail_address *list = mail_address_parse(from);
		for (struct mail_address *a = list; a != NULL; a = a->next) {
			if (a->domain == NULL)
				continue; /* group markers */
			char *addr = xasprintf("%s@%s", a->mailbox, a->domain);
			if (!submitd_sender_allowed(s, addr)) {
				log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
					"refused: user=%s may not send as From: %s", s->user, addr);
				s->from_bad = true;
			}
			free(addr);
		}
		mail_address_free(&list);
		free(from);
	}
	sm_write(s, s->hdr, hlen);
	char *msgid = mail_header_get(s->hdr, hlen, "Message-ID");
	if (msgid == NULL) {
		char *field =
		    xasprintf("Message-ID: <%s@%s>\r\n", queue_writer_id(s->qw), s->sd->hostname);
		sm_write(s, field, strlen(field));
		free(field);
	}
	free(msgid);
	char *date = mail_header_get(s->hdr, hlen, "Date");
	if (date == NULL) {
		char now[64];
		submitd_date(now, sizeof(now));
		char *field = xasprintf("Date: %s\r\n", now);
		sm_write(s, field, strlen(field));
		free(field);
	}
	free(date);
	sm_write(s, s->hdr + hlen, s->hdr_len - hlen);
	free(s->hdr);
	s->hdr = NULL;
	s->hdr_len = 0;
}

void submitd_data(struct submit_session *s, const void *data, size_t len)
{
	if (s->hdr_done) {
		sm_write(s, data, len);
		return;
	}
	if (s->hdr_too_big)
		return;
	size_t old = s->hdr_len;
	if (old + len > SUBMIT_MAX_HEADER_SIZE + 4) {
		s->hdr_too_big = true;
		free(s->hdr);
		s->hdr = NULL;
		s->hdr_len = 0;
		return;
	}
	s->hdr = xrealloc(s->hdr, old + len + 1);
	memcpy(s->hdr + old, data, len);
	s->hdr_len = old + len;
	s->hdr[s->hdr_len] = '\0';
	/* the body starts at the first empty line (the engine gives CRLF) */
	if (s->hdr_len >= 2 && memcmp(s->hdr, "\r\n", 2) == 0) {
		sm_header_done(s, 0);
		return;
	}
	size_t from = old >= 3 ? old - 3 : 0;
	for (size_t i = from; i + 4 <= s->hdr_len; i++) {
		if (memcmp(s->hdr + i, "\r\n\r\n", 4) == 0) {
			sm_header_done(s, i + 2);
			return;
		}
	}
	if (s->hdr_len > SUBMIT_MAX_HEADER_SIZE) {
		s->hdr_too_big = true;
		free(s->hdr);
		s->hdr = NULL;
		s->hdr_len = 0;
	}
}

/* ---- the end: commit, deliver locally, answer ---- */

static void sm_local_done(void *ctx, struct queue_entry *e)
{
	struct submit_session *s = ctx;
	s->delivering = false;
	size_t local = 0, sent = 0, failed = 0, remote = 0;
	const char *failure = NULL;
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];
		if (r->route == QUEUE_ROUTE_SENT)
			continue;
		if (r->route != QUEUE_ROUTE_LOCAL) {
			remote++;
			continue;
		}
		local++;
		if (r->state == QUEUE_RCPT_SENT)
			sent++;
		else if (r->state == QUEUE_RCPT_FAILED) {
			failed++;
			failure = r->status;
		}
	}
	metrics_delivery(METRICS_DELIVERY_DELIVERED, sent);
	metrics_delivery(METRICS_DELIVERY_REJECTED, failed);
	metrics_delivery(METRICS_DELIVERY_TEMPFAIL, local - sent - failed);
	metrics_delivery(METRICS_DELIVERY_QUEUED, remote);
	if (remote == 0 && local > 0 && failed == local && failure != NULL && strlen(failure) > 4) {
		/* nothing was delivered: the client hears why, no report follows */
		for (size_t i = 0; i < e->nrcpts; i++)
			e->rcpts[i].state = QUEUE_RCPT_BOUNCED;
		unsigned code = (unsigned)strtoul(failure, NULL, 10);
		char enh[16];
		queue_status_code(failure, enh);
		const char *text = failure + 4;
		if (strncmp(text, enh, strlen(enh)) == 0)
			text += strlen(enh);
		while (*text == ' ')
			text++;
		smtp_server_reply(s->srv, code >= 500 && code < 600 ? code : 554, enh, "%s", text);
		smtp_server_complete(s->srv, -1);
		submitd_sync_input(s);
		return;
	}
	log_msg(LOG_LEVEL_INFO, conn_log(s->conn),
		"accepted: id=%s user=%s from=<%s> size=%llu local=%zu delivered=%zu remote=%zu",
		e->id, s->user, e->sender, (unsigned long long)e->size, local, sent, remote);
	if (sent == local && remote == 0)
		smtp_server_reply(s->srv, 250, "2.0.0", "Ok: delivered as %s", e->id);
	else
		smtp_server_reply(s->srv, 250, "2.0.0", "Ok: queued as %s", e->id);
	smtp_server_complete(s->srv, 1);
	submitd_sync_input(s);
}

static int sm_commit(struct submit_session *s, const char *mac);

int submitd_data_end(struct submit_session *s, const struct smtp_data_result *result)
{
	if (result->error != SMTP_DATA_OK) {
		smtp_server_reply_data_error(s->srv, result->error, NULL);
		submitd_reset(s);
		return -1;
	}
	if (!s->hdr_done && !s->hdr_too_big) {
		/* a message of header fields only: add the missing end of line */
		if (s->hdr_len > 0 && s->hdr[s->hdr_len - 1] != '\n') {
			s->hdr = xrealloc(s->hdr, s->hdr_len + 3);
			memcpy(s->hdr + s->hdr_len, "\r\n", 3);
			s->hdr_len += 2;
		}
		sm_header_done(s, s->hdr_len);
	}
	if (s->hdr_too_big) {
		smtp_server_reply(s->srv, 552, "5.3.4", "Message header too large (over %u bytes)",
				  SUBMIT_MAX_HEADER_SIZE);
		submitd_reset(s);
		return -1;
	}
	if (s->from_bad) {
		smtp_server_reply(s->srv, 553, "5.7.1", "From header address not owned by user %s",
				  s->user);
		submitd_reset(s);
		return -1;
	}
	if (s->write_failed) {
		smtp_server_reply(s->srv, 451, "4.3.0",
				  "Local error in processing, try again later");
		submitd_reset(s);
		return -1;
	}
	if (!s->copy)
		return sm_commit(s, NULL);
	/* the copy for the Sent folder needs authd's word first */
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	if (EVP_DigestFinal_ex(s->copy_sha, md, &mdlen) != 1 || mdlen != 32) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "cannot finish a SHA-256 digest");
		smtp_server_reply(s->srv, 451, "4.3.0",
				  "Local error in processing, try again later");
		submitd_reset(s);
		return -1;
	}
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(s->copy_digest + 2 * i, 3, "%02x", md[i]);
	struct ipc_field f[] = {{"id", ""}, {"user", s->user}, {"digest", s->copy_digest}};
	s->lookup_id = submitd_authd_send(s, IPC_SENT_AUTHORISE, f, 3);
	if (s->lookup_id == 0) {
		smtp_server_reply(s->srv, 451, "4.3.0",
				  "Local error in processing, try again later");
		submitd_reset(s);
		return -1;
	}
	s->copy_pending = true;
	return 0;
}

/* Commit the entry (with the Sent copy when mac is not NULL) and deliver
 * its local recipients; the reply follows in sm_local_done(). Returns the
 * engine's verdict: 0 pending, -1 refused (replied). */
static int sm_commit(struct submit_session *s, const char *mac)
{
	struct queue_entry *e = xcalloc(1, sizeof(*e));
	e->sender = xstrdup(s->sender);
	e->user = xstrdup(s->user);
	/* reports about this message go to the user's mailbox when the sender
	 * is the user's own address in a local domain */
	const char *at = strrchr(s->sender, '@');
	bool sender_local =
	    at != NULL && sm_local_domain(s, at + 1) && strcasecmp(s->sender, s->address) == 0;
	e->sender_lmtp = xstrdup(sender_local ? s->user_lmtp : "");
	e->envid = xstrdup(s->envid != NULL ? s->envid : "");
	e->ret = (enum queue_ret)s->ret;
	e->smtputf8 = s->smtputf8;
	e->eightbit = s->eightbit;
	e->created = (long long)time(NULL);
	for (size_t i = 0; i < s->nrcpts; i++) {
		const struct submit_rcpt *r = &s->rcpts[i];
		queue_entry_add_rcpt(e, r->address,
				     r->local ? QUEUE_ROUTE_LOCAL : QUEUE_ROUTE_REMOTE, r->lmtp,
				     r->notify, r->orcpt);
	}
	if (mac != NULL) {
		/* no report about the copy: its failure is logged, not mailed */
		queue_entry_add_rcpt(e, s->address, QUEUE_ROUTE_SENT, s->user_lmtp,
				     QUEUE_NOTIFY_NEVER, NULL);
		e->copy_offset = s->copy_offset;
		e->copy_auth = xasprintf("%s.%s", s->copy_digest, mac);
	}
	int lock_fd = -1;
	char *error = NULL;
	if (queue_writer_commit(&s->qw, e, &lock_fd, &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "queue: %s", error);
		free(error);
		queue_entry_free(&e);
		smtp_server_reply(s->srv, 451, "4.3.0",
				  "Local error in processing, try again later");
		submitd_reset(s);
		return -1;
	}
	submitd_reset(s);
	/* the message is durable: from here on it is the queue's */
	s->delivering = true;
	queue_runner_deliver(s->sd->runner, e, lock_fd, sm_local_done, s);
	return 0;
}

static void sm_copy_reply(struct submit_session *s, const struct ipc_msg *msg)
{
	s->copy_pending = false;
	const char *result = msg != NULL ? ipc_msg_get(msg, "result") : NULL;
	const char *mac = msg != NULL ? ipc_msg_get(msg, "mac") : NULL;
	if (result == NULL || strcmp(result, "ok") != 0 || mac == NULL || strlen(mac) != 64) {
		const char *reason = msg != NULL ? ipc_msg_get(msg, "reason") : NULL;
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "sent copy: authd: %s",
			msg == NULL	 ? "no answer"
			: reason != NULL ? reason
					 : "refused");
		smtp_server_reply(s->srv, 451, "4.3.0",
				  "Local error in processing, try again later");
		submitd_reset(s);
		smtp_server_complete(s->srv, -1);
		return;
	}
	int r = sm_commit(s, mac);
	if (r < 0)
		smtp_server_complete(s->srv, -1);
}

void submitd_reset(struct submit_session *s)
{
	queue_writer_abort(&s->qw);
	free(s->hdr);
	s->hdr = NULL;
	s->hdr_len = 0;
	s->hdr_done = s->hdr_too_big = s->from_bad = s->write_failed = false;
	EVP_MD_CTX_free(s->copy_sha);
	s->copy_sha = NULL;
	s->copy = s->copy_pending = false;
	for (size_t i = 0; i < s->nrcpts; i++) {
		free(s->rcpts[i].address);
		free(s->rcpts[i].lmtp);
		free(s->rcpts[i].orcpt);
	}
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	free(s->sender);
	s->sender = NULL;
	free(s->envid);
	s->envid = NULL;
	s->in_mail = false;
	/* a lookup still out is forgotten: its answer finds no session id */
	sm_lookup_clear(s);
}
