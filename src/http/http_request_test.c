#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_request.h"

/* Feed a request given as text with "\n"-separated lines; returns the
 * parser's last answer. */
static int feed(struct http_parser *p, const char *text)
{
	http_parser_reset(p);
	int r = 0;
	const char *line = text;
	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
		char *copy = strndup(line, len);
		r = http_parser_line(p, copy, len);
		free(copy);
		if (r != 0)
			return r;
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	return r;
}

static void test_simple_get(void **state)
{
	(void)state;
	struct http_parser p = {0};
	assert_int_equal(feed(&p, "\nGET /a%20b?x=1&y=%41 HTTP/1.1\nHost: example.test\n"
				  "Cookie: a=1; postern_session=abc; b=2\n\n"),
			 1);
	assert_int_equal(p.req.method, HTTP_GET);
	assert_string_equal(p.req.path, "/a b");
	assert_string_equal(p.req.query, "x=1&y=%41");
	assert_true(p.req.keep_alive);
	assert_string_equal(http_request_header(&p.req, "host"), "example.test");
	char *v = http_form_get(p.req.query, strlen(p.req.query), "y");
	assert_string_equal(v, "A");
	free(v);
	assert_null(http_form_get(p.req.query, strlen(p.req.query), "z"));
	v = http_cookie_get(&p.req, "postern_session");
	assert_string_equal(v, "abc");
	free(v);
	assert_null(http_cookie_get(&p.req, "postern"));
	http_parser_reset(&p);
}

static void test_post_and_connection(void **state)
{
	(void)state;
	struct http_parser p = {0};
	assert_int_equal(feed(&p, "POST http://h/login HTTP/1.0\nContent-Length: 12\n"
				  "Connection: keep-alive\n\n"),
			 1);
	assert_int_equal(p.req.method, HTTP_POST);
	assert_string_equal(p.req.path, "/login");
	assert_int_equal(p.req.content_length, 12);
	assert_true(p.req.keep_alive);
	assert_int_equal(feed(&p, "GET / HTTP/1.1\nHost: h\nConnection: Close\n\n"), 1);
	assert_false(p.req.keep_alive);
	http_parser_reset(&p);
}

static void test_refusals(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int status;
	} cases[] = {
	    {"GET / HTTP/1.1\n\n", 400},			/* no Host */
	    {"GET / HTTP/1.1\nHost: a\nHost: b\n\n", 400},	/* two */
	    {"GET / HTTP/2.0\n", 505},
	    {"GET /  HTTP/1.1\n", 400},
	    {"GET relative HTTP/1.1\n", 400},
	    {"GET /%zz HTTP/1.1\n", 400},
	    {"GET /%00 HTTP/1.1\n", 400},
	    {"VERYLONGMETHODNAMEXX / HTTP/1.1\n", 501},
	    {"GET / HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n", 501},
	    {"POST / HTTP/1.1\nHost: h\nContent-Length: 99999999\n\n", 413},
	    {"POST / HTTP/1.1\nHost: h\nContent-Length: 1\nContent-Length: 2\n\n", 400},
	    {"POST / HTTP/1.1\nHost: h\nContent-Length: -1\n\n", 400},
	    {"GET / HTTP/1.1\nHost: h\n folded\n", 400},
	    {"GET / HTTP/1.1\nHost: h\nBad Name: x\n", 400},
	    {"GET / HTTP/1.1\nHost: h/evil\n\n", 400},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_parser p = {0};
		int r = feed(&p, cases[i].text);
		if (r != -1 || p.error_status != cases[i].status)
			fail_msg("case %zu: %d / %d, expected %d", i, r, p.error_status,
				 cases[i].status);
		http_parser_reset(&p);
	}
}

static void test_header_bounds(void **state)
{
	(void)state;
	struct http_parser p = {0};
	http_parser_reset(&p);
	assert_int_equal(http_parser_line(&p, "GET / HTTP/1.1", 14), 0);
	assert_int_equal(http_parser_line_too_long_status(&p), 431);
	int r = 0;
	for (int i = 0; i < HTTP_MAX_HEADERS + 1 && r == 0; i++)
		r = http_parser_line(&p, "X-A: b", 6);
	assert_int_equal(r, -1);
	assert_int_equal(p.error_status, 431);
	http_parser_reset(&p);
	assert_int_equal(http_parser_line_too_long_status(&p), 414);
	/* a NUL byte inside a line */
	assert_int_equal(http_parser_line(&p, "GET /\0 HTTP/1.1", 15), -1);
	http_parser_reset(&p);
}

static void test_decode(void **state)
{
	(void)state;
	char *s = http_decode("a+b%2Bc%0D%0A", 13, true);
	assert_string_equal(s, "a b+c\r\n");
	free(s);
	s = http_decode("a+b", 3, false);
	assert_string_equal(s, "a+b");
	free(s);
	assert_null(http_decode("%4", 2, true));
	assert_null(http_decode("%01", 3, true));
	assert_null(http_decode("%0A", 3, false));
	/* a form field given twice: the first wins; a field without '=' is "" */
	s = http_form_get("a=1&a=2&b", 9, "a");
	assert_string_equal(s, "1");
	free(s);
	s = http_form_get("a=1&a=2&b", 9, "b");
	assert_string_equal(s, "");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_get),   cmocka_unit_test(test_post_and_connection),
		cmocka_unit_test(test_refusals),     cmocka_unit_test(test_header_bounds),
		cmocka_unit_test(test_decode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
