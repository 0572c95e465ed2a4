#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <crypt.h>

#include "directory/password.h"

/* a hash made with crypt_ra directly, as another system would have */
static char *foreign_hash(const char *password, const char *setting)
{
	void *data = NULL;
	int size = 0;
	const char *out = crypt_ra(password, setting, &data, &size);
	assert_non_null(out);
	assert_true(out[0] != '*');
	char *copy = strdup(out);
	free(data);
	return copy;
}

static void test_hash_and_verify(void **state)
{
	(void)state;
	char *hash = NULL, *error = NULL;
	assert_int_equal(password_hash("correct horse", &hash, &error), 0);
	assert_non_null(hash);
	assert_true(strncmp(hash, "$y$", 3) == 0);
	assert_string_equal(password_scheme(hash), "yescrypt");
	assert_int_equal(password_hash_check(hash, &error), 0);
	assert_int_equal(password_verify("correct horse", hash), 1);
	assert_int_equal(password_verify("correct horsE", hash), 0);
	assert_int_equal(password_verify("", hash), 0);
	/* a second hash of the same password has another salt */
	char *hash2 = NULL;
	assert_int_equal(password_hash("correct horse", &hash2, &error), 0);
	assert_string_not_equal(hash, hash2);
	assert_int_equal(password_verify("correct horse", hash2), 1);
	free(hash);
	free(hash2);
}

static void test_hash_refuses(void **state)
{
	(void)state;
	char *hash = NULL, *error = NULL;
	assert_int_equal(password_hash("", &hash, &error), -1);
	assert_non_null(strstr(error, "empty"));
	free(error);
	char big[PASSWORD_MAX_LENGTH + 2];
	memset(big, 'p', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(password_hash(big, &hash, &error), -1);
	assert_non_null(strstr(error, "longer than"));
	free(error);
	big[PASSWORD_MAX_LENGTH] = '\0';
	assert_int_equal(password_hash(big, &hash, &error), 0);
	assert_int_equal(password_verify(big, hash), 1);
	free(hash);
}

static void test_sha512_crypt(void **state)
{
	(void)state;
	char *hash = foreign_hash("imported secret", "$6$fixedsaltABCD$");
	assert_string_equal(password_scheme(hash), "sha512-crypt");
	char *error = NULL;
	assert_int_equal(password_hash_check(hash, &error), 0);
	assert_int_equal(password_verify("imported secret", hash), 1);
	assert_int_equal(password_verify("imported secreT", hash), 0);
	assert_int_equal(password_verify("", hash), 0);
	/* with rounds= too */
	char *rounds = foreign_hash("x", "$6$rounds=5000$abc$");
	assert_int_equal(password_hash_check(rounds, &error), 0);
	assert_int_equal(password_verify("x", rounds), 1);
	assert_int_equal(password_verify("y", rounds), 0);
	free(rounds);
	/* truncated: refused by check, never verifies */
	hash[strlen(hash) - 5] = '\0';
	assert_int_equal(password_hash_check(hash, &error), -1);
	assert_non_null(strstr(error, "malformed"));
	free(error);
	assert_int_not_equal(password_verify("imported secret", hash), 1);
	free(hash);
}

static void test_bcrypt(void **state)
{
	(void)state;
	static const char rbytes[16] = "0123456789abcdef";
	const char *prefixes[] = {"$2b$", "$2y$"};
	for (size_t i = 0; i < 2; i++) {
		char *setting = crypt_gensalt_ra(prefixes[i], 5, rbytes, sizeof(rbytes));
		assert_non_null(setting);
		char *hash = foreign_hash("bcrypt pw", setting);
		free(setting);
		assert_string_equal(password_scheme(hash), "bcrypt");
		char *error = NULL;
		if (password_hash_check(hash, &error) != 0)
			fail_msg("%s refused: %s", hash, error);
		assert_int_equal(password_verify("bcrypt pw", hash), 1);
		assert_int_equal(password_verify("bcrypt pW", hash), 0);
		/* the same salt gives the same hash: a fixed vector */
		char *again = foreign_hash("bcrypt pw", hash);
		assert_string_equal(again, hash);
		free(again);
		free(hash);
	}
}

static void test_check_refuses(void **state)
{
	(void)state;
	const char *bad[] = {
	    "",
	    "plaintext",
	    "$y$",
	    "$6$",
	    "$6$salt$short",
	    "abJnggxhB/yWI",			  /* DES: legacy */
	    "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", /* MD5-crypt: legacy */
	    "$6$salt$has:colon",
	    "$6$salt$has space",
	    "$99$nonsense$xxxxxxxxxxxxxxxxxxxxxxxxxx",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *error = NULL;
		if (password_hash_check(bad[i], &error) != -1)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(error, "accepted: yescrypt"));
		free(error);
		assert_int_not_equal(password_verify("x", bad[i]), 1);
	}
	assert_int_equal(password_verify("x", NULL), -1);
	assert_int_equal(password_verify("x", "*"), -1);
	assert_int_equal(password_verify("x", "!locked"), -1);
	assert_string_equal(password_scheme(NULL), "unknown");
	assert_string_equal(password_scheme("$5$a$b"), "sha256-crypt");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash_and_verify), cmocka_unit_test(test_hash_refuses),
	    cmocka_unit_test(test_sha512_crypt),    cmocka_unit_test(test_bcrypt),
	    cmocka_unit_test(test_check_refuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
