#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "mail/mail_address.h"
#include "mail/mail_imap.h"

#define QUOTED_MAX 1024

struct out {
	char *d;
	size_t len, cap;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2 + 64;
		o->d = xrealloc(o->d, o->cap);
	}
	memcpy(o->d + o->len, p, n);
	o->len += n;
	o->d[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_string(struct out *o, const char *s)
{
	if (s == NULL) {
		puts_(o, "NIL");
		return;
	}
	size_t len = strlen(s);
	bool literal = len > QUOTED_MAX;
	for (size_t i = 0; i < len && !literal; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n' || c >= 0x80)
			literal = true;
	}
	if (literal) {
		char hdr[32];
		snprintf(hdr, sizeof(hdr), "{%zu}\r\n", len);
		puts_(o, hdr);
		put(o, s, len);
		return;
	}
	put(o, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			put(o, "\\", 1);
		put(o, s + i, 1);
	}
	put(o, "\"", 1);
}

void mail_imap_append_string(char **buf, size_t *len, const char *s)
{
	struct out o = {.d = *buf, .len = *len, .cap = *buf != NULL ? *len + 1 : 0};
	put_string(&o, s);
	*buf = o.d;
	*len = o.len;
}

static void put_num(struct out *o, uint64_t n)
{
	char b[24];
	snprintf(b, sizeof(b), "%llu", (unsigned long long)n);
	puts_(o, b);
}

static void put_addresses(struct out *o, const char *value)
{
	struct mail_address *list = value != NULL ? mail_address_parse(value) : NULL;
	if (list == NULL) {
		puts_(o, "NIL");
		return;
	}
	put(o, "(", 1);
	for (struct mail_address *a = list; a != NULL; a = a->next) {
		put(o, "(", 1);
		put_string(o, a->name);
		put(o, " ", 1);
		put_string(o, a->route);
		put(o, " ", 1);
		put_string(o, a->mailbox);
		put(o, " ", 1);
		put_string(o, a->domain);
		put(o, ")", 1);
	}
	put(o, ")", 1);
	mail_address_free(&list);
}

static void envelope(struct out *o, const struct mime_part *m)
{
	const char *from = m->env[MIME_ENV_FROM];
	const char *sender = m->env[MIME_ENV_SENDER];
	const char *reply_to = m->env[MIME_ENV_REPLY_TO];
	/* an empty or unparsable Sender/Reply-To defaults to From as well */
	struct mail_address *probe = sender != NULL ? mail_address_parse(sender) : NULL;
	if (probe == NULL)
		sender = from;
	mail_address_free(&probe);
	probe = reply_to != NULL ? mail_address_parse(reply_to) : NULL;
	if (probe == NULL)
		reply_to = from;
	mail_address_free(&probe);

	put(o, "(", 1);
	put_string(o, m->env[MIME_ENV_DATE]);
	put(o, " ", 1);
	put_string(o, m->env[MIME_ENV_SUBJECT]);
	put(o, " ", 1);
	put_addresses(o, from);
	put(o, " ", 1);
	put_addresses(o, sender);
	put(o, " ", 1);
	put_addresses(o, reply_to);
	put(o, " ", 1);
	put_addresses(o, m->env[MIME_ENV_TO]);
	put(o, " ", 1);
	put_addresses(o, m->env[MIME_ENV_CC]);
	put(o, " ", 1);
	put_addresses(o, m->env[MIME_ENV_BCC]);
	put(o, " ", 1);
	put_string(o, m->env[MIME_ENV_IN_REPLY_TO]);
	put(o, " ", 1);
	put_string(o, m->env[MIME_ENV_MESSAGE_ID]);
	put(o, ")", 1);
}

char *mail_imap_envelope(const struct mime_part *message)
{
	struct out o = {0};
	envelope(&o, message);
	return o.d;
}

static void put_params(struct out *o, const struct mime_param *params, size_t n)
{
	if (n == 0) {
		puts_(o, "NIL");
		return;
	}
	put(o, "(", 1);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			put(o, " ", 1);
		put_string(o, params[i].name);
		put(o, " ", 1);
		put_string(o, params[i].value);
	}
	put(o, ")", 1);
}

static void put_disposition(struct out *o, const struct mime_part *p)
{
	if (p->disposition == NULL) {
		puts_(o, "NIL");
		return;
	}
	put(o, "(", 1);
	put_string(o, p->disposition);
	put(o, " ", 1);
	put_params(o, p->disp_params, p->ndisp_params);
	put(o, ")", 1);
}

static void put_language(struct out *o, const char *lang)
{
	if (lang == NULL) {
		puts_(o, "NIL");
		return;
	}
	/* "en, de" -> ("en" "de") */
	char *copy = xstrdup(lang);
	char *items[32];
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(copy, ", \t", &save); t != NULL && n < 32;
	     t = strtok_r(NULL, ", \t", &save))
		items[n++] = t;
	if (n == 0) {
		puts_(o, "NIL");
	} else if (n == 1) {
		put_string(o, items[0]);
	} else {
		put(o, "(", 1);
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				put(o, " ", 1);
			put_string(o, items[i]);
		}
		put(o, ")", 1);
	}
	free(copy);
}

static void put_empty_text(struct out *o, bool extended)
{
	puts_(o, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0");
	if (extended)
		puts_(o, " NIL NIL NIL NIL");
	put(o, ")", 1);
}

static void body(struct out *o, const struct mime_part *p, bool extended)
{
	if (strcasecmp(p->type, "multipart") == 0) {
		put(o, "(", 1);
		if (p->children == NULL)
			put_empty_text(o, extended);
		for (const struct mime_part *c = p->children; c != NULL; c = c->next)
			body(o, c, extended);
		put(o, " ", 1);
		put_string(o, p->subtype);
		if (extended) {
			put(o, " ", 1);
			put_params(o, p->params, p->nparams);
			put(o, " ", 1);
			put_disposition(o, p);
			put(o, " ", 1);
			put_language(o, p->language);
			put(o, " ", 1);
			put_string(o, p->location);
		}
		put(o, ")", 1);
		return;
	}
	put(o, "(", 1);
	put_string(o, p->type);
	put(o, " ", 1);
	put_string(o, p->subtype);
	put(o, " ", 1);
	put_params(o, p->params, p->nparams);
	put(o, " ", 1);
	put_string(o, p->id);
	put(o, " ", 1);
	put_string(o, p->description);
	put(o, " ", 1);
	put_string(o, p->encoding != NULL ? p->encoding : "7bit");
	put(o, " ", 1);
	put_num(o, p->end - p->body_start);
	if (strcasecmp(p->type, "message") == 0 && strcasecmp(p->subtype, "rfc822") == 0) {
		put(o, " ", 1);
		if (p->is_rfc822 && p->children != NULL) {
			envelope(o, p->children);
			put(o, " ", 1);
			body(o, p->children, extended);
		} else {
			puts_(o, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ");
			put_empty_text(o, extended);
		}
		put(o, " ", 1);
		put_num(o, p->body_lines);
	} else if (strcasecmp(p->type, "text") == 0) {
		put(o, " ", 1);
		put_num(o, p->body_lines);
	}
	if (extended) {
		put(o, " ", 1);
		put_string(o, p->md5);
		put(o, " ", 1);
		put_disposition(o, p);
		put(o, " ", 1);
		put_language(o, p->language);
		put(o, " ", 1);
		put_string(o, p->location);
	}
	put(o, ")", 1);
}

char *mail_imap_bodystructure(const struct mime_part *message, bool extended)
{
	struct out o = {0};
	body(&o, message, extended);
	return o.d;
}

static void sections(const struct mime_part *msg, const char *prefix, mail_imap_section_cb *cb,
		     void *ctx);

static void part_sections(const struct mime_part *part, const char *sec, mail_imap_section_cb *cb,
			  void *ctx)
{
	cb(ctx, sec, part, false);
	if (part->is_rfc822 && part->children != NULL) {
		sections(part->children, sec, cb, ctx);
	} else if (part->is_multipart) {
		unsigned i = 1;
		for (const struct mime_part *c = part->children; c != NULL; c = c->next, i++) {
			char *s = xasprintf("%s.%u", sec, i);
			part_sections(c, s, cb, ctx);
			free(s);
		}
	}
}

static void sections(const struct mime_part *msg, const char *prefix, mail_imap_section_cb *cb,
		     void *ctx)
{
	cb(ctx, prefix, msg, true);
	if (msg->is_multipart) {
		unsigned i = 1;
		for (const struct mime_part *c = msg->children; c != NULL; c = c->next, i++) {
			char *s =
			    *prefix == '\0' ? xasprintf("%u", i) : xasprintf("%s.%u", prefix, i);
			part_sections(c, s, cb, ctx);
			free(s);
		}
	} else {
		char *s = *prefix == '\0' ? xstrdup("1") : xasprintf("%s.1", prefix);
		cb(ctx, s, msg, false);
		free(s);
	}
}

void mail_imap_sections(const struct mime_part *root, mail_imap_section_cb *cb, void *ctx)
{
	sections(root, "", cb, ctx);
}
