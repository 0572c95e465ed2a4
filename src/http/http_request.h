#ifndef POSTERN_HTTP_REQUEST_H
#define POSTERN_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

/* HTTP/1.1 requests (RFC 9112), strict and bounded, without I/O: the parser
 * is fed one line at a time (the connection splits lines and bounds their
 * length) and says when the head of a request is complete; the body, of
 * Content-Length bytes, is read by the caller. No Transfer-Encoding: a
 * request that uses one is refused (501), so a body's length is never
 * ambiguous. */

#define HTTP_MAX_LINE	      8192	  /* request line, and each header line */
#define HTTP_MAX_HEADERS      100	  /* header fields in one request */
#define HTTP_MAX_HEADER_BYTES (32 * 1024) /* all header lines together */
#define HTTP_MAX_BODY	      (64 * 1024) /* Content-Length */
#define HTTP_MAX_METHOD	      16

enum http_method { HTTP_GET = 1, HTTP_HEAD = 2, HTTP_POST = 4, HTTP_OTHER = 8 };

struct http_header {
	char *name; /* as sent; compare ignoring case */
	char *value;
};

struct http_request {
	enum http_method method;
	char method_text[HTTP_MAX_METHOD + 1];
	char *target;		/* as sent */
	char *path;		/* percent-decoded path of the target, without the query */
	char *query;		/* the query after '?', not decoded ("" when none) */
	unsigned version_minor; /* HTTP/1.x */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t nheaders;
	size_t header_bytes;
	unsigned long long content_length;
	bool keep_alive;
};

enum http_parser_state { HTTP_PARSE_REQUEST_LINE, HTTP_PARSE_HEADERS, HTTP_PARSE_DONE };

struct http_parser {
	enum http_parser_state state;
	struct http_request req;
	int error_status; /* after -1: the status to answer with */
	const char *error_text;
};

/* Ready for a new request; frees what the last one held. */
void http_parser_reset(struct http_parser *p);
/* Feed one line without its CRLF (line[len] is NUL; the line may hold NUL
 * bytes before, which are refused). Returns 1 when the head is complete
 * (p->req is filled; content_length body bytes follow), 0 when more lines
 * are needed, -1 on a malformed or refused request with error_status
 * (400, 404, 413, 414, 431, 501, 505) and error_text (static). Empty lines
 * before the request line are skipped (RFC 9112 2.2). */
int http_parser_line(struct http_parser *p, const char *line, size_t len);
/* The status for a line longer than HTTP_MAX_LINE in the current state:
 * 414 for the request line, 431 for a header line. */
int http_parser_line_too_long_status(const struct http_parser *p);

/* The value of the first header named name (ignoring case), or NULL. */
const char *http_request_header(const struct http_request *r, const char *name);

/* Percent-decode len bytes of in ('+' as a blank when form is true).
 * Returns a malloc'ed NUL-terminated string, or NULL for a bad escape, an
 * encoded NUL or a control character. */
char *http_decode(const char *in, size_t len, bool form);
/* The decoded value of name in an application/x-www-form-urlencoded text
 * (a query or a form body), malloc'ed; NULL when absent or badly encoded.
 * The first occurrence wins. */
char *http_form_get(const char *form, size_t form_len, const char *name);
/* The value of cookie name in the request's Cookie headers, malloc'ed, or
 * NULL. */
char *http_cookie_get(const struct http_request *r, const char *name);

#endif
