#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "net/cidr.h"

static struct sockaddr_storage ss_of(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
		sin6->sin6_family = AF_INET6;
	}
	return ss;
}

static bool match(const char *net, const char *ip)
{
	struct net_cidr cidr;
	const char *error;
	assert_int_equal(net_cidr_parse(net, &cidr, &error), 0);
	struct sockaddr_storage ss = ss_of(ip);
	return net_cidr_match_one(&cidr, (struct sockaddr *)&ss);
}

static void expect_format(const char *net, const char *expect)
{
	struct net_cidr cidr;
	const char *error;
	char buf[80];
	assert_int_equal(net_cidr_parse(net, &cidr, &error), 0);
	assert_string_equal(net_cidr_format(&cidr, buf, sizeof(buf)), expect);
}

static void test_parse(void **state)
{
	expect_format("10.0.0.0/8", "10.0.0.0/8");
	expect_format("192.0.2.7", "192.0.2.7/32");
	expect_format("10.1.2.3/8", "10.0.0.0/8");
	expect_format("0.0.0.0/0", "0.0.0.0/0");
	expect_format("2001:db8::/32", "2001:db8::/32");
	expect_format("[2001:db8:1:2::5]/57", "2001:db8:1::/57");
	expect_format("::1", "::1/128");
	expect_format("[::1]", "::1/128");
	expect_format("::/0", "::/0");
	/* IPv4-mapped networks become IPv4 networks */
	expect_format("::ffff:10.0.0.0/104", "10.0.0.0/8");
	expect_format("::ffff:192.0.2.1", "192.0.2.1/32");

	const char *bad[] = {
	    "",	      "/8",	      "10.0.0.0/",   "10.0.0.0/33", "10.0.0.0/8x",  "10.0.0/8",
	    "::/129", "host.example", "10.0.0.0/-1", "[10.0.0.1]x", "10.0.0.0/0008"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct net_cidr cidr;
		const char *error = NULL;
		assert_int_equal(net_cidr_parse(bad[i], &cidr, &error), -1);
		assert_non_null(error);
	}
}

static void test_match(void **state)
{
	assert_true(match("10.0.0.0/8", "10.255.1.2"));
	assert_false(match("10.0.0.0/8", "11.0.0.1"));
	assert_true(match("192.0.2.7", "192.0.2.7"));
	assert_false(match("192.0.2.7", "192.0.2.8"));
	assert_true(match("192.0.2.0/25", "192.0.2.127"));
	assert_false(match("192.0.2.0/25", "192.0.2.128"));
	assert_true(match("0.0.0.0/0", "203.0.113.9"));
	assert_false(match("0.0.0.0/0", "2001:db8::1"));
	/* IPv6, prefixes not on a byte boundary */
	assert_true(match("2001:db8:1::/57", "2001:db8:1:7f::1"));
	assert_false(match("2001:db8:1::/57", "2001:db8:1:80::1"));
	assert_true(match("2001:db8::/127", "2001:db8::1"));
	assert_false(match("2001:db8::/127", "2001:db8::2"));
	assert_true(match("::/0", "2001:db8::2"));
	assert_false(match("::/0", "10.0.0.1"));
	/* a dual-stack socket's IPv4-mapped peer matches IPv4 networks */
	assert_true(match("10.0.0.0/8", "::ffff:10.1.2.3"));
	assert_false(match("10.0.0.0/8", "::ffff:11.1.2.3"));
	assert_true(match("::ffff:10.0.0.0/104", "10.9.9.9"));
	assert_false(match("::/0", "::ffff:10.1.2.3"));
}

static void test_list(void **state)
{
	struct net_cidr *list;
	size_t count;
	char *error = NULL;
	assert_int_equal(net_cidr_parse_list("", &list, &count, &error), 0);
	assert_int_equal(count, 0);
	assert_null(list);
	assert_int_equal(net_cidr_parse_list("127.0.0.0/8, ::1 10.0.0.0/8,,192.168.0.0/16", &list,
					     &count, &error),
			 0);
	assert_int_equal(count, 4);
	struct sockaddr_storage ss = ss_of("192.168.4.4");
	assert_true(net_cidr_match(list, count, (struct sockaddr *)&ss));
	ss = ss_of("::1");
	assert_true(net_cidr_match(list, count, (struct sockaddr *)&ss));
	ss = ss_of("::2");
	assert_false(net_cidr_match(list, count, (struct sockaddr *)&ss));

	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_false(net_cidr_match(list, count, (struct sockaddr *)&sun));
	free(list);

	assert_int_equal(net_cidr_parse_list("10.0.0.0/8, 300.1.1.1", &list, &count, &error), -1);
	assert_non_null(strstr(error, "300.1.1.1"));
	free(error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
