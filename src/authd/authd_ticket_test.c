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

static void test_sent_copy(void **state)
{
	(void)state;
	static struct authd_tickets t;
	char *error = NULL;
	assert_int_equal(authd_tickets_init(&t, secret, &error), 0);
	const char *digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
	const char *other = "0f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
	char mac[AUTHD_TICKET_MAC_HEX + 1];
	assert_int_equal(authd_sent_copy_make(&t, "alice", digest, mac), 0);
	const char *why = NULL;
	/* not single-use: a retry from the queue shows the same MAC again */
	assert_int_equal(authd_sent_copy_check(&t, "alice", digest, mac, &why), 0);
	assert_int_equal(authd_sent_copy_check(&t, "alice", digest, mac, &why), 0);
	/* the digest's case does not matter */
	char upper[65];
	for (size_t i = 0; i < 64; i++)
		upper[i] = (char)(digest[i] >= 'a' ? digest[i] - 32 : digest[i]);
	upper[64] = '\0';
	assert_int_equal(authd_sent_copy_check(&t, "alice", upper, mac, &why), 0);
	/* another user, another message */
	assert_int_equal(authd_sent_copy_check(&t, "bob", digest, mac, &why), -1);
	assert_string_equal(why, "forged authorisation");
	assert_int_equal(authd_sent_copy_check(&t, "alice", other, mac, &why), -1);
	/* a login ticket's MAC is not a sent-copy MAC */
	char expiry[24], login[AUTHD_TICKET_MAC_HEX + 1];
	authd_ticket_make(&t, "alice", digest, 1000, expiry, sizeof(expiry), login);
	assert_int_equal(authd_sent_copy_check(&t, "alice", digest, login, &why), -1);
	/* malformed */
	assert_int_equal(authd_sent_copy_make(&t, "alice", "abc", mac), -1);
	assert_int_equal(authd_sent_copy_check(&t, "alice", digest, "abc", &why), -1);
	assert_string_equal(why, "malformed authorisation");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ticket_accepted_once),
		cmocka_unit_test(test_ticket_refusals),
		cmocka_unit_test(test_sent_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
