#include "http/http_request.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

void http_parser_reset(struct http_parser *p)
{
	struct http_request *r = &p->req;
	free(r->target);
	free(r->path);
	free(r->query);
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	memset(p, 0, sizeof(*p));
	p->state = HTTP_PARSE_REQUEST_LINE;
}

static int http_fail(struct http_parser *p, int status, const char *text)
{
	p->error_status = status;
	p->error_text = text;
	return -1;
}

/* RFC 9110 5.6.2 token characters */
static bool http_tchar(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int http_parse_target(struct http_parser *p, const char *target)
{
	struct http_request *r = &p->req;
	const char *t = target;
	/* absolute-form (RFC 9112 3.2.2): the path starts after the authority */
	if (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0) {
		t = strstr(t, "://") + 3;
		t += strcspn(t, "/?");
		if (*t == '\0')
			t = "/";
	}
	if (t[0] != '/')
		return http_fail(p, 400, "the request target must be a path");
	for (const unsigned char *c = (const unsigned char *)target; *c != '\0'; c++)
		if (*c <= 0x20 || *c >= 0x7f)
			return http_fail(p, 400, "bad character in the request target");
	const char *q = strchr(t, '?');
	size_t plen = q != NULL ? (size_t)(q - t) : strlen(t);
	const char *hash = memchr(t, '#', plen);
	if (hash != NULL)
		plen = (size_t)(hash - t);
	r->path = http_decode(t, plen, false);
	if (r->path == NULL)
		return http_fail(p, 400, "bad percent-encoding in the path");
	if (q != NULL) {
		size_t qlen = strcspn(q + 1, "#");
		r->query = xstrndup(q + 1, qlen);
	} else {
		r->query = xstrdup("");
	}
	r->target = xstrdup(target);
	return 0;
}

static int http_parse_request_line(struct http_parser *p, const char *line)
{
	struct http_request *r = &p->req;
	const char *sp1 = strchr(line, ' ');
	const char *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL || strchr(sp2 + 1, ' ') != NULL || sp2 == sp1 + 1)
		return http_fail(p, 400, "malformed request line");
	size_t mlen = (size_t)(sp1 - line);
	if (mlen == 0 || mlen > HTTP_MAX_METHOD)
		return http_fail(p, 501, "unknown method");
	for (size_t i = 0; i < mlen; i++)
		if (!http_tchar((unsigned char)line[i]))
			return http_fail(p, 400, "malformed method");
	memcpy(r->method_text, line, mlen);
	r->method_text[mlen] = '\0';
	r->method = strcmp(r->method_text, "GET") == 0	  ? HTTP_GET
		    : strcmp(r->method_text, "HEAD") == 0 ? HTTP_HEAD
		    : strcmp(r->method_text, "POST") == 0 ? HTTP_POST
							  : HTTP_OTHER;
	const char *version = sp2 + 1;
	if (strncmp(version, "HTTP/", 5) != 0 || !isdigit((unsigned char)version[5]) ||
	    version[6] != '.' || !isdigit((unsigned char)version[7]) || version[8] != '\0')
		return http_fail(p, 400, "malformed HTTP version");
	if (version[5] != '1')
		return http_fail(p, 505, "only HTTP/1.0 and HTTP/1.1 are served");
	r->version_minor = (unsigned)(version[7] - '0');
	r->keep_alive = r->version_minor >= 1;
	char *target = xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	int ret = http_parse_target(p, target);
	free(target);
	return ret;
}

/* The head is complete: check what depends on all the headers. */
static int http_head_done(struct http_parser *p)
{
	struct http_request *r = &p->req;
	const char *host = NULL, *length = NULL;
	size_t hosts = 0;
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];
		if (strcasecmp(h->name, "Host") == 0) {
			host = h->value;
			hosts++;
		} else if (strcasecmp(h->name, "Transfer-Encoding") == 0) {
			return http_fail(p, 501,
					 "Transfer-Encoding is not supported; send "
					 "Content-Length");
		} else if (strcasecmp(h->name, "Content-Length") == 0) {
			/* several equal values are allowed (RFC 9112 6.3), others not */
			if (length != NULL && strcmp(length, h->value) != 0)
				return http_fail(p, 400, "conflicting Content-Length");
			length = h->value;
		} else if (strcasecmp(h->name, "Connection") == 0) {
			/* a list of options: close, keep-alive */
			const char *v = h->value;
			while (*v != '\0') {
				size_t n = strcspn(v, ",");
				while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
					n--;
				if (n == 5 && strncasecmp(v, "close", 5) == 0)
					r->keep_alive = false;
				else if (n == 10 && strncasecmp(v, "keep-alive", 10) == 0 &&
					 r->version_minor == 0)
					r->keep_alive = true;
				v += strcspn(v, ",");
				while (*v == ',' || *v == ' ' || *v == '\t')
					v++;
			}
		}
	}
	/* RFC 9112 3.2: exactly one Host in HTTP/1.1 */
	if (hosts > 1 || (r->version_minor >= 1 && hosts == 0))
		return http_fail(p, 400, "a request needs exactly one Host header");
	if (host != NULL) {
		for (const unsigned char *c = (const unsigned char *)host; *c != '\0'; c++)
			if (!isalnum(*c) && strchr(".-:[]_", *c) == NULL)
				return http_fail(p, 400, "malformed Host header");
	}
	if (length != NULL) {
		size_t n = strlen(length);
		if (n == 0 || n > 19 || strspn(length, "0123456789") != n)
			return http_fail(p, 400, "malformed Content-Length");
		r->content_length = strtoull(length, NULL, 10);
		if (r->content_length > HTTP_MAX_BODY)
			return http_fail(p, 413, "the request body is too large");
	}
	p->state = HTTP_PARSE_DONE;
	return 1;
}

static int http_parse_header(struct http_parser *p, const char *line, size_t len)
{
	struct http_request *r = &p->req;
	if (line[0] == ' ' || line[0] == '\t')
		return http_fail(p, 400, "obsolete header line folding");
	const char *colon = memchr(line, ':', len);
	if (colon == NULL || colon == line)
		return http_fail(p, 400, "malformed header line");
	for (const char *c = line; c < colon; c++)
		if (!http_tchar((unsigned char)*c))
			return http_fail(p, 400, "malformed header name");
	if (r->nheaders == HTTP_MAX_HEADERS)
		return http_fail(p, 431, "too many header fields");
	r->header_bytes += len + 2;
	if (r->header_bytes > HTTP_MAX_HEADER_BYTES)
		return http_fail(p, 431, "the header section is too large");
	const char *v = colon + 1;
	const char *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (const char *c = v; c < end; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
			return http_fail(p, 400, "control character in a header value");
	struct http_header *h = &r->headers[r->nheaders++];
	h->name = xstrndup(line, (size_t)(colon - line));
	h->value = xstrndup(v, (size_t)(end - v));
	return 0;
}

int http_parser_line(struct http_parser *p, const char *line, size_t len)
{
	if (memchr(line, '\0', len) != NULL)
		return http_fail(p, 400, "NUL byte in the request");
	switch (p->state) {
	case HTTP_PARSE_REQUEST_LINE:
		if (len == 0)
			return 0;
		if (http_parse_request_line(p, line) < 0)
			return -1;
		p->state = HTTP_PARSE_HEADERS;
		return 0;
	case HTTP_PARSE_HEADERS:
		if (len == 0)
			return http_head_done(p);
		return http_parse_header(p, line, len) < 0 ? -1 : 0;
	case HTTP_PARSE_DONE:
		break;
	}
	return http_fail(p, 400, "unexpected input");
}

int http_parser_line_too_long_status(const struct http_parser *p)
{
	return p->state == HTTP_PARSE_REQUEST_LINE ? 414 : 431;
}

const char *http_request_header(const struct http_request *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

static int http_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *http_decode(const char *in, size_t len, bool form)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '%') {
			if (i + 2 >= len) {
				free(out);
				return NULL;
			}
			int h = http_hex(in[i + 1]), l = http_hex(in[i + 2]);
			if (h < 0 || l < 0) {
				free(out);
				return NULL;
			}
			c = (unsigned char)(h * 16 + l);
			i += 2;
		} else if (c == '+' && form) {
			c = ' ';
		}
		/* a decoded value never holds NUL or other control characters,
		 * except the line breaks of a textarea */
		if ((c < 0x20 && c != '\t' && !(form && (c == '\r' || c == '\n'))) || c == 0x7f) {
			free(out);
			return NULL;
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

char *http_form_get(const char *form, size_t form_len, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = form, *end = form + form_len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *item_end = amp != NULL ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(item_end - p));
		const char *key_end = eq != NULL ? eq : item_end;
		char *key = http_decode(p, (size_t)(key_end - p), true);
		bool match = key != NULL && strlen(key) == nlen && memcmp(key, name, nlen) == 0;
		free(key);
		if (match) {
			if (eq == NULL)
				return xstrdup("");
			return http_decode(eq + 1, (size_t)(item_end - eq - 1), true);
		}
		p = item_end + 1;
	}
	return NULL;
}

char *http_cookie_get(const struct http_request *r, const char *name)
{
	size_t nlen = strlen(name);
	for (size_t i = 0; i < r->nheaders; i++) {
		if (strcasecmp(r->headers[i].name, "Cookie") != 0)
			continue;
		const char *p = r->headers[i].value;
		while (*p != '\0') {
			while (*p == ' ' || *p == ';')
				p++;
			size_t n = strcspn(p, ";");
			const char *eq = memchr(p, '=', n);
			if (eq != NULL && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0)
				return xstrndup(eq + 1, n - nlen - 1);
			p += n;
		}
	}
	return NULL;
}
