#include "queue/queue_runner.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xalloc.h"
#include "net/tls.h"
#include "queue/queue_dns.h"

/* One entry being delivered: a job. A job runs one group of recipients at
 * a time (one back end, the smarthost, or one domain) through one
 * smtp_client; tried[] marks the recipients handled in this attempt. */

struct queue_job {
	struct queue_runner *runner;
	struct queue_job *prev, *next;
	struct queue_entry *e;
	int lock_fd; /* the entry's lock; also the message, read by the client */
	bool *tried;
	size_t *group; /* indices into e->rcpts of the current transaction */
	size_t ngroup;
	bool sent_group;   /* the group is the Sent copy */
	bool copy_phase;   /* local recipients are done; the Sent copy's turn */
	bool remote_phase; /* the Sent copy is done too */
	struct net_addr addrs[QUEUE_MAX_ADDRS];
	char *names[QUEUE_MAX_ADDRS]; /* host name per address (TLS SNI) */
	size_t naddrs, next_addr;
	struct queue_dns_lookup *lookup; /* while the group's hosts are looked up */
	struct smtp_client *client;
	queue_runner_local_done_cb *local_done;
	void *ctx;
	struct event *start_ev;
};

struct queue_runner {
	struct event_base *base;
	char *dir;
	char *hostname;
	char *smarthost;
	enum smtp_client_tls smarthost_tls;
	char *smarthost_user;
	char *smarthost_password;
	unsigned retry_s, max_retry_s, lifetime_s;
	unsigned mx_port;
	struct queue_dns *dns;
	SSL_CTX *tls_ctx;
	struct queue_job *jobs;
	unsigned njobs;
	int scan_lock_fd;
	struct event *scan_ev;
	struct log_ctx log;
};

static void qr_job_next(struct queue_job *j);

/* ---- settings ---- */

static void qr_set(char **field, const char *value)
{
	free(*field);
	*field = value != NULL ? xstrdup(value) : NULL;
}

void queue_runner_set_settings(struct queue_runner *r, const struct queue_runner_settings *set)
{
	qr_set(&r->hostname, set->hostname != NULL ? set->hostname : "localhost");
	qr_set(&r->smarthost, set->smarthost != NULL ? set->smarthost : "");
	r->smarthost_tls = set->smarthost_tls;
	qr_set(&r->smarthost_user, set->smarthost_user);
	if (r->smarthost_password != NULL)
		memset(r->smarthost_password, 0, strlen(r->smarthost_password));
	qr_set(&r->smarthost_password, set->smarthost_password);
	r->retry_s = set->retry_s != 0 ? set->retry_s : 60;
	r->max_retry_s = set->max_retry_s != 0 ? set->max_retry_s : 3600;
	r->lifetime_s = set->lifetime_s != 0 ? set->lifetime_s : 5 * 86400;
	r->mx_port = set->mx_port != 0 ? set->mx_port : 25;
	if (r->dns != NULL)
		queue_dns_set_resolvers(r->dns, set->resolvers);
}

struct queue_runner *queue_runner_new(struct event_base *base, const char *dir,
				      const struct queue_runner_settings *set)
{
	struct queue_runner *r = xcalloc(1, sizeof(*r));
	r->base = base;
	r->dir = xstrdup(dir);
	r->scan_lock_fd = -1;
	r->log.service = "submission";
	r->dns = queue_dns_new(base, set->resolvers);
	queue_runner_set_settings(r, set);
	char *error = NULL;
	/* relays are not verified: most MX hosts have no certificate a client
	 * could check (RFC 7435, opportunistic security) */
	r->tls_ctx = tls_client_ctx_new(false, NULL, &error);
	if (r->tls_ctx == NULL) {
		log_error("queue: no TLS client context: %s", error);
		free(error);
	}
	return r;
}

static void qr_clear_addrs(struct queue_job *j)
{
	for (size_t i = 0; i < j->naddrs; i++)
		free(j->names[i]);
	j->naddrs = j->next_addr = 0;
}

static void qr_job_free(struct queue_job *j)
{
	struct queue_runner *r = j->runner;
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		r->jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	r->njobs--;
	smtp_client_abort(&j->client);
	queue_dns_cancel(&j->lookup);
	if (j->start_ev != NULL)
		event_free(j->start_ev);
	qr_clear_addrs(j);
	queue_entry_unlock(&j->lock_fd);
	queue_entry_free(&j->e);
	free(j->tried);
	free(j->group);
	free(j);
}

void queue_runner_free(struct queue_runner **rp)
{
	struct queue_runner *r = *rp;
	if (r == NULL)
		return;
	while (r->jobs != NULL)
		qr_job_free(r->jobs);
	if (r->scan_ev != NULL)
		event_free(r->scan_ev);
	if (r->scan_lock_fd >= 0)
		close(r->scan_lock_fd);
	if (r->tls_ctx != NULL)
		SSL_CTX_free(r->tls_ctx);
	queue_dns_free(&r->dns);
	free(r->dir);
	free(r->hostname);
	free(r->smarthost);
	free(r->smarthost_user);
	if (r->smarthost_password != NULL)
		memset(r->smarthost_password, 0, strlen(r->smarthost_password));
	free(r->smarthost_password);
	free(r);
	*rp = NULL;
}

void queue_runner_forget(struct queue_runner *r, void *ctx)
{
	for (struct queue_job *j = r->jobs; j != NULL; j = j->next)
		if (j->ctx == ctx) {
			j->local_done = NULL;
			j->ctx = NULL;
		}
}

/* ---- saving ---- */

static void qr_save(struct queue_job *j)
{
	char *error = NULL;
	if (queue_entry_save(j->runner->dir, j->e, &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, &j->runner->log, "queue %s: %s", j->e->id, error);
		free(error);
	}
}

/* ---- addresses ---- */

/* "host", "host:port", "[v6]:port" into host (without brackets) and port */
static void qr_split_smarthost(const char *smarthost, char *host, size_t size, unsigned *port_r)
{
	*port_r = 25;
	snprintf(host, size, "%s", smarthost);
	if (host[0] == '[') {
		char *close = strchr(host, ']');
		if (close == NULL)
			return;
		if (close[1] == ':')
			*port_r = (unsigned)strtoul(close + 2, NULL, 10);
		*close = '\0';
		memmove(host, host + 1, strlen(host + 1) + 1);
	} else if (strchr(host, ':') != NULL) {
		*port_r = (unsigned)strtoul(strchr(host, ':') + 1, NULL, 10);
		*strchr(host, ':') = '\0';
	}
}

/* ---- one transaction ---- */

static const char *qr_domain(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

/* the metrics of one recipient's outcome in an attempt */
static void qr_count(const struct queue_rcpt *rc, enum metrics_queue_result result)
{
	metrics_queue_outcome(rc->route == QUEUE_ROUTE_LOCAL ? METRICS_ROUTE_LOCAL
							     : METRICS_ROUTE_REMOTE,
			      result);
}

static void qr_client_done(void *ctx, const struct smtp_client_result *res)
{
	struct queue_job *j = ctx;
	struct queue_entry *e = j->e;
	j->client = NULL;
	if (res->status == 0 && j->remote_phase && j->next_addr < j->naddrs) {
		/* this host is unavailable: try the next one */
		log_msg(LOG_LEVEL_INFO, &j->runner->log, "queue %s: %s; trying the next host",
			e->id, res->reply);
		qr_job_next(j);
		return;
	}
	for (size_t g = 0; g < j->ngroup; g++) {
		struct queue_rcpt *rc = &e->rcpts[j->group[g]];
		const char *reply = res->status == 1 ? res->rcpt_replies[g] : res->reply;
		unsigned code = res->status == 1 ? res->rcpt_codes[g] : res->status < 0 ? 550 : 451;
		if (res->status == 1 && code == 0) {
			code = 451;
			reply = "451 4.4.0 no answer for this recipient";
		}
		queue_set_str(&rc->status, reply);
		queue_set_str(&rc->remote, res->remote);
		qr_count(rc, code >= 200 && code < 300 ? METRICS_QUEUE_DELIVERED
				 : code >= 500		     ? METRICS_QUEUE_BOUNCED
							     : METRICS_QUEUE_DEFERRED);
		if (code >= 200 && code < 300) {
			rc->state = QUEUE_RCPT_SENT;
			log_msg(LOG_LEVEL_INFO, &j->runner->log,
				"queue %s: delivered: from=<%s> to=<%s> via %s: %s", e->id,
				e->sender, rc->address, res->remote, reply);
		} else if (code >= 500) {
			rc->state = QUEUE_RCPT_FAILED;
			log_msg(LOG_LEVEL_INFO, &j->runner->log,
				"queue %s: bounced: from=<%s> to=<%s> via %s: %s", e->id, e->sender,
				rc->address, res->remote, reply);
		} else {
			log_msg(LOG_LEVEL_INFO, &j->runner->log,
				"queue %s: deferred: from=<%s> to=<%s> via %s: %s", e->id,
				e->sender, rc->address, res->remote, reply);
		}
	}
	/* recorded at once: a crash from here on does not send these again.
	 * When nothing is left to try, the end of the attempt comes next and
	 * removes (or saves) the entry itself: one write and flush less */
	bool more = false;
	for (size_t i = 0; i < e->nrcpts && !more; i++)
		more = !j->tried[i] && e->rcpts[i].state == QUEUE_RCPT_PENDING;
	if (more)
		qr_save(j);
	j->ngroup = 0;
	qr_clear_addrs(j);
	qr_job_next(j);
}

static void qr_start_client(struct queue_job *j, const struct net_addr *addr, bool lmtp,
			    const char *server_name)
{
	struct queue_runner *r = j->runner;
	struct queue_entry *e = j->e;
	const char **rcpts = xcalloc(j->ngroup + 1, sizeof(*rcpts));
	char **params = xcalloc(j->ngroup + 1, sizeof(*params));
	bool copy = lmtp && j->sent_group;
	for (size_t g = 0; g < j->ngroup; g++) {
		const struct queue_rcpt *rc = &e->rcpts[j->group[g]];
		rcpts[g] = rc->address;
		params[g] =
		    copy ? xasprintf(" XSENTCOPY=%s", e->copy_auth != NULL ? e->copy_auth : "")
			 : xstrdup("");
	}
	bool smarthost = !lmtp && r->smarthost[0] != '\0';
	struct smtp_client_settings set = {
	    .lmtp = lmtp,
	    .helo_name = r->hostname,
	    .tls = lmtp	       ? SMTP_CLIENT_TLS_NONE
		   : smarthost ? r->smarthost_tls
			       : SMTP_CLIENT_TLS_OPPORTUNISTIC,
	    .tls_ctx = r->tls_ctx,
	    .server_name = server_name,
	    .auth_user = smarthost ? r->smarthost_user : NULL,
	    .auth_password = smarthost ? r->smarthost_password : NULL,
	    .log_name = "submission",
	};
	/* DSN parameters are not passed on: this queue reports failures itself */
	struct smtp_client_envelope env = {
	    .sender = e->sender,
	    .mail_params = "",
	    .rcpts = rcpts,
	    .rcpt_params = (const char *const *)params,
	    .nrcpts = j->ngroup,
	    .msg_fd = j->lock_fd,
	    .msg_size = e->size,
	    .msg_offset = copy ? e->copy_offset : 0,
	    .smtputf8 = e->smtputf8,
	    .eightbit = e->eightbit,
	};
	j->client = smtp_client_start(r->base, addr, &set, &env, qr_client_done, j);
	for (size_t g = 0; g < j->ngroup; g++)
		free(params[g]);
	free(params);
	free(rcpts);
}

/* ---- the end of an attempt ---- */

static unsigned qr_backoff(const struct queue_runner *r, unsigned attempts)
{
	unsigned long long wait = r->retry_s;
	for (unsigned i = 1; i < attempts && wait < r->max_retry_s; i++)
		wait *= 2;
	return wait > r->max_retry_s ? r->max_retry_s : (unsigned)wait;
}

static void qr_job_finish(struct queue_job *j)
{
	struct queue_runner *r = j->runner;
	struct queue_entry *e = j->e;
	time_t now = time(NULL);
	bool pending = false;
	for (size_t i = 0; i < e->nrcpts; i++)
		pending = pending || e->rcpts[i].state == QUEUE_RCPT_PENDING;
	if (pending && now - e->created >= (time_t)r->lifetime_s) {
		for (size_t i = 0; i < e->nrcpts; i++) {
			struct queue_rcpt *rc = &e->rcpts[i];
			if (rc->state != QUEUE_RCPT_PENDING)
				continue;
			char *text = xasprintf("554 5.4.7 message expired after %u seconds in the "
					       "queue; last: %s",
					       r->lifetime_s, rc->status);
			queue_set_str(&rc->status, text);
			free(text);
			rc->state = QUEUE_RCPT_FAILED;
			qr_count(rc, METRICS_QUEUE_BOUNCED);
		}
		pending = false;
	}
	bool failed = false;
	for (size_t i = 0; i < e->nrcpts; i++)
		failed = failed || e->rcpts[i].state == QUEUE_RCPT_FAILED;
	if (failed) {
		struct queue_entry *dsn = NULL;
		int dsn_lock = -1;
		char *error = NULL;
		int d = queue_dsn_create(r->dir, e, r->hostname, &dsn, &dsn_lock, &error);
		if (d < 0) {
			log_msg(LOG_LEVEL_ERROR, &r->log, "queue %s: cannot write the report: %s",
				e->id, error);
			free(error);
		} else {
			if (d > 0)
				log_msg(LOG_LEVEL_INFO, &r->log,
					"queue %s: delivery status notification %s to <%s>", e->id,
					dsn->id, e->sender);
			for (size_t i = 0; i < e->nrcpts; i++)
				if (e->rcpts[i].state == QUEUE_RCPT_FAILED)
					e->rcpts[i].state = QUEUE_RCPT_BOUNCED;
			if (d > 0)
				queue_runner_deliver(r, dsn, dsn_lock, NULL, NULL);
		}
	}
	if (!pending && !failed) {
		char *error = NULL;
		if (queue_entry_remove(r->dir, e->id, &error) < 0) {
			log_msg(LOG_LEVEL_ERROR, &r->log, "queue %s: %s", e->id, error);
			free(error);
		}
	} else if (!pending) {
		bool all_bounced = true;
		for (size_t i = 0; i < e->nrcpts; i++)
			all_bounced = all_bounced && e->rcpts[i].state != QUEUE_RCPT_FAILED;
		char *error = NULL;
		if (all_bounced && queue_entry_remove(r->dir, e->id, &error) < 0) {
			log_msg(LOG_LEVEL_ERROR, &r->log, "queue %s: %s", e->id, error);
			free(error);
		} else if (!all_bounced) {
			/* the report could not be written: try again later */
			e->next_try = (long long)now + qr_backoff(r, ++e->attempts);
			qr_save(j);
		}
	} else {
		e->attempts++;
		e->next_try = (long long)now + qr_backoff(r, e->attempts);
		qr_save(j);
	}
	qr_job_free(j);
}

/* ---- choosing the next group ---- */

static void qr_local_done(struct queue_job *j)
{
	if (j->local_done != NULL) {
		queue_runner_local_done_cb *cb = j->local_done;
		j->local_done = NULL;
		cb(j->ctx, j->e);
		j->ctx = NULL;
	}
}

/* The current remote group's hosts are known (or cannot be): start with
 * the first address, or record why there is none. */
static void qr_lookup_done(void *ctx, const struct queue_dns_result *res)
{
	struct queue_job *j = ctx;
	struct queue_runner *r = j->runner;
	struct queue_entry *e = j->e;
	j->lookup = NULL;
	for (size_t i = 0; i < res->naddrs && j->naddrs < QUEUE_MAX_ADDRS; i++) {
		j->addrs[j->naddrs] = res->addrs[i];
		j->names[j->naddrs++] = xstrdup(res->names[i]);
	}
	if (j->naddrs > 0) {
		j->next_addr = 1;
		qr_start_client(j, &j->addrs[0], false, j->names[0]);
		return;
	}
	const char *domain = qr_domain(e->rcpts[j->group[0]].address);
	bool permanent = r->smarthost[0] == '\0' && res->outcome != QUEUE_DNS_TEMPFAIL;
	char *text;
	switch (res->outcome) {
	case QUEUE_DNS_NULL_MX:
		/* RFC 7505 4.2 */
		text = xasprintf("556 5.1.10 %s", res->detail);
		break;
	case QUEUE_DNS_NO_DOMAIN:
		text = xasprintf("550 5.1.2 %s", res->detail);
		break;
	case QUEUE_DNS_NO_HOST:
		text = xasprintf("550 5.4.4 %s", res->detail);
		break;
	default:
		text = r->smarthost[0] != '\0'
			   ? xasprintf("451 4.4.4 no address found for the smarthost %s: %s",
				       r->smarthost, res->detail)
			   : xasprintf("451 4.4.3 %s", res->detail);
		break;
	}
	log_msg(LOG_LEVEL_INFO, &r->log, "queue %s: %s for <%s>: %s", e->id,
		permanent ? "bounced" : "deferred", domain, text);
	for (size_t g = 0; g < j->ngroup; g++) {
		struct queue_rcpt *o = &e->rcpts[j->group[g]];
		queue_set_str(&o->status, text);
		queue_set_str(&o->remote, "");
		qr_count(o, permanent ? METRICS_QUEUE_BOUNCED : METRICS_QUEUE_DEFERRED);
		if (permanent)
			o->state = QUEUE_RCPT_FAILED;
	}
	free(text);
	qr_save(j);
	j->ngroup = 0;
	qr_job_next(j);
}

static void qr_job_next(struct queue_job *j)
{
	struct queue_runner *r = j->runner;
	struct queue_entry *e = j->e;
	if (j->ngroup > 0 && j->next_addr < j->naddrs) {
		size_t a = j->next_addr++;
		qr_start_client(j, &j->addrs[a], false, j->names[a]);
		return;
	}
	if (j->ngroup > 0) {
		/* every host of this group was tried */
		qr_save(j);
		j->ngroup = 0;
		qr_clear_addrs(j);
	}
	/* local recipients, one back end at a time; then (once the submitter
	 * heard how they fared, and unless it then dropped the message) the
	 * Sent copy, in a transaction of its own (other bytes, its own
	 * parameter) */
	while (!j->remote_phase) {
		enum queue_route want = j->copy_phase ? QUEUE_ROUTE_SENT : QUEUE_ROUTE_LOCAL;
		for (size_t i = 0; i < e->nrcpts; i++) {
			struct queue_rcpt *rc = &e->rcpts[i];
			if (j->tried[i] || rc->state != QUEUE_RCPT_PENDING || rc->route != want)
				continue;
			j->ngroup = 0;
			j->sent_group = want == QUEUE_ROUTE_SENT;
			for (size_t k = i; k < e->nrcpts; k++) {
				struct queue_rcpt *o = &e->rcpts[k];
				if (!j->tried[k] && o->state == QUEUE_RCPT_PENDING &&
				    o->route == want && strcmp(o->lmtp, rc->lmtp) == 0) {
					j->group[j->ngroup++] = k;
					j->tried[k] = true;
				}
			}
			struct net_addr addr;
			const char *error;
			if (net_addr_parse(rc->lmtp, &addr, &error) < 0) {
				for (size_t g = 0; g < j->ngroup; g++) {
					char *text =
					    xasprintf("451 4.3.0 the back end's lmtp address "
						      "'%s' is unusable: %s",
						      rc->lmtp, error);
					queue_set_str(&e->rcpts[j->group[g]].status, text);
					free(text);
				}
				j->ngroup = 0;
				qr_job_next(j);
				return;
			}
			qr_clear_addrs(j);
			qr_start_client(j, &addr, true, NULL);
			return;
		}
		if (j->copy_phase) {
			j->remote_phase = true;
		} else {
			j->copy_phase = true;
			qr_local_done(j);
		}
	}
	/* remote recipients: all to the smarthost, or one domain at a time */
	for (size_t i = 0; i < e->nrcpts; i++) {
		struct queue_rcpt *rc = &e->rcpts[i];
		if (j->tried[i] || rc->state != QUEUE_RCPT_PENDING ||
		    rc->route != QUEUE_ROUTE_REMOTE)
			continue;
		const char *domain = qr_domain(rc->address);
		j->ngroup = 0;
		for (size_t k = i; k < e->nrcpts; k++) {
			struct queue_rcpt *o = &e->rcpts[k];
			if (!j->tried[k] && o->state == QUEUE_RCPT_PENDING &&
			    o->route == QUEUE_ROUTE_REMOTE &&
			    (r->smarthost[0] != '\0' ||
			     strcasecmp(qr_domain(o->address), domain) == 0)) {
				j->group[j->ngroup++] = k;
				j->tried[k] = true;
			}
		}
		qr_clear_addrs(j);
		/* the addresses come from the loop: qr_lookup_done() goes on */
		if (r->smarthost[0] != '\0') {
			char host[300];
			unsigned port;
			qr_split_smarthost(r->smarthost, host, sizeof(host), &port);
			j->lookup = queue_dns_host(r->dns, host, port, qr_lookup_done, j);
		} else {
			j->lookup = queue_dns_mx(r->dns, domain, r->mx_port, qr_lookup_done, j);
		}
		return;
	}
	qr_job_finish(j);
}

static void qr_start_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct queue_job *j = arg;
	event_free(j->start_ev);
	j->start_ev = NULL;
	qr_job_next(j);
}

void queue_runner_deliver(struct queue_runner *r, struct queue_entry *e, int lock_fd,
			  queue_runner_local_done_cb *local_done, void *ctx)
{
	struct queue_job *j = xcalloc(1, sizeof(*j));
	j->runner = r;
	j->e = e;
	j->lock_fd = lock_fd;
	j->tried = xcalloc(e->nrcpts + 1, sizeof(*j->tried));
	j->group = xcalloc(e->nrcpts + 1, sizeof(*j->group));
	j->local_done = local_done;
	j->ctx = ctx;
	j->next = r->jobs;
	if (j->next != NULL)
		j->next->prev = j;
	r->jobs = j;
	r->njobs++;
	/* from the loop: callbacks never run inside this call */
	j->start_ev = event_new(r->base, -1, 0, qr_start_cb, j);
	struct timeval now = {0, 0};
	event_add(j->start_ev, &now);
}

/* ---- the scan ---- */

static bool qr_active(const struct queue_runner *r, const char *id)
{
	for (const struct queue_job *j = r->jobs; j != NULL; j = j->next)
		if (strcmp(j->e->id, id) == 0)
			return true;
	return false;
}

static void qr_scan(struct queue_runner *r)
{
	char **ids = NULL;
	size_t n = 0;
	char *error = NULL;
	if (queue_list(r->dir, &ids, &n, &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, &r->log, "queue: %s", error);
		free(error);
		return;
	}
	metrics_queue_messages_set(n);
	long long now = (long long)time(NULL);
	for (size_t i = 0; i < n && r->njobs < QUEUE_MAX_ACTIVE; i++) {
		if (qr_active(r, ids[i]))
			continue;
		struct queue_entry *e = NULL;
		if (queue_entry_load(r->dir, ids[i], &e, &error) <= 0) {
			if (error != NULL)
				log_msg(LOG_LEVEL_ERROR, &r->log, "queue: %s", error);
			free(error);
			error = NULL;
			continue;
		}
		int fd = -1;
		if (e->next_try > now ||
		    queue_entry_lock(r->dir, ids[i], false, &fd, &error) <= 0) {
			free(error);
			error = NULL;
			queue_entry_free(&e);
			continue;
		}
		/* reload under the lock: another process may have changed it */
		queue_entry_free(&e);
		if (queue_entry_load(r->dir, ids[i], &e, &error) <= 0) {
			free(error);
			error = NULL;
			queue_entry_unlock(&fd);
			continue;
		}
		queue_runner_deliver(r, e, fd, NULL, NULL);
	}
	queue_ids_free(&ids, n);
}

static void qr_scan_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct queue_runner *r = arg;
	if (r->scan_lock_fd < 0) {
		char *path = xasprintf("%s/runner.lock", r->dir);
		int lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		free(path);
		if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) == 0) {
			r->scan_lock_fd = lfd;
			unsigned removed = queue_cleanup(r->dir);
			if (removed > 0)
				log_msg(LOG_LEVEL_INFO, &r->log, "queue: removed %u orphaned files",
					removed);
		} else if (lfd >= 0) {
			close(lfd);
		}
	}
	if (r->scan_lock_fd >= 0)
		qr_scan(r);
	struct timeval tv = {QUEUE_SCAN_INTERVAL_S, 0};
	event_add(r->scan_ev, &tv);
}

void queue_runner_scan_start(struct queue_runner *r)
{
	if (r->scan_ev != NULL)
		return;
	r->scan_ev = event_new(r->base, -1, 0, qr_scan_cb, r);
	struct timeval tv = {0, 0};
	event_add(r->scan_ev, &tv);
}
