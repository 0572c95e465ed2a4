#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "authd/authd_ticket.h"

static const char secret[] =
	"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static void test_ticket_accepted_once(void **state)
{
	(void)state;
	static struct authd_tickets t;
	char *error = NULL;
	assert_int_equal(authd_tickets_init(&t, secret, &error), 0);
	char expiry[24], mac[AUTHD_TICKET_MAC_HEX + 1];
	authd_ticket_make(&t, "alice", "192.0.2.1:4000", 1000, expiry, sizeof(expiry), mac);
	const char *why = NULL;
	assert_int_equal(authd_ticket_check(&t, "alice", "192.0.2.1:4000", expiry, mac, 1001, &why),
			 0);
	assert_int_equal(authd_ticket_check(&t, "alice", "192.0.2.1:4000", expiry, mac, 1002, &why),
			 -1);
	assert_string_equal(why, "ticket used before");
}

static void test_ticket_refusals(void **state)
{
	(void)state;
	static struct authd_tickets t;
	char *error = NULL;
	assert_int_equal(authd_tickets_init(&t, secret, &error), 0);
	char expiry[24], mac[AUTHD_TICKET_MAC_HEX + 1];
	authd_ticket_make(&t, "alice", "192.0.2.1:4000", 1000, expiry, sizeof(expiry), mac);
	const char *why = NULL;
	/* another user, another peer, another expiry */
	assert_int_equal(authd_ticket_check(&t, "bob", "192.0.2.1:4000", expiry, mac, 1001, &why), -1);
	assert_string_equal(why, "forged ticket");
	assert_int_equal(authd_ticket_check(&t, "alice", "192.0.2.9:4000", expiry, mac, 1001, &why),
			 -1);
	assert_int_equal(authd_ticket_check(&t, "alice", "192.0.2.1:4000", "1059", mac, 1001, &why),
			 -1);
	/* expired */
	assert_int_equal(authd_ticket_check(&t, "alice", "192.0.2.1:4000", expiry, mac,
					    1000 + AUTHD_TICKET_LIFETIME_S + 1, &why),
			 -1);
	assert_string_equal(why, "expired ticket");
	/* malformed */
	assert_int_equal(authd_ticket_check(&t, "alice", "p", "x", mac, 1001, &why), -1);
	assert_int_equal(authd_ticket_check(&t, "alice", "p", expiry, "abc", 1001, &why), -1);
	mac[5] = 'z';
	assert_int_equal(authd_ticket_check(&t, "alice", "192.0.2.1:4000", expiry, mac, 1001, &why),
			 -1);
	assert_string_equal(why, "malformed ticket");
	/* a key that is not hex or too short */
	assert_int_equal(authd_tickets_init(&t, "zz", &error), -1);
	free(error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ticket_accepted_once),
		cmocka_unit_test(test_ticket_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
