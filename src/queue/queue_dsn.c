#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "queue/queue.h"
#include "queue/queue_runner.h"

/* Delivery status notifications (RFC 3464, RFC 6522 multipart/report):
 * a human part, the machine-readable delivery-status part, and the
 * original message (or its header for RET=HDRS or a large message). */

const char *queue_status_code(const char *reply, char *buf)
{
	const char *p = reply;
	if (strlen(p) >= 4 && isdigit((unsigned char)p[0]))
		p += 4;
	/* class.subject.detail: 2|4|5 "." 1*3digit "." 1*3digit */
	size_t i = 0;
	if ((p[0] == '2' || p[0] == '4' || p[0] == '5') && p[1] == '.') {
		i = 2;
		size_t d = 0;
		while (isdigit((unsigned char)p[i]) && d < 3) {
			i++;
			d++;
		}
		if (d > 0 && p[i] == '.') {
			i++;
			d = 0;
			while (isdigit((unsigned char)p[i]) && d < 3) {
				i++;
				d++;
			}
			if (d > 0 && (p[i] == ' ' || p[i] == '\0')) {
				memcpy(buf, p, i);
				buf[i] = '\0';
				return buf;
			}
		}
	}
	snprintf(buf, 16, "%c.0.0", reply[0] == '4' ? '4' : '5');
	return buf;
}

static void queue_dsn_date(time_t t, char *buf, size_t size)
{
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* xtext (RFC 3461) decoding of ENVID/ORCPT for the report */
static char *queue_xtext_decode(const char *s)
{
	char *out = xmalloc(strlen(s) + 1);
	size_t o = 0;
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] == '+' && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = {s[i + 1], s[i + 2], '\0'};
			unsigned v = (unsigned)strtoul(hex, NULL, 16);
			out[o++] = v >= 0x20 && v < 0x7f ? (char)v : '?';
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

static bool queue_dsn_wanted(const struct queue_rcpt *r)
{
	return r->state == QUEUE_RCPT_FAILED &&
	       (r->notify == 0 || (r->notify & QUEUE_NOTIFY_FAILURE) != 0);
}

static int queue_dsn_put(struct queue_writer *w, char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int queue_dsn_put(struct queue_writer *w, char **error_r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	int n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0) {
		*error_r = xstrdup("out of memory");
		return -1;
	}
	int r = queue_writer_write(w, text, (size_t)n, error_r);
	free(text);
	return r;
}

/* Copy the original: whole, or up to the end of its header. */
static int queue_dsn_copy(struct queue_writer *w, const char *dir, const struct queue_entry *e,
			  bool headers_only, char **error_r)
{
	char *path = queue_message_path(dir, e->id);
	FILE *f = fopen(path, "re");
	free(path);
	if (f == NULL) {
		*error_r = xasprintf("cannot read the message %s: %s", e->id, strerror(errno));
		return -1;
	}
	char line[8192];
	int ret = 0;
	bool last_lf = true;
	while (ret == 0 && fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		if (headers_only && last_lf &&
		    (strcmp(line, "\r\n") == 0 || strcmp(line, "\n") == 0))
			break;
		ret = queue_writer_write(w, line, len, error_r);
		last_lf = line[len - 1] == '\n';
	}
	fclose(f);
	if (ret == 0 && !last_lf)
		ret = queue_writer_write(w, "\r\n", 2, error_r);
	return ret;
}

int queue_dsn_create(const char *dir, const struct queue_entry *e, const char *hostname,
		     struct queue_entry **dsn_r, int *lock_fd_r, char **error_r)
{
	if (e->sender[0] == '\0')
		return 0; /* never report about a report */
	size_t due = 0;
	for (size_t i = 0; i < e->nrcpts; i++)
		if (queue_dsn_wanted(&e->rcpts[i]))
			due++;
	if (due == 0)
		return 0;
	struct queue_writer *w = NULL;
	if (queue_writer_begin(dir, &w, error_r) < 0)
		return -1;
	time_t now = time(NULL);
	char date[64], arrival[64], code[16];
	queue_dsn_date(now, date, sizeof(date));
	queue_dsn_date((time_t)e->created, arrival, sizeof(arrival));
	char boundary[64];
	snprintf(boundary, sizeof(boundary), "%s.%lld/%s", queue_writer_id(w), (long long)now,
		 "report");
	bool headers_only = e->ret == QUEUE_RET_HDRS || e->size > QUEUE_DSN_MAX_ATTACH;
	int r = queue_dsn_put(w, error_r,
			      "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
			      "To: <%s>\r\n"
			      "Subject: Undelivered Mail Returned to Sender\r\n"
			      "Date: %s\r\n"
			      "Message-ID: <%s.dsn@%s>\r\n"
			      "Auto-Submitted: auto-replied\r\n"
			      "MIME-Version: 1.0\r\n"
			      "Content-Type: multipart/report; report-type=delivery-status;\r\n"
			      "\tboundary=\"%s\"\r\n"
			      "\r\n"
			      "This is a MIME-encapsulated message.\r\n"
			      "\r\n"
			      "--%s\r\n"
			      "Content-Type: text/plain; charset=us-ascii\r\n"
			      "\r\n"
			      "This is the mail system at host %s.\r\n"
			      "\r\n"
			      "Your message could not be delivered to one or more recipients.\r\n"
			      "The reasons are given below.\r\n"
			      "\r\n",
			      hostname, e->sender, date, queue_writer_id(w), hostname, boundary,
			      boundary, hostname);
	for (size_t i = 0; r == 0 && i < e->nrcpts; i++) {
		const struct queue_rcpt *rc = &e->rcpts[i];
		if (queue_dsn_wanted(rc))
			r = queue_dsn_put(w, error_r, "<%s>: %s%s%s\r\n", rc->address,
					  rc->remote[0] != '\0' ? "host " : "", rc->remote,
					  rc->remote[0] != '\0' ? " said: " : "");
		if (r == 0 && queue_dsn_wanted(rc))
			r = queue_dsn_put(w, error_r, "    %s\r\n", rc->status);
	}
	if (r == 0)
		r = queue_dsn_put(w, error_r,
				  "\r\n--%s\r\n"
				  "Content-Type: message/delivery-status\r\n"
				  "\r\n"
				  "Reporting-MTA: dns; %s\r\n",
				  boundary, hostname);
	if (r == 0 && e->envid[0] != '\0') {
		char *envid = queue_xtext_decode(e->envid);
		r = queue_dsn_put(w, error_r, "Original-Envelope-Id: %s\r\n", envid);
		free(envid);
	}
	if (r == 0)
		r = queue_dsn_put(w, error_r, "Arrival-Date: %s\r\n", arrival);
	for (size_t i = 0; r == 0 && i < e->nrcpts; i++) {
		const struct queue_rcpt *rc = &e->rcpts[i];
		if (!queue_dsn_wanted(rc))
			continue;
		r = queue_dsn_put(w, error_r, "\r\nFinal-Recipient: rfc822; %s\r\n", rc->address);
		if (r == 0 && rc->orcpt[0] != '\0') {
			char *orcpt = queue_xtext_decode(rc->orcpt);
			r = queue_dsn_put(w, error_r, "Original-Recipient: %s\r\n", orcpt);
			free(orcpt);
		}
		if (r == 0)
			r = queue_dsn_put(w, error_r, "Action: failed\r\nStatus: %s\r\n",
					  queue_status_code(rc->status, code));
		if (r == 0 && rc->remote[0] != '\0')
			r = queue_dsn_put(w, error_r, "Remote-MTA: dns; %s\r\n", rc->remote);
		if (r == 0 && rc->status[0] != '\0')
			r = queue_dsn_put(w, error_r, "Diagnostic-Code: smtp; %s\r\n", rc->status);
	}
	if (r == 0)
		r = queue_dsn_put(w, error_r, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary,
				  headers_only ? "text/rfc822-headers" : "message/rfc822");
	if (r == 0)
		r = queue_dsn_copy(w, dir, e, headers_only, error_r);
	if (r == 0)
		r = queue_dsn_put(w, error_r, "\r\n--%s--\r\n", boundary);
	if (r < 0) {
		queue_writer_abort(&w);
		return -1;
	}
	struct queue_entry *dsn = xcalloc(1, sizeof(*dsn));
	dsn->sender = xstrdup("");
	dsn->user = xstrdup("");
	dsn->sender_lmtp = xstrdup("");
	dsn->envid = xstrdup("");
	dsn->created = (long long)now;
	bool local = e->sender_lmtp[0] != '\0';
	queue_entry_add_rcpt(dsn, e->sender, local ? QUEUE_ROUTE_LOCAL : QUEUE_ROUTE_REMOTE,
			     e->sender_lmtp, QUEUE_NOTIFY_NEVER, NULL);
	if (queue_writer_commit(&w, dsn, lock_fd_r, error_r) < 0) {
		queue_entry_free(&dsn);
		return -1;
	}
	*dsn_r = dsn;
	return 1;
}
