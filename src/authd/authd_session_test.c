#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "authd/authd_session.h"

static struct authd_sessions table;

static void test_create_and_find(void **state)
{
	(void)state;
	memset(&table, 0, sizeof(table));
	struct authd_session *s = authd_session_create(&table, "alice", 60, 3600, 1000);
	if (s == NULL) {
		fail_msg("no session");
		return;
	}
	assert_int_equal(strlen(s->id), AUTHD_SESSION_ID_HEX);
	assert_int_equal(strlen(s->csrf), AUTHD_SESSION_ID_HEX);
	assert_string_not_equal(s->id, s->csrf);
	char id[AUTHD_SESSION_ID_HEX + 1];
	strcpy(id, s->id);
	assert_ptr_equal(authd_session_find(&table, id, 2000), s);
	assert_string_equal(s->user, "alice");
	/* a changed last digit, a prefix, an empty id: no session */
	char wrong[AUTHD_SESSION_ID_HEX + 1];
	strcpy(wrong, id);
	wrong[AUTHD_SESSION_ID_HEX - 1] = wrong[AUTHD_SESSION_ID_HEX - 1] == '0' ? '1' : '0';
	assert_null(authd_session_find(&table, wrong, 2000));
	id[10] = '\0';
	assert_null(authd_session_find(&table, id, 2000));
	assert_null(authd_session_find(&table, "", 2000));
	/* two sessions never share an id */
	struct authd_session *t = authd_session_create(&table, "bob", 60, 3600, 1000);
	if (t == NULL) {
		fail_msg("no session");
		return;
	}
	assert_string_not_equal(s->id, t->id);
}

static void test_idle_and_lifetime(void **state)
{
	(void)state;
	memset(&table, 0, sizeof(table));
	struct authd_session *s = authd_session_create(&table, "alice", 60, 300, 0);
	char id[AUTHD_SESSION_ID_HEX + 1];
	strcpy(id, s->id);
	/* used every 50 s it stays alive past its idle time ... */
	for (long long t = 50000; t < 300000; t += 50000)
		assert_non_null(authd_session_find(&table, id, t));
	/* ... but not past its lifetime */
	assert_null(authd_session_find(&table, id, 300000));
	assert_string_equal(s->id, "");

	s = authd_session_create(&table, "alice", 60, 300, 0);
	strcpy(id, s->id);
	assert_null(authd_session_find(&table, id, 60000));
}

static void test_end_user_and_full_table(void **state)
{
	(void)state;
	memset(&table, 0, sizeof(table));
	struct authd_session *a = authd_session_create(&table, "Alice", 60, 300, 0);
	authd_session_create(&table, "alice", 60, 300, 0);
	authd_session_create(&table, "bob", 60, 300, 0);
	char id[AUTHD_SESSION_ID_HEX + 1];
	strcpy(id, a->id);
	assert_int_equal(authd_session_end_user(&table, "ALICE"), 2);
	assert_null(authd_session_find(&table, id, 1));

	/* a full table gives up its least recently used session */
	memset(&table, 0, sizeof(table));
	for (int i = 0; i < AUTHD_MAX_SESSIONS; i++)
		authd_session_create(&table, "u", 600, 6000, 1000 + i);
	struct authd_session *oldest = &table.slots[0];
	assert_int_equal(oldest->used_ms, 1000);
	struct authd_session *n = authd_session_create(&table, "new", 600, 6000, 10000);
	assert_ptr_equal(n, oldest);
	assert_string_equal(n->user, "new");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_and_find),
		cmocka_unit_test(test_idle_and_lifetime),
		cmocka_unit_test(test_end_user_and_full_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
