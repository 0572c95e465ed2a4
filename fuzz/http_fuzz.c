/* libFuzzer target for the HTTP request parser (src/http/http_request.c).
 *
 * Input: lines separated by '\n' (the connection splits them the same way,
 * bounded by HTTP_MAX_LINE), fed one by one as the http service feeds them,
 * several requests in a row. Every answer must be one the service knows how
 * to send, a complete head must respect the bounds, and the helpers that
 * read a request (headers, cookies, form fields) must cope with whatever
 * it holds. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static void inspect(const struct http_request *r)
{
	check(r->content_length <= HTTP_MAX_BODY);
	check(r->nheaders <= HTTP_MAX_HEADERS);
	check(r->path != NULL && r->path[0] == '/' && r->query != NULL);
	(void)http_request_header(r, "Host");
	char *v = http_cookie_get(r, "postern_session");
	free(v);
	v = http_form_get(r->query, strlen(r->query), "emailaddress");
	if (v != NULL)
		check(strchr(v, '\0') == v + strlen(v));
	free(v);
	v = http_decode(r->target, strlen(r->target), true);
	free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_parser p = {0};
	http_parser_reset(&p);
	size_t pos = 0;
	while (pos < size) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t len = nl != NULL ? (size_t)(nl - (data + pos)) : size - pos;
		if (len > 0 && data[pos + len - 1] == '\r')
			len--;
		if (len <= HTTP_MAX_LINE) {
			char *line = malloc(len + 1);
			memcpy(line, data + pos, len);
			line[len] = '\0';
			int r = http_parser_line(&p, line, len);
			free(line);
			if (r < 0) {
				int s = p.error_status;
				check(s == 400 || s == 413 || s == 431 || s == 501 || s == 505);
				check(p.error_text != NULL);
				http_parser_reset(&p);
			} else if (r > 0) {
				inspect(&p.req);
				http_parser_reset(&p);
			}
		} else {
			int s = http_parser_line_too_long_status(&p);
			check(s == 414 || s == 431);
			http_parser_reset(&p);
		}
		pos += (nl != NULL ? (size_t)(nl - (data + pos)) + 1 : size - pos);
	}
	http_parser_reset(&p);
	return 0;
}
