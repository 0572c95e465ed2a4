#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "lib/net_addr.h"

static void assert_roundtrip(const char *text)
{
	struct net_addr a;
	const char *error = NULL;
	assert_int_equal(net_addr_parse(text, &a, &error), 0);
	char buf[160];
	assert_string_equal(net_addr_format(&a, buf, sizeof(buf)), text);
}

static void assert_refused(const char *text)
{
	struct net_addr a;
	const char *error = NULL;
	assert_int_equal(net_addr_parse(text, &a, &error), -1);
	assert_non_null(error);
}

static void test_good_addresses(void **state)
{
	(void)state;
	assert_roundtrip("127.0.0.1:143");
	assert_roundtrip("0.0.0.0:993");
	assert_roundtrip("[::]:993");
	assert_roundtrip("[::1]:65535");
	assert_roundtrip("[2001:db8::7]:1");
	assert_roundtrip("unix:/run/postern/lmtp.sock");
}

static void test_bad_addresses(void **state)
{
	(void)state;
	assert_refused("");
	assert_refused("127.0.0.1");
	assert_refused("127.0.0.1:");
	assert_refused("127.0.0.1:0");
	assert_refused("127.0.0.1:65536");
	assert_refused("127.0.0.1:12a");
	assert_refused("127.0.0.1:123456");
	assert_refused("::1:143");
	assert_refused("[::1:143");
	assert_refused("[::1]143");
	assert_refused("[]:143");
	assert_refused("[1.2.3.4]:143");
	assert_refused("300.1.1.1:143");
	assert_refused("mail.example.org:143");
	assert_refused("unix:relative.sock");
	char longpath[200] = "unix:/";
	memset(longpath + 6, 'a', 150);
	longpath[156] = '\0';
	assert_refused(longpath);
}

static void test_lists(void **state)
{
	(void)state;
	struct net_addr *addrs;
	size_t n;
	char *error = NULL;
	assert_int_equal(net_addr_parse_list("[::]:993, 0.0.0.0:993", &addrs, &n, &error), 0);
	assert_int_equal(n, 2);
	free(addrs);
	assert_int_equal(net_addr_parse_list("", &addrs, &n, &error), 0);
	assert_int_equal(n, 0);
	assert_null(addrs);
	assert_int_equal(net_addr_parse_list("1.2.3.4:5,bogus", &addrs, &n, &error), -1);
	assert_non_null(strstr(error, "bogus"));
	free(error);
}

static void test_equal(void **state)
{
	(void)state;
	struct net_addr a, b, c;
	const char *error;
	net_addr_parse("127.0.0.1:143", &a, &error);
	net_addr_parse("127.0.0.1:143", &b, &error);
	net_addr_parse("127.0.0.1:144", &c, &error);
	assert_true(net_addr_equal(&a, &b));
	assert_false(net_addr_equal(&a, &c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_addresses),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_equal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
