#include "queue/queue_dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "lib/log.h"
#include "lib/settings.h"
#include "lib/xalloc.h"

/* A lookup is a tree of steps: the MX query (ours), then an A and an AAAA
 * lookup (evdns) per host. It lives until every step it started has
 * answered, even when its owner cancelled it: evdns calls back with the
 * lookup's pointer, so it must stay valid until then. */

#define QD_MAX_MSG 65535

struct queue_dns {
	struct event_base *base;
	struct evdns_base *evdns;
	char *resolvers;
	struct log_ctx log;
	struct queue_dns_lookup *lookups; /* every live lookup */
};

struct qd_host;

/* one evdns A or AAAA lookup */
struct qd_family {
	struct qd_host *host;
	bool v6;
	bool pending;
	int err; /* DNS_ERR_* */
	struct net_addr addrs[QUEUE_DNS_MAX_ADDRS];
	size_t naddrs;
};

struct qd_host {
	struct queue_dns_lookup *l;
	char name[256];
	unsigned pref;
	struct qd_family fam[2]; /* A, AAAA */
};

/* our MX query to one server at a time */
struct qd_query {
	unsigned char msg[512];
	size_t len;
	uint16_t id;
	int server; /* index into evdns's nameservers */
	int tries;
	int fd;
	bool tcp;      /* this try is over TCP */
	bool tcp_next; /* the next try: the same server over TCP (truncated) */
	bool tcp_connected;
	size_t tcp_sent;
	unsigned char *buf; /* the answer (TCP: with its 2-byte length) */
	size_t buf_len;
	struct event *io_ev;
	struct event *timer;
	bool any_answer; /* some server answered, though not usably */
	char last_error[128];
};

struct queue_dns_lookup {
	struct queue_dns *d;
	struct queue_dns_lookup *prev, *next;
	queue_dns_cb *cb; /* NULL once cancelled */
	void *ctx;
	bool mx_mode;  /* queue_dns_mx(), not queue_dns_host() */
	bool implicit; /* no MX: the domain's own addresses */
	char domain[256];
	unsigned port;
	struct qd_query *query;
	struct qd_host hosts[QUEUE_DNS_MAX_MX];
	size_t nhosts;
	unsigned pending; /* evdns lookups not answered yet */
	bool done;	  /* the result is decided (maybe not delivered yet) */
	struct event *done_ev;
	/* the result */
	enum queue_dns_outcome outcome;
	char detail[300];
	struct net_addr addrs[QUEUE_DNS_MAX_ADDRS];
	char *names[QUEUE_DNS_MAX_ADDRS];
	size_t naddrs;
};

/* ---- DNS messages ---- */

int queue_dns_build_mx_query(const char *domain, uint16_t id, unsigned char *buf, size_t size)
{
	size_t dlen = strlen(domain);
	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	if (dlen == 0 || dlen > 253 || size < 12 + dlen + 2 + 4 + 11)
		return -1;
	size_t o = 0;
	const unsigned char header[12] = {
	    (unsigned char)(id >> 8), (unsigned char)id, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1};
	memcpy(buf, header, sizeof(header));
	o = sizeof(header);
	size_t start = 0;
	for (size_t i = 0; i <= dlen; i++) {
		if (i < dlen && domain[i] != '.')
			continue;
		size_t label = i - start;
		if (label == 0 || label > 63)
			return -1;
		buf[o++] = (unsigned char)label;
		memcpy(buf + o, domain + start, label);
		o += label;
		start = i + 1;
	}
	buf[o++] = 0;
	/* QTYPE MX, QCLASS IN */
	buf[o++] = 0;
	buf[o++] = ns_t_mx;
	buf[o++] = 0;
	buf[o++] = ns_c_in;
	/* EDNS0 OPT: root name, type 41, payload 1232, no flags, no data */
	const unsigned char opt[11] = {0, 0, 41, 1232 >> 8, 1232 & 0xff, 0, 0, 0, 0, 0, 0};
	memcpy(buf + o, opt, sizeof(opt));
	o += sizeof(opt);
	return (int)o;
}

static int qd_mx_cmp(const void *a, const void *b)
{
	const struct queue_dns_mx_record *x = a, *y = b;
	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

int queue_dns_parse_mx(const unsigned char *msg, size_t len, uint16_t id, const char *domain,
		       struct queue_dns_mx_record *mx, size_t max, size_t *n)
{
	*n = 0;
	if (len < 12 || len > QD_MAX_MSG || (uint16_t)(msg[0] << 8 | msg[1]) != id ||
	    (msg[2] & 0x80) == 0 || (msg[2] & 0x78) != 0)
		return -1;
	if (msg[2] & 0x02)
		return -2;
	ns_msg m;
	if (ns_initparse(msg, (int)len, &m) < 0 || ns_msg_count(m, ns_s_qd) != 1)
		return -1;
	ns_rr q;
	if (ns_parserr(&m, ns_s_qd, 0, &q) < 0 || ns_rr_type(q) != ns_t_mx ||
	    ns_rr_class(q) != ns_c_in)
		return -1;
	size_t dlen = strlen(domain);
	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	const char *qname = ns_rr_name(q);
	size_t qlen = strlen(qname);
	if (qlen > 0 && qname[qlen - 1] == '.')
		qlen--;
	if (qlen != dlen || strncasecmp(qname, domain, dlen) != 0)
		return -1;
	int rcode = msg[3] & 0x0f;
	if (rcode != 0)
		return rcode;
	int count = ns_msg_count(m, ns_s_an);
	for (int i = 0; i < count && *n < max; i++) {
		ns_rr rr;
		if (ns_parserr(&m, ns_s_an, i, &rr) < 0)
			return -1;
		/* CNAMEs before the MX records are the resolver's business */
		if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in || ns_rr_rdlen(rr) < 3)
			continue;
		const unsigned char *rd = ns_rr_rdata(rr);
		struct queue_dns_mx_record *r = &mx[*n];
		r->pref = (unsigned)(rd[0] << 8 | rd[1]);
		if (dn_expand(ns_msg_base(m), ns_msg_end(m), rd + 2, r->name, sizeof(r->name)) < 0)
			return -1;
		if (strcmp(r->name, ".") == 0)
			r->name[0] = '\0';
		(*n)++;
	}
	qsort(mx, *n, sizeof(*mx), qd_mx_cmp);
	return 0;
}

/* ---- the resolver ---- */

static void qd_configure(struct queue_dns *d, const char *resolvers)
{
	free(d->resolvers);
	d->resolvers = xstrdup(resolvers != NULL ? resolvers : "");
	if (d->resolvers[0] == '\0') {
		int r = evdns_base_resolv_conf_parse(d->evdns, DNS_OPTIONS_ALL, "/etc/resolv.conf");
		if (r != 0)
			log_msg(LOG_LEVEL_WARN, &d->log,
				"DNS: /etc/resolv.conf: %s; trying 127.0.0.1",
				r == 1 ? "cannot open it" : "cannot use it");
		if (evdns_base_count_nameservers(d->evdns) == 0)
			evdns_base_nameserver_ip_add(d->evdns, "127.0.0.1");
		return;
	}
	/* the search list and options of resolv.conf still apply */
	evdns_base_resolv_conf_parse(d->evdns, DNS_OPTION_SEARCH | DNS_OPTION_MISC,
				     "/etc/resolv.conf");
	unsigned n;
	char **list = settings_list_split(d->resolvers, &n);
	for (unsigned i = 0; i < n; i++)
		if (evdns_base_nameserver_ip_add(d->evdns, list[i]) != 0)
			log_msg(LOG_LEVEL_ERROR, &d->log, "DNS: cannot use the server %s", list[i]);
	settings_list_free(&list);
}

struct queue_dns *queue_dns_new(struct event_base *base, const char *resolvers)
{
	struct queue_dns *d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->log.service = "submission";
	d->evdns = evdns_base_new(base, 0);
	if (d->evdns == NULL) {
		log_msg(LOG_LEVEL_ERROR, &d->log, "DNS: cannot make a resolver");
		d->resolvers = xstrdup(resolvers != NULL ? resolvers : "");
		return d;
	}
	qd_configure(d, resolvers);
	return d;
}

void queue_dns_set_resolvers(struct queue_dns *d, const char *resolvers)
{
	if (d->evdns == NULL || strcmp(d->resolvers, resolvers != NULL ? resolvers : "") == 0)
		return;
	/* lookups in progress are sent again to the new servers */
	evdns_base_clear_nameservers_and_suspend(d->evdns);
	qd_configure(d, resolvers);
	evdns_base_resume(d->evdns);
}

static void qd_query_free(struct qd_query **qp)
{
	struct qd_query *q = *qp;
	if (q == NULL)
		return;
	if (q->io_ev != NULL)
		event_free(q->io_ev);
	if (q->timer != NULL)
		event_free(q->timer);
	if (q->fd >= 0)
		close(q->fd);
	free(q->buf);
	free(q);
	*qp = NULL;
}

static void qd_lookup_free(struct queue_dns_lookup *l)
{
	struct queue_dns *d = l->d;
	if (l->prev != NULL)
		l->prev->next = l->next;
	else if (d != NULL)
		d->lookups = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	qd_query_free(&l->query);
	if (l->done_ev != NULL)
		event_free(l->done_ev);
	for (size_t i = 0; i < l->naddrs; i++)
		free(l->names[i]);
	free(l);
}

/* Free l once nobody waits for its result (delivered or cancelled) and
 * evdns owes it no answer. */
static void qd_release(struct queue_dns_lookup *l)
{
	if (l->cb == NULL && l->pending == 0)
		qd_lookup_free(l);
}

void queue_dns_free(struct queue_dns **dp)
{
	struct queue_dns *d = *dp;
	if (d == NULL)
		return;
	for (struct queue_dns_lookup *l = d->lookups; l != NULL; l = l->next) {
		l->cb = NULL;
		qd_query_free(&l->query);
		if (l->done_ev != NULL)
			event_free(l->done_ev);
		l->done_ev = NULL;
	}
	/* evdns answers what it still owes with DNS_ERR_SHUTDOWN, later, from
	 * the loop: those lookups live on, listed nowhere, until then */
	if (d->evdns != NULL)
		evdns_base_free(d->evdns, 1);
	struct queue_dns_lookup *l = d->lookups;
	while (l != NULL) {
		struct queue_dns_lookup *next = l->next;
		if (l->pending == 0) {
			qd_lookup_free(l);
		} else {
			l->d = NULL;
			l->prev = l->next = NULL;
		}
		l = next;
	}
	free(d->resolvers);
	free(d);
	*dp = NULL;
}

/* ---- the end of a lookup ---- */

static void qd_done_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct queue_dns_lookup *l = arg;
	queue_dns_cb *cb = l->cb;
	void *ctx = l->ctx;
	l->cb = NULL;
	struct queue_dns_result res = {
	    .outcome = l->outcome,
	    .detail = l->detail,
	    .addrs = l->addrs,
	    .names = (const char *const *)l->names,
	    .naddrs = l->naddrs,
	};
	event_free(l->done_ev);
	l->done_ev = NULL;
	if (cb != NULL)
		cb(ctx, &res);
	/* the callback cannot cancel it any more (cb is cleared) */
	qd_release(l);
}

static void qd_finish(struct queue_dns_lookup *l, enum queue_dns_outcome outcome, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));
static void qd_finish(struct queue_dns_lookup *l, enum queue_dns_outcome outcome, const char *fmt,
		      ...)
{
	if (l->done)
		return;
	l->done = true;
	l->outcome = outcome;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->detail, sizeof(l->detail), fmt, ap);
	va_end(ap);
	if (l->d == NULL || l->cb == NULL)
		return; /* nobody waits: the caller releases it */
	l->done_ev = event_new(l->d->base, -1, 0, qd_done_cb, l);
	struct timeval now = {0, 0};
	event_add(l->done_ev, &now);
}

void queue_dns_cancel(struct queue_dns_lookup **lp)
{
	struct queue_dns_lookup *l = *lp;
	if (l == NULL)
		return;
	*lp = NULL;
	l->cb = NULL;
	qd_query_free(&l->query);
	if (l->done_ev != NULL)
		event_free(l->done_ev);
	l->done_ev = NULL;
	/* else the last evdns answer frees it */
	qd_release(l);
}

static void qd_add_addr(struct queue_dns_lookup *l, const struct net_addr *a, const char *name)
{
	if (l->naddrs == QUEUE_DNS_MAX_ADDRS)
		return;
	l->addrs[l->naddrs] = *a;
	l->names[l->naddrs++] = xstrdup(name);
}

/* Every A and AAAA lookup answered: decide. */
static void qd_hosts_done(struct queue_dns_lookup *l)
{
	bool temp = false;
	char temp_text[200] = "";
	for (size_t h = 0; h < l->nhosts; h++) {
		struct qd_host *host = &l->hosts[h];
		for (int f = 0; f < 2; f++) {
			struct qd_family *fam = &host->fam[f];
			for (size_t i = 0; i < fam->naddrs; i++)
				qd_add_addr(l, &fam->addrs[i], host->name);
			if (fam->err != DNS_ERR_NONE && fam->err != DNS_ERR_NOTEXIST &&
			    fam->err != DNS_ERR_NODATA) {
				temp = true;
				snprintf(temp_text, sizeof(temp_text), "%s %s: %s", host->name,
					 fam->v6 ? "AAAA" : "A", evdns_err_to_string(fam->err));
			}
		}
	}
	if (l->naddrs > 0) {
		qd_finish(l, QUEUE_DNS_OK, "%zu address(es)", l->naddrs);
	} else if (temp) {
		qd_finish(l, QUEUE_DNS_TEMPFAIL, "DNS lookup failed: %s", temp_text);
	} else if (!l->mx_mode) {
		qd_finish(l, QUEUE_DNS_TEMPFAIL, "no address found for %s", l->domain);
	} else if (l->implicit) {
		qd_finish(l, QUEUE_DNS_NO_DOMAIN, "the domain %s has no MX and no address record",
			  l->domain);
	} else {
		qd_finish(l, QUEUE_DNS_NO_HOST, "no MX host of %s has an address (%s%s)", l->domain,
			  l->hosts[0].name, l->nhosts > 1 ? ", ..." : "");
	}
}

static void qd_evdns_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	(void)ttl;
	struct qd_family *fam = arg;
	struct qd_host *host = fam->host;
	struct queue_dns_lookup *l = host->l;
	fam->pending = false;
	l->pending--;
	fam->err = result;
	if (result == DNS_ERR_NONE) {
		for (int i = 0; i < count && fam->naddrs < QUEUE_DNS_MAX_ADDRS; i++) {
			struct net_addr *a = &fam->addrs[fam->naddrs];
			memset(a, 0, sizeof(*a));
			if (type == DNS_IPv4_A && !fam->v6) {
				struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
				sin->sin_family = AF_INET;
				sin->sin_port = htons((uint16_t)l->port);
				memcpy(&sin->sin_addr, (const char *)addresses + 4 * i, 4);
				a->len = sizeof(*sin);
			} else if (type == DNS_IPv6_AAAA && fam->v6) {
				struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
				sin6->sin6_family = AF_INET6;
				sin6->sin6_port = htons((uint16_t)l->port);
				memcpy(&sin6->sin6_addr, (const char *)addresses + 16 * i, 16);
				a->len = sizeof(*sin6);
			} else {
				continue;
			}
			fam->naddrs++;
		}
		if (fam->naddrs == 0)
			fam->err = DNS_ERR_NODATA;
	}
	if (l->d == NULL) {
		/* the resolver is gone */
		if (l->pending == 0)
			qd_lookup_free(l);
		return;
	}
	if (l->pending > 0)
		return;
	if (!l->done)
		qd_hosts_done(l);
	qd_release(l);
}

/* Ask for the A and AAAA records of every host. */
static void qd_resolve_hosts(struct queue_dns_lookup *l)
{
	struct queue_dns *d = l->d;
	if (d->evdns == NULL) {
		qd_finish(l, QUEUE_DNS_TEMPFAIL, "no DNS resolver");
		return;
	}
	for (size_t h = 0; h < l->nhosts; h++) {
		struct qd_host *host = &l->hosts[h];
		host->l = l;
		for (int f = 0; f < 2; f++) {
			struct qd_family *fam = &host->fam[f];
			fam->host = host;
			fam->v6 = f == 1;
			fam->pending = true;
			l->pending++;
		}
	}
	/* started only once every step is counted: an answer must not find
	 * the count at zero while others are still to be started */
	for (size_t h = 0; h < l->nhosts; h++) {
		struct qd_host *host = &l->hosts[h];
		int flags = l->mx_mode ? DNS_QUERY_NO_SEARCH : 0;
		for (int f = 0; f < 2; f++) {
			struct qd_family *fam = &host->fam[f];
			struct evdns_request *r =
			    fam->v6 ? evdns_base_resolve_ipv6(d->evdns, host->name, flags,
							      qd_evdns_cb, fam)
				    : evdns_base_resolve_ipv4(d->evdns, host->name, flags,
							      qd_evdns_cb, fam);
			if (r == NULL && fam->pending) {
				fam->pending = false;
				fam->err = DNS_ERR_UNKNOWN;
				l->pending--;
			}
		}
	}
	if (l->pending == 0 && !l->done)
		qd_hosts_done(l);
}

/* ---- the MX query ---- */

static void qd_query_next(struct queue_dns_lookup *l);

static void qd_mx_answer(struct queue_dns_lookup *l, const unsigned char *msg, size_t len)
{
	struct qd_query *q = l->query;
	struct queue_dns_mx_record mx[QUEUE_DNS_MAX_MX];
	size_t n = 0;
	int r = queue_dns_parse_mx(msg, len, q->id, l->domain, mx, QUEUE_DNS_MAX_MX, &n);
	if (r == -1)
		return; /* not ours: keep waiting */
	if (r == -2 && !q->tcp) {
		/* truncated: the same server over TCP */
		q->tcp_next = true;
		q->tries--;
		qd_query_next(l);
		return;
	}
	q->any_answer = true;
	if (r == ns_r_nxdomain) {
		qd_query_free(&l->query);
		qd_finish(l, QUEUE_DNS_NO_DOMAIN, "the domain %s does not exist", l->domain);
		return;
	}
	if (r != 0) {
		/* SERVFAIL, REFUSED, ...: another server may do better */
		snprintf(q->last_error, sizeof(q->last_error), "%s",
			 r == ns_r_servfail  ? "server failure"
			 : r == ns_r_refused ? "refused"
			 : r == -2	     ? "truncated answer"
					     : "error answer");
		qd_query_next(l);
		return;
	}
	qd_query_free(&l->query);
	/* RFC 7505: a single MX of "." */
	size_t real = 0;
	for (size_t i = 0; i < n; i++)
		real += mx[i].name[0] != '\0';
	if (n > 0 && real == 0) {
		qd_finish(l, QUEUE_DNS_NULL_MX, "the domain %s takes no mail (null MX)", l->domain);
		return;
	}
	if (n == 0) {
		/* RFC 5321 5.1: the domain itself, as if it were its own MX */
		l->implicit = true;
		snprintf(l->hosts[0].name, sizeof(l->hosts[0].name), "%s", l->domain);
		l->nhosts = 1;
	} else {
		/* equal preferences in random order (RFC 5321 5.1) */
		for (size_t i = 0; i < n;) {
			size_t j = i;
			while (j < n && mx[j].pref == mx[i].pref)
				j++;
			for (size_t k = j - 1; k > i; k--) {
				unsigned char rnd = 0;
				RAND_bytes(&rnd, 1);
				size_t pick = i + rnd % (k - i + 1);
				struct queue_dns_mx_record t = mx[k];
				mx[k] = mx[pick];
				mx[pick] = t;
			}
			i = j;
		}
		for (size_t i = 0; i < n; i++) {
			if (mx[i].name[0] == '\0')
				continue;
			struct qd_host *h = &l->hosts[l->nhosts++];
			snprintf(h->name, sizeof(h->name), "%s", mx[i].name);
			h->pref = mx[i].pref;
		}
	}
	qd_resolve_hosts(l);
}

static void qd_query_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue_dns_lookup *l = arg;
	struct qd_query *q = l->query;
	if (!q->tcp) {
		unsigned char buf[4096];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			/* ICMP port unreachable and the like */
			snprintf(q->last_error, sizeof(q->last_error), "%s", strerror(errno));
			qd_query_next(l);
			return;
		}
		qd_mx_answer(l, buf, (size_t)n);
		return;
	}
	if (!q->tcp_connected) {
		int err = 0;
		socklen_t elen = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
		if (err != 0) {
			snprintf(q->last_error, sizeof(q->last_error), "TCP: %s", strerror(err));
			qd_query_next(l);
			return;
		}
		q->tcp_connected = true;
	}
	if (what & EV_WRITE) {
		unsigned char out[2 + sizeof(q->msg)];
		out[0] = (unsigned char)(q->len >> 8);
		out[1] = (unsigned char)q->len;
		memcpy(out + 2, q->msg, q->len);
		ssize_t n = send(fd, out + q->tcp_sent, q->len + 2 - q->tcp_sent, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			snprintf(q->last_error, sizeof(q->last_error), "TCP: %s", strerror(errno));
			qd_query_next(l);
			return;
		}
		q->tcp_sent += (size_t)n;
		if (q->tcp_sent == q->len + 2) {
			event_free(q->io_ev);
			q->io_ev =
			    event_new(l->d->base, fd, EV_READ | EV_PERSIST, qd_query_io_cb, l);
			event_add(q->io_ev, NULL);
		}
		return;
	}
	if (q->buf == NULL)
		q->buf = xmalloc(2 + QD_MAX_MSG);
	size_t want = q->buf_len < 2 ? 2 : 2 + (size_t)(q->buf[0] << 8 | q->buf[1]);
	ssize_t n = recv(fd, q->buf + q->buf_len, want - q->buf_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		snprintf(q->last_error, sizeof(q->last_error), "TCP: %s",
			 n == 0 ? "closed" : strerror(errno));
		qd_query_next(l);
		return;
	}
	q->buf_len += (size_t)n;
	if (q->buf_len < 2 || q->buf_len < 2 + (size_t)(q->buf[0] << 8 | q->buf[1]))
		return;
	size_t len = q->buf_len - 2;
	unsigned char *msg = xmalloc(len + 1);
	memcpy(msg, q->buf + 2, len);
	qd_mx_answer(l, msg, len);
	free(msg);
	/* an answer that was not ours over TCP: the stream is spent */
	if (l->query == q && q->buf_len >= 2 && q->fd == fd) {
		snprintf(q->last_error, sizeof(q->last_error), "TCP: unusable answer");
		qd_query_next(l);
	}
}

static void qd_query_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct queue_dns_lookup *l = arg;
	snprintf(l->query->last_error, sizeof(l->query->last_error), "no answer");
	qd_query_next(l);
}

/* Send the query to the next server (or the same one over TCP). */
static void qd_query_next(struct queue_dns_lookup *l)
{
	struct qd_query *q = l->query;
	struct queue_dns *d = l->d;
	if (q->io_ev != NULL)
		event_free(q->io_ev);
	q->io_ev = NULL;
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	free(q->buf);
	q->buf = NULL;
	q->buf_len = q->tcp_sent = 0;
	q->tcp_connected = false;
	int servers = d->evdns != NULL ? evdns_base_count_nameservers(d->evdns) : 0;
	q->tcp = q->tcp_next;
	q->tcp_next = false;
	for (;;) {
		if (servers <= 0 || q->tries >= servers * QUEUE_DNS_ROUNDS) {
			char text[160];
			snprintf(text, sizeof(text), "%s", q->last_error);
			qd_query_free(&l->query);
			qd_finish(l, QUEUE_DNS_TEMPFAIL,
				  "DNS lookup of the MX records of %s failed: %s", l->domain,
				  servers <= 0 ? "no DNS server" : text);
			return;
		}
		if (q->tries > 0 && !q->tcp)
			q->server = (q->server + 1) % servers;
		q->tries++;
		struct sockaddr_storage ss;
		int slen = evdns_base_get_nameserver_addr(d->evdns, q->server,
							  (struct sockaddr *)&ss, sizeof(ss));
		if (slen <= 0 || (size_t)slen > sizeof(ss)) {
			q->tcp = false;
			continue;
		}
		q->fd =
		    socket(ss.ss_family,
			   (q->tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (q->fd < 0) {
			snprintf(q->last_error, sizeof(q->last_error), "%s", strerror(errno));
			q->tcp = false;
			continue;
		}
		int r = connect(q->fd, (struct sockaddr *)&ss, (socklen_t)slen);
		if (r < 0 && !(q->tcp && errno == EINPROGRESS)) {
			snprintf(q->last_error, sizeof(q->last_error), "%s", strerror(errno));
			close(q->fd);
			q->fd = -1;
			q->tcp = false;
			continue;
		}
		if (!q->tcp && send(q->fd, q->msg, q->len, 0) < 0) {
			snprintf(q->last_error, sizeof(q->last_error), "%s", strerror(errno));
			close(q->fd);
			q->fd = -1;
			q->tcp = false;
			continue;
		}
		q->io_ev = event_new(d->base, q->fd, (q->tcp ? EV_WRITE : EV_READ) | EV_PERSIST,
				     qd_query_io_cb, l);
		event_add(q->io_ev, NULL);
		struct timeval tv = {QUEUE_DNS_TRY_MS / 1000, (QUEUE_DNS_TRY_MS % 1000) * 1000};
		evtimer_add(q->timer, &tv);
		return;
	}
}

static void qd_start_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct queue_dns_lookup *l = arg;
	event_free(l->done_ev);
	l->done_ev = NULL;
	if (l->query != NULL)
		qd_query_next(l);
	else
		qd_resolve_hosts(l);
	/* still waited for (cb is set): nothing to release here */
}

static struct queue_dns_lookup *qd_lookup_new(struct queue_dns *d, const char *name, unsigned port,
					      queue_dns_cb *cb, void *ctx)
{
	struct queue_dns_lookup *l = xcalloc(1, sizeof(*l));
	l->d = d;
	l->cb = cb;
	l->ctx = ctx;
	l->port = port;
	snprintf(l->domain, sizeof(l->domain), "%s", name);
	size_t len = strlen(l->domain);
	if (len > 1 && l->domain[len - 1] == '.')
		l->domain[len - 1] = '\0';
	l->next = d->lookups;
	if (l->next != NULL)
		l->next->prev = l;
	d->lookups = l;
	return l;
}

/* Start from the loop: callbacks never run inside the caller's call. */
static void qd_start(struct queue_dns_lookup *l)
{
	l->done_ev = event_new(l->d->base, -1, 0, qd_start_cb, l);
	struct timeval now = {0, 0};
	event_add(l->done_ev, &now);
}

/* "192.0.2.1", "2001:db8::1" (no brackets) into a with port. */
static bool qd_numeric(const char *host, unsigned port, struct net_addr *a)
{
	memset(a, 0, sizeof(*a));
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		a->len = sizeof(*sin);
		return true;
	}
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*sin6);
		return true;
	}
	return false;
}

struct queue_dns_lookup *queue_dns_mx(struct queue_dns *d, const char *domain, unsigned port,
				      queue_dns_cb *cb, void *ctx)
{
	struct queue_dns_lookup *l = qd_lookup_new(d, domain, port, cb, ctx);
	l->mx_mode = true;
	if (domain[0] == '[') {
		/* an address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]" */
		char lit[300];
		snprintf(lit, sizeof(lit), "%s", domain + 1);
		char *close = strchr(lit, ']');
		if (close != NULL)
			*close = '\0';
		const char *a = strncasecmp(lit, "IPv6:", 5) == 0 ? lit + 5 : lit;
		struct net_addr addr;
		l->done = true;
		if (qd_numeric(a, port, &addr)) {
			qd_add_addr(l, &addr, a);
			l->outcome = QUEUE_DNS_OK;
			snprintf(l->detail, sizeof(l->detail), "address literal");
		} else {
			l->outcome = QUEUE_DNS_NO_DOMAIN;
			snprintf(l->detail, sizeof(l->detail), "bad address literal %s", domain);
		}
		l->done_ev = event_new(d->base, -1, 0, qd_done_cb, l);
		struct timeval now = {0, 0};
		event_add(l->done_ev, &now);
		return l;
	}
	struct qd_query *q = xcalloc(1, sizeof(*q));
	q->fd = -1;
	RAND_bytes((unsigned char *)&q->id, sizeof(q->id));
	int len = queue_dns_build_mx_query(l->domain, q->id, q->msg, sizeof(q->msg));
	if (len < 0) {
		free(q);
		l->done = true;
		l->outcome = QUEUE_DNS_NO_DOMAIN;
		snprintf(l->detail, sizeof(l->detail), "%s is not a valid domain name", domain);
		l->done_ev = event_new(d->base, -1, 0, qd_done_cb, l);
		struct timeval now = {0, 0};
		event_add(l->done_ev, &now);
		return l;
	}
	q->len = (size_t)len;
	snprintf(q->last_error, sizeof(q->last_error), "no answer");
	q->timer = evtimer_new(d->base, qd_query_timeout_cb, l);
	l->query = q;
	qd_start(l);
	return l;
}

/* /etc/hosts: the addresses of name, into l's result. */
static void qd_hosts_file(struct queue_dns_lookup *l, const char *name)
{
	FILE *f = fopen("/etc/hosts", "re");
	if (f == NULL)
		return;
	char line[1024];
	while (fgets(line, sizeof(line), f) != NULL) {
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		char *save = NULL;
		char *addr = strtok_r(line, " \t\r\n", &save);
		if (addr == NULL)
			continue;
		for (char *n = strtok_r(NULL, " \t\r\n", &save); n != NULL;
		     n = strtok_r(NULL, " \t\r\n", &save)) {
			struct net_addr a;
			if (strcasecmp(n, name) == 0 && qd_numeric(addr, l->port, &a)) {
				qd_add_addr(l, &a, name);
				break;
			}
		}
	}
	fclose(f);
}

struct queue_dns_lookup *queue_dns_host(struct queue_dns *d, const char *host, unsigned port,
					queue_dns_cb *cb, void *ctx)
{
	struct queue_dns_lookup *l = qd_lookup_new(d, host, port, cb, ctx);
	struct net_addr a;
	if (qd_numeric(l->domain, port, &a))
		qd_add_addr(l, &a, l->domain);
	else
		qd_hosts_file(l, l->domain);
	if (l->naddrs > 0) {
		l->done = true;
		l->outcome = QUEUE_DNS_OK;
		snprintf(l->detail, sizeof(l->detail), "%zu address(es)", l->naddrs);
		l->done_ev = event_new(d->base, -1, 0, qd_done_cb, l);
		struct timeval now = {0, 0};
		event_add(l->done_ev, &now);
		return l;
	}
	snprintf(l->hosts[0].name, sizeof(l->hosts[0].name), "%s", l->domain);
	l->nhosts = 1;
	qd_start(l);
	return l;
}
