#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "authd/authd_tarpit.h"

static void test_key_ipv4_and_mapped(void **state)
{
	(void)state;
	char key[64];
	authd_tarpit_key("192.0.2.7:4242", key, sizeof(key));
	assert_string_equal(key, "192.0.2.7");
	authd_tarpit_key("[::ffff:192.0.2.7]:4242", key, sizeof(key));
	assert_string_equal(key, "192.0.2.7");
}

static void test_key_ipv6_by_64(void **state)
{
	(void)state;
	char a[64], b[64], c[64];
	authd_tarpit_key("[2001:db8:1:2:aaaa::1]:1", a, sizeof(a));
	authd_tarpit_key("[2001:db8:1:2:bbbb::9]:2", b, sizeof(b));
	authd_tarpit_key("[2001:db8:1:3::1]:3", c, sizeof(c));
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_equal(a, "2001:db8:1:2::/64");
}

static void test_counting_and_window(void **state)
{
	(void)state;
	long long t = 1000000;
	assert_int_equal(authd_tarpit_count("198.51.100.1", t), 0);
	assert_int_equal(authd_tarpit_fail("198.51.100.1", t), 1);
	assert_int_equal(authd_tarpit_fail("198.51.100.1", t + 10), 2);
	assert_int_equal(authd_tarpit_count("198.51.100.1", t + 20), 2);
	/* another source is not affected */
	assert_int_equal(authd_tarpit_count("198.51.100.2", t + 20), 0);
	/* forgotten after the window */
	assert_int_equal(authd_tarpit_count("198.51.100.1", t + 10 + TARPIT_WINDOW_MS + 1), 0);
	assert_int_equal(authd_tarpit_fail("198.51.100.1", t + 10 + TARPIT_WINDOW_MS + 1), 1);
}

static void test_delay_doubles_to_cap(void **state)
{
	(void)state;
	assert_int_equal(authd_tarpit_delay_ms(0, 2000), 0);
	assert_int_equal(authd_tarpit_delay_ms(1, 2000), 0);
	assert_int_equal(authd_tarpit_delay_ms(2, 2000), 2000);
	assert_int_equal(authd_tarpit_delay_ms(3, 2000), 4000);
	assert_int_equal(authd_tarpit_delay_ms(4, 2000), 8000);
	assert_int_equal(authd_tarpit_delay_ms(100, 2000), TARPIT_MAX_DELAY_MS);
	assert_int_equal(authd_tarpit_delay_ms(1000, 2000), TARPIT_MAX_DELAY_MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_ipv4_and_mapped),
		cmocka_unit_test(test_key_ipv6_by_64),
		cmocka_unit_test(test_counting_and_window),
		cmocka_unit_test(test_delay_doubles_to_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
