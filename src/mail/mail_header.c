#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "mail/mail_decode.h"
#include "mail/mail_header.h"

struct sbuf {
	char *d;
	size_t len, cap;
};

static void sb_add(struct sbuf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->d = xrealloc(b->d, b->cap);
	}
	memcpy(b->d + b->len, p, n);
	b->len += n;
	b->d[b->len] = '\0';
}

static char *sb_take(struct sbuf *b)
{
	if (b->d == NULL)
		return xstrdup("");
	return b->d;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int mail_header_next(const char *block, size_t len, size_t *pos, char **name_r, char **value_r)
{
	size_t i = *pos;
	for (;;) {
		if (i >= len)
			break;
		/* the empty line ends the block */
		if (block[i] == '\n' || (block[i] == '\r' && i + 1 < len && block[i + 1] == '\n'))
			break;
		size_t line_end = i;
		while (line_end < len && block[line_end] != '\n')
			line_end++;
		const char *colon = memchr(block + i, ':', line_end - i);
		if (colon == NULL || block[i] == ' ' || block[i] == '\t') {
			i = line_end + 1;
			continue;
		}
		size_t name_end = (size_t)(colon - block);
		while (name_end > i && is_blank(block[name_end - 1]))
			name_end--;
		if (name_end == i) {
			i = line_end + 1;
			continue;
		}
		*name_r = xstrndup(block + i, name_end - i);
		struct sbuf v = {0};
		size_t j = (size_t)(colon - block) + 1;
		for (;;) {
			for (; j < line_end; j++)
				if (block[j] != '\0' && block[j] != '\r')
					sb_add(&v, block + j, 1);
			size_t next = line_end + 1;
			if (next < len && (block[next] == ' ' || block[next] == '\t')) {
				j = next;
				line_end = next;
				while (line_end < len && block[line_end] != '\n')
					line_end++;
				continue;
			}
			*pos = next > len ? len : next;
			break;
		}
		char *s = sb_take(&v);
		size_t start = 0, end = strlen(s);
		while (start < end && is_blank(s[start]))
			start++;
		while (end > start && is_blank(s[end - 1]))
			end--;
		memmove(s, s + start, end - start);
		s[end - start] = '\0';
		*value_r = s;
		return 1;
	}
	*pos = len;
	return 0;
}

char *mail_header_get(const char *block, size_t len, const char *name)
{
	size_t pos = 0;
	char *n, *v;
	while (mail_header_next(block, len, &pos, &n, &v) == 1) {
		bool match = strcasecmp(n, name) == 0;
		free(n);
		if (match)
			return v;
		free(v);
	}
	return NULL;
}

/* ---- structured values: tokens, quoted strings, comments ---- */

static void skip_cfws(const char **sp)
{
	const char *s = *sp;
	for (;;) {
		while (is_blank(*s))
			s++;
		if (*s != '(')
			break;
		int depth = 0;
		while (*s != '\0') {
			if (*s == '\\' && s[1] != '\0')
				s++;
			else if (*s == '(')
				depth++;
			else if (*s == ')' && --depth == 0) {
				s++;
				break;
			}
			s++;
		}
	}
	*sp = s;
}

static bool is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static char *parse_token(const char **sp)
{
	const char *s = *sp;
	const char *start = s;
	while (*s != '\0' && !is_blank(*s) && !is_tspecial(*s) && (unsigned char)*s >= 0x20)
		s++;
	*sp = s;
	return s == start ? NULL : xstrndup(start, (size_t)(s - start));
}

static char *parse_quoted(const char **sp)
{
	const char *s = *sp + 1;
	struct sbuf b = {0};
	while (*s != '\0' && *s != '"') {
		if (*s == '\\' && s[1] != '\0')
			s++;
		sb_add(&b, s, 1);
		s++;
	}
	if (*s == '"')
		s++;
	*sp = s;
	return sb_take(&b);
}

static void parse_params(const char *s, struct mime_param **params_r, size_t *count_r)
{
	struct mime_param *params = NULL;
	size_t count = 0;
	for (;;) {
		skip_cfws(&s);
		while (*s == ';' || is_blank(*s))
			s++;
		skip_cfws(&s);
		if (*s == '\0')
			break;
		char *name = parse_token(&s);
		if (name == NULL) {
			/* garbage: skip to the next ';' */
			while (*s != '\0' && *s != ';')
				s++;
			continue;
		}
		skip_cfws(&s);
		if (*s != '=') {
			free(name);
			while (*s != '\0' && *s != ';')
				s++;
			continue;
		}
		s++;
		skip_cfws(&s);
		char *value;
		if (*s == '"') {
			value = parse_quoted(&s);
		} else {
			/* tolerate values with tspecials other than ';' */
			const char *start = s;
			while (*s != '\0' && *s != ';' && !is_blank(*s))
				s++;
			value = xstrndup(start, (size_t)(s - start));
		}
		if (count < 64) {
			params = xrealloc(params, (count + 1) * sizeof(*params));
			params[count].name = name;
			params[count].value = value;
			count++;
		} else {
			free(name);
			free(value);
		}
	}
	*params_r = params;
	*count_r = count;
}

void mail_content_type_parse(const char *value, char **type_r, char **subtype_r,
			     struct mime_param **params_r, size_t *count_r)
{
	const char *s = value;
	*type_r = *subtype_r = NULL;
	skip_cfws(&s);
	char *type = parse_token(&s);
	skip_cfws(&s);
	char *subtype = NULL;
	if (type != NULL && *s == '/') {
		s++;
		skip_cfws(&s);
		subtype = parse_token(&s);
	}
	if (type == NULL || subtype == NULL) {
		free(type);
		free(subtype);
		type = subtype = NULL;
	}
	*type_r = type;
	*subtype_r = subtype;
	const char *semi = strchr(s, ';');
	parse_params(semi != NULL ? semi : "", params_r, count_r);
}

void mail_disposition_parse(const char *value, char **type_r, struct mime_param **params_r,
			    size_t *count_r)
{
	const char *s = value;
	skip_cfws(&s);
	*type_r = parse_token(&s);
	const char *semi = strchr(s, ';');
	parse_params(semi != NULL ? semi : "", params_r, count_r);
}

void mail_params_free(struct mime_param **params, size_t count)
{
	if (*params == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*params)[i].name);
		free((*params)[i].value);
	}
	free(*params);
	*params = NULL;
}

/* ---- charsets ---- */

bool mail_utf8_valid(const void *data, size_t len)
{
	const unsigned char *s = data;
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static void latin1_to_utf8(struct sbuf *b, const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] < 0x80) {
			sb_add(b, s + i, 1);
		} else {
			char two[2] = {(char)(0xc0 | (s[i] >> 6)), (char)(0x80 | (s[i] & 0x3f))};
			sb_add(b, two, 2);
		}
	}
}

static bool charset_is_utf8(const char *cs)
{
	return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
	       strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

static void convert_into(struct sbuf *b, const char *charset, const void *data, size_t len)
{
	const unsigned char *s = data;
	if (charset == NULL || *charset == '\0' || charset_is_utf8(charset)) {
		if (mail_utf8_valid(s, len))
			sb_add(b, s, len);
		else
			latin1_to_utf8(b, s, len);
		return;
	}
	iconv_t cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1) {
		convert_into(b, NULL, data, len);
		return;
	}
	char out[1024];
	char *in = (char *)s;
	size_t inleft = len;
	while (inleft > 0) {
		char *o = out;
		size_t oleft = sizeof(out);
		size_t r = iconv(cd, &in, &inleft, &o, &oleft);
		sb_add(b, out, (size_t)(o - out));
		if (r == (size_t)-1) {
			if (errno == E2BIG)
				continue;
			/* invalid or truncated sequence: U+FFFD, skip a byte */
			sb_add(b, "\xef\xbf\xbd", 3);
			in++;
			inleft--;
			iconv(cd, NULL, NULL, NULL, NULL);
		}
	}
	char *o = out;
	size_t oleft = sizeof(out);
	iconv(cd, NULL, NULL, &o, &oleft);
	sb_add(b, out, (size_t)(o - out));
	iconv_close(cd);
}

char *mail_charset_to_utf8(const char *charset, const void *data, size_t len, size_t *out_len_r)
{
	struct sbuf b = {0};
	convert_into(&b, charset, data, len);
	char *s = sb_take(&b);
	if (out_len_r != NULL)
		*out_len_r = b.d == NULL ? 0 : b.len;
	return s;
}

/* ---- RFC 2047 ---- */

/* "=?charset?e?text?=" at s: decoded into b; returns bytes consumed or 0. */
static size_t encoded_word(struct sbuf *b, const char *s)
{
	if (s[0] != '=' || s[1] != '?')
		return 0;
	const char *cs = s + 2;
	const char *q1 = strchr(cs, '?');
	if (q1 == NULL || q1 == cs || q1 - cs > 64)
		return 0;
	char enc = (char)toupper((unsigned char)q1[1]);
	if ((enc != 'B' && enc != 'Q') || q1[2] != '?')
		return 0;
	const char *text = q1 + 3;
	const char *endp = strstr(text, "?=");
	if (endp == NULL)
		return 0;
	for (const char *t = text; t < endp; t++)
		if (is_blank(*t))
			return 0;
	char *charset = xstrndup(cs, (size_t)(q1 - cs));
	char *star = strchr(charset, '*'); /* RFC 2231 language suffix */
	if (star != NULL)
		*star = '\0';
	size_t dlen;
	char *decoded = enc == 'B' ? mail_base64_decode(text, (size_t)(endp - text), &dlen)
				   : mail_qp_decode(text, (size_t)(endp - text), true, &dlen);
	convert_into(b, charset, decoded, dlen);
	free(decoded);
	free(charset);
	return (size_t)(endp + 2 - s);
}

char *mail_decode_words(const char *value)
{
	struct sbuf b = {0};
	const char *s = value;
	bool last_was_word = false;
	while (*s != '\0') {
		size_t n = encoded_word(&b, s);
		if (n > 0) {
			s += n;
			last_was_word = true;
			continue;
		}
		if (last_was_word && is_blank(*s)) {
			const char *t = s;
			while (is_blank(*t))
				t++;
			if (t[0] == '=' && t[1] == '?') {
				struct sbuf probe = {0};
				size_t m = encoded_word(&probe, t);
				free(probe.d);
				if (m > 0) {
					s = t;
					continue;
				}
			}
		}
		const char *start = s;
		while (*s != '\0' && !(s[0] == '=' && s[1] == '?')) {
			if (is_blank(*s) && s != start) {
				s++;
				break;
			}
			s++;
		}
		if (s == start)
			s++;
		convert_into(&b, NULL, start, (size_t)(s - start));
		last_was_word = false;
	}
	return sb_take(&b);
}

/* ---- RFC 2231 ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void pct_decode(struct sbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		int h, l;
		if (*s == '%' && (h = hexval(s[1])) >= 0 && (l = hexval(s[2])) >= 0) {
			char c = (char)(h * 16 + l);
			sb_add(b, &c, 1);
			s += 2;
		} else {
			sb_add(b, s, 1);
		}
	}
}

char *mail_param_decode(const struct mime_param *params, size_t count, const char *name)
{
	size_t nlen = strlen(name);
	const char *plain = NULL;
	const char *extended = NULL;
	for (size_t i = 0; i < count; i++) {
		const char *pn = params[i].name;
		if (strcasecmp(pn, name) == 0 && plain == NULL)
			plain = params[i].value;
		else if (strncasecmp(pn, name, nlen) == 0 && strcmp(pn + nlen, "*") == 0)
			extended = params[i].value;
	}
	if (extended != NULL) {
		const char *q1 = strchr(extended, '\'');
		const char *q2 = q1 != NULL ? strchr(q1 + 1, '\'') : NULL;
		char *charset =
		    q1 != NULL && q2 != NULL ? xstrndup(extended, (size_t)(q1 - extended)) : NULL;
		struct sbuf raw = {0};
		pct_decode(&raw, q2 != NULL ? q2 + 1 : extended);
		char *r = mail_charset_to_utf8(charset, raw.d == NULL ? "" : raw.d, raw.len, NULL);
		free(raw.d);
		free(charset);
		return r;
	}
	/* continuations name*0, name*1*, ... in numeric order */
	struct sbuf raw = {0};
	char *charset = NULL;
	bool found = false;
	for (unsigned k = 0; k < 100; k++) {
		const struct mime_param *sec = NULL;
		bool enc = false;
		for (size_t i = 0; i < count && sec == NULL; i++) {
			const char *pn = params[i].name;
			if (strncasecmp(pn, name, nlen) != 0 || pn[nlen] != '*')
				continue;
			char *endp;
			unsigned long n = strtoul(pn + nlen + 1, &endp, 10);
			if (endp == pn + nlen + 1 || n != k)
				continue;
			if (strcmp(endp, "") == 0 || strcmp(endp, "*") == 0) {
				sec = &params[i];
				enc = *endp == '*';
			}
		}
		if (sec == NULL)
			break;
		found = true;
		const char *v = sec->value;
		if (enc && k == 0) {
			const char *q1 = strchr(v, '\'');
			const char *q2 = q1 != NULL ? strchr(q1 + 1, '\'') : NULL;
			if (q1 != NULL && q2 != NULL) {
				charset = xstrndup(v, (size_t)(q1 - v));
				v = q2 + 1;
			}
		}
		if (enc)
			pct_decode(&raw, v);
		else
			sb_add(&raw, v, strlen(v));
	}
	if (found) {
		char *r = mail_charset_to_utf8(charset, raw.d == NULL ? "" : raw.d, raw.len, NULL);
		free(raw.d);
		free(charset);
		return r;
	}
	if (plain != NULL)
		return mail_decode_words(plain);
	return NULL;
}
