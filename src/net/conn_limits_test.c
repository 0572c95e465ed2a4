#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "net/conn_limits.h"

static struct sockaddr_storage ss_of(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
	} else {
		assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_total(void **state)
{
	struct conn_limits *l = conn_limits_new();
	assert_int_equal(conn_limits_try_add_total(l, 2), 1);
	assert_int_equal(conn_limits_try_add_total(l, 2), 1);
	assert_int_equal(conn_limits_try_add_total(l, 2), 0);
	assert_int_equal(conn_limits_total(l), 2);
	conn_limits_remove_total(l);
	assert_int_equal(conn_limits_try_add_total(l, 2), 1);
	/* 0 is unlimited but still counted */
	assert_int_equal(conn_limits_try_add_total(l, 0), 1);
	assert_int_equal(conn_limits_total(l), 3);
	conn_limits_free(&l);
	assert_null(l);
	conn_limits_free(&l);
}

static void test_ip(void **state)
{
	struct conn_limits *l = conn_limits_new();
	struct sockaddr_storage a1 = ss_of("192.0.2.1", 1000);
	struct sockaddr_storage a1b = ss_of("192.0.2.1", 2000);
	struct sockaddr_storage a2 = ss_of("192.0.2.2", 1000);
	struct sockaddr_storage a1m = ss_of("::ffff:192.0.2.1", 3000);

	assert_int_equal(conn_limits_try_add_ip(l, SA(a1), 2), 1);
	assert_int_equal(conn_limits_try_add_ip(l, SA(a1b), 2), 1);
	/* the port does not matter, nor IPv4-mapped IPv6 */
	assert_int_equal(conn_limits_try_add_ip(l, SA(a1m), 2), 0);
	assert_int_equal(conn_limits_try_add_ip(l, SA(a2), 2), 1);
	assert_int_equal(conn_limits_ip_count(l, SA(a1m)), 2);
	assert_int_equal(conn_limits_entries(l), 2);

	/* IPv6 counted by /64 */
	struct sockaddr_storage b1 = ss_of("2001:db8:1:2::1", 1);
	struct sockaddr_storage b2 = ss_of("2001:db8:1:2:ffff::9", 1);
	struct sockaddr_storage b3 = ss_of("2001:db8:1:3::1", 1);
	assert_int_equal(conn_limits_try_add_ip(l, SA(b1), 2), 1);
	assert_int_equal(conn_limits_try_add_ip(l, SA(b2), 2), 1);
	assert_int_equal(conn_limits_try_add_ip(l, SA(b1), 2), 0);
	assert_int_equal(conn_limits_try_add_ip(l, SA(b3), 2), 1);
	assert_int_equal(conn_limits_ip_count(l, SA(b2)), 2);

	conn_limits_remove_ip(l, SA(b1));
	assert_int_equal(conn_limits_try_add_ip(l, SA(b2), 2), 1);

	/* unix-socket peers share one key */
	struct sockaddr_un u;
	memset(&u, 0, sizeof(u));
	u.sun_family = AF_UNIX;
	assert_int_equal(conn_limits_try_add_ip(l, (struct sockaddr *)&u, 1), 1);
	assert_int_equal(conn_limits_try_add_ip(l, (struct sockaddr *)&u, 1), 0);
	conn_limits_remove_ip(l, (struct sockaddr *)&u);

	/* entries vanish at zero; removing an unknown key is harmless */
	conn_limits_remove_ip(l, SA(a1));
	conn_limits_remove_ip(l, SA(a1b));
	conn_limits_remove_ip(l, SA(a1));
	assert_int_equal(conn_limits_ip_count(l, SA(a1)), 0);
	conn_limits_remove_ip(l, SA(a2));
	conn_limits_remove_ip(l, SA(b1));
	conn_limits_remove_ip(l, SA(b2));
	conn_limits_remove_ip(l, SA(b3));
	assert_int_equal(conn_limits_entries(l), 0);
	conn_limits_free(&l);
}

static void test_user(void **state)
{
	struct conn_limits *l = conn_limits_new();
	assert_int_equal(conn_limits_try_add_user(l, "alice", 2), 1);
	assert_int_equal(conn_limits_try_add_user(l, "alice", 2), 1);
	assert_int_equal(conn_limits_try_add_user(l, "alice", 2), 0);
	assert_int_equal(conn_limits_try_add_user(l, "bob", 2), 1);
	assert_int_equal(conn_limits_try_add_user(l, "Alice", 2), 1);
	assert_int_equal(conn_limits_user_count(l, "alice"), 2);
	assert_int_equal(conn_limits_try_add_user(l, "carol", 0), 1);
	conn_limits_remove_user(l, "alice");
	assert_int_equal(conn_limits_try_add_user(l, "alice", 2), 1);
	assert_int_equal(conn_limits_entries(l), 4);
	conn_limits_free(&l);
}

static void test_bounded_memory(void **state)
{
	struct conn_limits *l = conn_limits_new();
	char name[32];
	for (unsigned i = 0; i < 20000; i++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(0x0a000000 + i);
		assert_int_equal(conn_limits_try_add_ip(l, SA(ss), 1), 1);
		snprintf(name, sizeof(name), "user%u", i);
		assert_int_equal(conn_limits_try_add_user(l, name, 1), 1);
	}
	assert_int_equal(conn_limits_entries(l), 40000);
	for (unsigned i = 0; i < 20000; i++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(0x0a000000 + i);
		assert_int_equal(conn_limits_ip_count(l, SA(ss)), 1);
		conn_limits_remove_ip(l, SA(ss));
		snprintf(name, sizeof(name), "user%u", i);
		conn_limits_remove_user(l, name);
	}
	assert_int_equal(conn_limits_entries(l), 0);
	conn_limits_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_total),
	    cmocka_unit_test(test_ip),
	    cmocka_unit_test(test_user),
	    cmocka_unit_test(test_bounded_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
