#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imapd/imapd_private.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mail/mail_address.h"
#include "mail/mail_header.h"
#include "net/conn.h"
#include "store/store.h"

/* SORT and THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES. The keys come
 * from each message's header (read up to IMAPD_HEADER_READ_MAX bytes):
 * the base subject, the first address of From/To/Cc, the Date: field,
 * Message-ID, In-Reply-To and References. Strings compare with
 * i;ascii-casemap; ties fall back to the sequence number. */

struct imapd_sort_item {
	uint32_t uid, seq;
	time_t arrival, date;
	uint64_t size;
	char *subject; /* base subject */
	bool reply;    /* the subject had a Re:/Fwd: leader or (fwd) trailer */
	char *from, *to, *cc, *dfrom, *dto;
	char *msgid, *inreplyto, *refs;
};

static const char *const imapd_months[] = {"jan", "feb", "mar", "apr", "may", "jun",
					   "jul", "aug", "sep", "oct", "nov", "dec"};

/* RFC 5322 date ("Mon, 7 Feb 1994 21:52:25 -0800"), tolerant; 0 when it
 * cannot be read. */
static time_t imapd_parse_date(const char *v)
{
	if (v == NULL)
		return 0;
	const char *comma = strchr(v, ',');
	if (comma != NULL)
		v = comma + 1;
	int day, year, h = 0, m = 0, sec = 0;
	char mon[8], zone[16] = "";
	int n = sscanf(v, " %d %3s %d %d:%d:%d %15s", &day, mon, &year, &h, &m, &sec, zone);
	if (n < 5) {
		n = sscanf(v, " %d %3s %d %d:%d %15s", &day, mon, &year, &h, &m, zone);
		sec = 0;
		if (n < 5)
			return 0;
	}
	int month = -1;
	for (int i = 0; i < 12; i++)
		if (strncasecmp(mon, imapd_months[i], 3) == 0)
			month = i;
	if (month < 0)
		return 0;
	if (year < 50)
		year += 2000;
	else if (year < 1000)
		year += 1900;
	struct tm tm = {.tm_year = year - 1900,
			.tm_mon = month,
			.tm_mday = day,
			.tm_hour = h,
			.tm_min = m,
			.tm_sec = sec};
	time_t t = timegm(&tm);
	if ((zone[0] == '+' || zone[0] == '-') && isdigit((unsigned char)zone[1])) {
		int z = atoi(zone + 1);
		int off = (z / 100) * 3600 + (z % 100) * 60;
		t += zone[0] == '+' ? -off : off;
	}
	return t;
}

static bool imapd_strip_prefix(char **p, const char *prefix)
{
	size_t l = strlen(prefix);
	if (strncasecmp(*p, prefix, l) != 0)
		return false;
	*p += l;
	return true;
}

/* The base subject of RFC 5256 2.1, upper-cased; *reply_r tells whether
 * anything of a reply or forward was removed. */
static char *imapd_base_subject(const char *raw, bool *reply_r)
{
	char *decoded = raw != NULL ? mail_decode_words(raw) : xstrdup("");
	/* whitespace runs become one space */
	char *s = xmalloc(strlen(decoded) + 1);
	size_t o = 0;
	for (const char *p = decoded; *p != '\0'; p++) {
		bool ws = *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n';
		if (ws && (o == 0 || s[o - 1] == ' '))
			continue;
		s[o++] = ws ? ' ' : *p;
	}
	s[o] = '\0';
	free(decoded);
	*reply_r = false;
	char *p = s;
	for (bool changed = true; changed;) {
		changed = false;
		size_t len = strlen(p);
		while (len > 0 && p[len - 1] == ' ')
			p[--len] = '\0';
		if (len >= 5 && strcasecmp(p + len - 5, "(fwd)") == 0) {
			p[len - 5] = '\0';
			*reply_r = changed = true;
			continue;
		}
		while (*p == ' ')
			p++;
		/* leading [blob]s, when something remains after them */
		if (*p == '[') {
			char *e = strchr(p, ']');
			if (e != NULL && e[1] != '\0' && strchr(p + 1, '[') != NULL &&
			    strchr(p + 1, '[') < e)
				e = NULL;
			if (e != NULL) {
				char *rest = e + 1;
				while (*rest == ' ')
					rest++;
				if (*rest != '\0') {
					p = rest;
					changed = true;
					continue;
				}
			}
		}
		char *q = p;
		if (imapd_strip_prefix(&q, "re") || imapd_strip_prefix(&q, "fwd") ||
		    imapd_strip_prefix(&q, "fw")) {
			while (*q == ' ')
				q++;
			if (*q == '[') {
				char *e = strchr(q, ']');
				if (e != NULL)
					q = e + 1;
			}
			if (*q == ':') {
				p = q + 1;
				*reply_r = changed = true;
				continue;
			}
		}
		len = strlen(p);
		if (strncasecmp(p, "[fwd:", 5) == 0 && len > 6 && p[len - 1] == ']') {
			p[len - 1] = '\0';
			p += 5;
			*reply_r = changed = true;
		}
	}
	char *out = xstrdup(p);
	for (char *c = out; *c != '\0'; c++)
		*c = (char)toupper((unsigned char)*c);
	free(s);
	return out;
}

static char *imapd_first_mailbox(const char *value, bool display)
{
	struct mail_address *list = value != NULL ? mail_address_parse(value) : NULL;
	char *out = NULL;
	for (struct mail_address *a = list; a != NULL && out == NULL; a = a->next) {
		if (a->domain == NULL)
			continue; /* group markers */
		if (display && a->name != NULL && *a->name != '\0')
			out = mail_decode_words(a->name);
		else if (display)
			out = xasprintf("%s@%s", a->mailbox, a->domain);
		else
			out = xstrdup(a->mailbox);
	}
	mail_address_free(&list);
	return out != NULL ? out : xstrdup("");
}

static void imapd_sort_item_clear(struct imapd_sort_item *it)
{
	free(it->subject);
	free(it->from);
	free(it->to);
	free(it->cc);
	free(it->dfrom);
	free(it->dto);
	free(it->msgid);
	free(it->inreplyto);
	free(it->refs);
}

/* The keys of one message. Returns 0, or -1 when it cannot be read. */
static int imapd_sort_load(struct imapd_session *s, uint32_t uid, struct imapd_sort_item *it)
{
	memset(it, 0, sizeof(*it));
	it->uid = uid;
	it->seq = (uint32_t)(imapd_view_find(s, uid) + 1);
	const struct store_message *m = imapd_message(s, uid);
	if (m != NULL) {
		it->arrival = m->internal_date;
		it->size = m->size;
	}
	uint64_t off = 0, size = 0;
	char *error = NULL;
	char *hdr = NULL;
	size_t got = 0;
	if (store_message_section(s->folder, uid, "", STORE_SECTION_HEADER, &off, &size, NULL,
				  &error) > 0) {
		size_t want = size < IMAPD_HEADER_READ_MAX ? (size_t)size : IMAPD_HEADER_READ_MAX;
		hdr = xmalloc(want + 1);
		if (store_message_pread(s->folder, uid, off, hdr, want, &got, &error) <= 0)
			got = 0;
		hdr[got] = '\0';
	}
	free(error);
	const char *h = hdr != NULL ? hdr : "";
	char *subject = mail_header_get(h, got, "Subject");
	it->subject = imapd_base_subject(subject, &it->reply);
	free(subject);
	char *v = mail_header_get(h, got, "From");
	it->from = imapd_first_mailbox(v, false);
	it->dfrom = imapd_first_mailbox(v, true);
	free(v);
	v = mail_header_get(h, got, "To");
	it->to = imapd_first_mailbox(v, false);
	it->dto = imapd_first_mailbox(v, true);
	free(v);
	v = mail_header_get(h, got, "Cc");
	it->cc = imapd_first_mailbox(v, false);
	free(v);
	v = mail_header_get(h, got, "Date");
	it->date = imapd_parse_date(v);
	if (it->date == 0)
		it->date = it->arrival;
	free(v);
	it->msgid = mail_header_get(h, got, "Message-ID");
	it->inreplyto = mail_header_get(h, got, "In-Reply-To");
	it->refs = mail_header_get(h, got, "References");
	free(hdr);
	return 0;
}

static const struct imap_sort_criterion *imapd_criteria;
static unsigned imapd_ncriteria;

static int imapd_cmp_num(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b ? 1 : 0;
}

static int imapd_sort_cmp(const void *pa, const void *pb)
{
	const struct imapd_sort_item *a = pa, *b = pb;
	for (unsigned i = 0; i < imapd_ncriteria; i++) {
		int c = 0;
		switch (imapd_criteria[i].key) {
		case IMAP_SORT_ARRIVAL:
			c = imapd_cmp_num((uint64_t)a->arrival, (uint64_t)b->arrival);
			break;
		case IMAP_SORT_DATE:
			c = imapd_cmp_num((uint64_t)a->date, (uint64_t)b->date);
			break;
		case IMAP_SORT_SIZE:
			c = imapd_cmp_num(a->size, b->size);
			break;
		case IMAP_SORT_SUBJECT:
			c = strcasecmp(a->subject, b->subject);
			break;
		case IMAP_SORT_FROM:
			c = strcasecmp(a->from, b->from);
			break;
		case IMAP_SORT_TO:
			c = strcasecmp(a->to, b->to);
			break;
		case IMAP_SORT_CC:
			c = strcasecmp(a->cc, b->cc);
			break;
		case IMAP_SORT_DISPLAYFROM:
			c = strcasecmp(a->dfrom, b->dfrom);
			break;
		case IMAP_SORT_DISPLAYTO:
			c = strcasecmp(a->dto, b->dto);
			break;
		}
		if (c != 0)
			return imapd_criteria[i].reverse ? -c : c;
	}
	return imapd_cmp_num(a->seq, b->seq);
}

/* Load the keys of the messages a search found. Returns the array (count
 * in *count_r) or NULL after answering. */
static struct imapd_sort_item *imapd_sort_items(struct imapd_session *s, const char *charset,
						struct imap_search_key *keys, size_t *count_r)
{
	uint32_t *uids;
	size_t n;
	if (imapd_search_uids(s, charset, keys, &uids, &n) < 0)
		return NULL;
	struct imapd_sort_item *items = xcalloc(n + 1, sizeof(*items));
	for (size_t i = 0; i < n; i++)
		imapd_sort_load(s, uids[i], &items[i]);
	free(uids);
	*count_r = n;
	return items;
}

static void imapd_sort_items_free(struct imapd_sort_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		imapd_sort_item_clear(&items[i]);
	free(items);
}

void imapd_cmd_sort(struct imapd_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_sort *so = &cmd->u.sort;
	size_t n;
	struct imapd_sort_item *items = imapd_sort_items(s, so->charset, so->keys, &n);
	if (items == NULL)
		return;
	imapd_criteria = so->criteria;
	imapd_ncriteria = so->count;
	qsort(items, n, sizeof(*items), imapd_sort_cmp);
	imap_buf_str(&s->out, "* SORT");
	for (size_t i = 0; i < n; i++) {
		imap_buf_printf(&s->out, " %u", cmd->uid ? items[i].uid : items[i].seq);
		if (s->out.len >= IMAPD_READ_CHUNK)
			imapd_flush(s);
	}
	imap_buf_str(&s->out, "\r\n");
	imapd_flush(s);
	imapd_sort_items_free(items, n);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "%s completed", cmd->def->name);
}

/* ---- THREAD ---- */

struct imapd_node {
	struct imapd_sort_item *msg; /* NULL: a dummy */
	struct imapd_node *parent, *child, *next;
	struct imapd_node *hnext; /* the message ID table's chain */
	char *id;
};

static int imapd_node_cmp(const void *pa, const void *pb);

static time_t imapd_node_date(const struct imapd_node *n)
{
	while (n != NULL && n->msg == NULL)
		n = n->child;
	return n != NULL ? n->msg->date : 0;
}

static uint32_t imapd_node_seq(const struct imapd_node *n)
{
	while (n != NULL && n->msg == NULL)
		n = n->child;
	return n != NULL ? n->msg->seq : 0;
}

static int imapd_node_cmp(const void *pa, const void *pb)
{
	const struct imapd_node *a = *(struct imapd_node *const *)pa;
	const struct imapd_node *b = *(struct imapd_node *const *)pb;
	int c = imapd_cmp_num((uint64_t)imapd_node_date(a), (uint64_t)imapd_node_date(b));
	return c != 0 ? c : imapd_cmp_num(imapd_node_seq(a), imapd_node_seq(b));
}

/* Sort a sibling list by date (RFC 5256 2.2 step 5), recursively. */
static struct imapd_node *imapd_sort_siblings(struct imapd_node *first)
{
	size_t n = 0;
	for (struct imapd_node *c = first; c != NULL; c = c->next)
		n++;
	if (n == 0)
		return NULL;
	struct imapd_node **v = xcalloc(n, sizeof(*v));
	n = 0;
	for (struct imapd_node *c = first; c != NULL; c = c->next) {
		c->child = imapd_sort_siblings(c->child);
		v[n++] = c;
	}
	qsort(v, n, sizeof(*v), imapd_node_cmp);
	for (size_t i = 0; i + 1 < n; i++)
		v[i]->next = v[i + 1];
	v[n - 1]->next = NULL;
	first = v[0];
	free(v);
	return first;
}

static void imapd_write_thread(struct imap_buf *b, const struct imapd_node *n, bool uid)
{
	bool number = false;
	while (n != NULL) {
		if (n->msg != NULL) {
			imap_buf_printf(b, "%s%u", number ? " " : "",
					uid ? n->msg->uid : n->msg->seq);
			number = true;
		}
		if (n->child != NULL && n->child->next != NULL) {
			/* branches: thread-nested, one list per child */
			if (number)
				imap_buf_str(b, " ");
			for (const struct imapd_node *c = n->child; c != NULL; c = c->next) {
				imap_buf_str(b, "(");
				imapd_write_thread(b, c, uid);
				imap_buf_str(b, ")");
			}
			return;
		}
		n = n->child;
	}
}

/* Next message ID "<...>" in *p, malloc'ed, or NULL. */
static char *imapd_next_id(const char **p)
{
	const char *s = *p != NULL ? strchr(*p, '<') : NULL;
	const char *e = s != NULL ? strchr(s, '>') : NULL;
	if (e == NULL) {
		*p = NULL;
		return NULL;
	}
	*p = e + 1;
	return xstrndup(s, (size_t)(e - s + 1));
}

struct imapd_threader {
	struct imapd_node **nodes;
	size_t count, cap;
	struct imapd_node **table; /* by message ID, tsize buckets */
	size_t tsize;
};

static size_t imapd_id_hash(const char *id, size_t size)
{
	size_t h = 5381;
	for (const unsigned char *p = (const unsigned char *)id; *p != '\0'; p++)
		h = h * 33 + *p;
	return h & (size - 1);
}

/* The container of a message ID (made on first use); id NULL: a new one
 * that no ID finds. */
static struct imapd_node *imapd_node_get(struct imapd_threader *t, const char *id)
{
	size_t h = 0;
	if (id != NULL) {
		h = imapd_id_hash(id, t->tsize);
		for (struct imapd_node *n = t->table[h]; n != NULL; n = n->hnext)
			if (strcmp(n->id, id) == 0)
				return n;
	}
	if (t->count == t->cap) {
		t->cap = t->cap * 2 + 64;
		t->nodes = xrealloc(t->nodes, t->cap * sizeof(*t->nodes));
	}
	struct imapd_node *n = xcalloc(1, sizeof(*n));
	n->id = id != NULL ? xstrdup(id) : NULL;
	t->nodes[t->count++] = n;
	if (id != NULL) {
		n->hnext = t->table[h];
		t->table[h] = n;
	}
	return n;
}

static bool imapd_is_ancestor(const struct imapd_node *a, const struct imapd_node *n)
{
	for (; n != NULL; n = n->parent)
		if (n == a)
			return true;
	return false;
}

static void imapd_unlink(struct imapd_node *n)
{
	if (n->parent == NULL)
		return;
	for (struct imapd_node **p = &n->parent->child; *p != NULL; p = &(*p)->next)
		if (*p == n) {
			*p = n->next;
			break;
		}
	n->parent = NULL;
	n->next = NULL;
}

static void imapd_link(struct imapd_node *parent, struct imapd_node *n)
{
	imapd_unlink(n);
	n->parent = parent;
	n->next = parent->child;
	parent->child = n;
}

/* RFC 5256 2.2 step 4: drop empty dummies, promote the children of the
 * others (at the root only when there is one child). Returns the new list. */
static struct imapd_node *imapd_prune(struct imapd_node *list, bool root)
{
	struct imapd_node *out = NULL, **tail = &out;
	for (struct imapd_node *n = list, *next; n != NULL; n = next) {
		next = n->next;
		n->child = imapd_prune(n->child, false);
		if (n->msg == NULL && n->child == NULL)
			continue;
		if (n->msg == NULL && (!root || n->child->next == NULL)) {
			for (struct imapd_node *c = n->child; c != NULL; c = c->next)
				c->parent = n->parent;
			*tail = n->child;
			while (*tail != NULL)
				tail = &(*tail)->next;
			continue;
		}
		*tail = n;
		tail = &n->next;
	}
	*tail = NULL;
	return out;
}

static const char *imapd_node_subject(const struct imapd_node *n, bool *reply_r)
{
	while (n != NULL && n->msg == NULL)
		n = n->child;
	*reply_r = n != NULL && n->msg->reply;
	return n != NULL ? n->msg->subject : "";
}

void imapd_cmd_thread(struct imapd_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_thread *th = &cmd->u.thread;
	size_t n;
	struct imapd_sort_item *items = imapd_sort_items(s, th->charset, th->keys, &n);
	if (items == NULL)
		return;
	struct imapd_threader t = {0};
	t.tsize = 1024;
	while (t.tsize < n * 4)
		t.tsize *= 2;
	t.table = xcalloc(t.tsize, sizeof(*t.table));
	struct imapd_node *roots = NULL;
	if (th->algorithm == IMAP_THREAD_ORDEREDSUBJECT) {
		static const struct imap_sort_criterion by[] = {{IMAP_SORT_SUBJECT, false},
								{IMAP_SORT_DATE, false}};
		imapd_criteria = by;
		imapd_ncriteria = 2;
		qsort(items, n, sizeof(*items), imapd_sort_cmp);
		struct imapd_node *top = NULL;
		for (size_t i = 0; i < n; i++) {
			struct imapd_node *node = imapd_node_get(&t, NULL);
			node->msg = &items[i];
			if (top != NULL && strcmp(top->msg->subject, items[i].subject) == 0) {
				/* later messages of a subject are children of the first */
				struct imapd_node **p = &top->child;
				while (*p != NULL)
					p = &(*p)->next;
				*p = node;
				node->parent = top;
				continue;
			}
			node->next = roots;
			roots = node;
			top = node;
		}
		/* the children in date order; the threads by their first date */
		for (struct imapd_node *r = roots; r != NULL; r = r->next)
			r->child = imapd_sort_siblings(r->child);
		struct imapd_node *sorted = NULL;
		size_t nr = 0;
		for (struct imapd_node *r = roots; r != NULL; r = r->next)
			nr++;
		struct imapd_node **v = xcalloc(nr + 1, sizeof(*v));
		nr = 0;
		for (struct imapd_node *r = roots; r != NULL; r = r->next)
			v[nr++] = r;
		qsort(v, nr, sizeof(*v), imapd_node_cmp);
		for (size_t i = nr; i-- > 0;) {
			v[i]->next = sorted;
			sorted = v[i];
		}
		free(v);
		roots = sorted;
	} else {
		/* step 1: containers by message ID, linked by References */
		for (size_t i = 0; i < n; i++) {
			const char *p = items[i].msgid;
			char *id = imapd_next_id(&p);
			struct imapd_node *node = id != NULL ? imapd_node_get(&t, id) : NULL;
			if (node == NULL || node->msg != NULL)
				node = imapd_node_get(&t, NULL); /* none, or a duplicate */
			free(id);
			node->msg = &items[i];
			const char *refs =
			    items[i].refs != NULL ? items[i].refs : items[i].inreplyto;
			if (items[i].refs == NULL && refs != NULL) {
				/* In-Reply-To: its first message ID only */
				p = refs;
				char *first = imapd_next_id(&p);
				refs = NULL;
				if (first != NULL) {
					struct imapd_node *parent = imapd_node_get(&t, first);
					if (!imapd_is_ancestor(node, parent))
						imapd_link(parent, node);
					free(first);
				}
			}
			struct imapd_node *prev = NULL;
			for (p = refs; p != NULL;) {
				char *ref = imapd_next_id(&p);
				if (ref == NULL)
					break;
				struct imapd_node *r = imapd_node_get(&t, ref);
				free(ref);
				if (prev != NULL && r->parent == NULL && r != prev &&
				    !imapd_is_ancestor(r, prev))
					imapd_link(prev, r);
				prev = r;
			}
			if (prev != NULL && prev != node && !imapd_is_ancestor(node, prev))
				imapd_link(prev, node);
			else if (items[i].refs != NULL)
				imapd_unlink(node);
		}
		/* step 2: the roots */
		struct imapd_node **tail = &roots;
		for (size_t i = 0; i < t.count; i++)
			if (t.nodes[i]->parent == NULL) {
				*tail = t.nodes[i];
				tail = &t.nodes[i]->next;
			}
		*tail = NULL;
		roots = imapd_prune(roots, true);
		/* step 5 (before grouping: a dummy's subject is its first child's) */
		roots = imapd_sort_siblings(roots);
		/* step 5B: roots with the same base subject are gathered */
		struct imapd_node *out = NULL, **otail = &out;
		for (struct imapd_node *r = roots, *next; r != NULL; r = next) {
			next = r->next;
			r->next = NULL;
			bool r_reply;
			const char *subj = imapd_node_subject(r, &r_reply);
			struct imapd_node *same = NULL;
			for (struct imapd_node *o = out; o != NULL && *subj != '\0'; o = o->next) {
				bool o_reply;
				if (strcmp(imapd_node_subject(o, &o_reply), subj) == 0)
					same = o;
			}
			if (same == NULL) {
				*otail = r;
				otail = &r->next;
				continue;
			}
			bool same_reply;
			imapd_node_subject(same, &same_reply);
			if (same->msg == NULL || (!same_reply && r_reply)) {
				imapd_link(same, r);
			} else {
				/* both become children of a new dummy in same's place */
				struct imapd_node *d = imapd_node_get(&t, NULL);
				d->msg = NULL;
				d->next = same->next;
				for (struct imapd_node **p = &out; *p != NULL; p = &(*p)->next)
					if (*p == same) {
						*p = d;
						break;
					}
				if (otail == &same->next)
					otail = &d->next;
				same->next = NULL;
				imapd_link(d, same);
				imapd_link(d, r);
			}
		}
		roots = imapd_sort_siblings(out);
	}
	struct imap_buf *b = &s->out;
	imap_buf_str(b, "* THREAD ");
	for (struct imapd_node *r = roots; r != NULL; r = r->next) {
		imap_buf_str(b, "(");
		imapd_write_thread(b, r, cmd->uid);
		imap_buf_str(b, ")");
		if (b->len >= IMAPD_READ_CHUNK)
			imapd_flush(s);
	}
	imap_buf_str(b, "\r\n");
	imapd_flush(s);
	for (size_t i = 0; i < t.count; i++) {
		free(t.nodes[i]->id);
		free(t.nodes[i]);
	}
	free(t.nodes);
	free(t.table);
	imapd_sort_items_free(items, n);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "%s completed", cmd->def->name);
}
