#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "directory/password_scram.h"
#include "lib/base64.h"

/* RFC 7677's salt and count for "pencil"; the keys as GNU SASL's
 * `gsasl --mkpasswd` makes them */
#define SALT_B64   "W22ZaJ0SNY7soEsUEjb6gQ=="
#define STORED_B64 "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
#define SERVER_B64 "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC5803	   "SCRAM-SHA-256$4096:" SALT_B64 "$" STORED_B64 ":" SERVER_B64
#define DOVECOT	   "{SCRAM-SHA-256}4096," SALT_B64 "," STORED_B64 "," SERVER_B64

static void test_known_keys(void **state)
{
	(void)state;
	unsigned char salt[32];
	long n = base64_decode(SALT_B64, strlen(SALT_B64), salt, sizeof(salt));
	assert_int_equal(n, 16);
	char *keys = NULL, *error = NULL;
	assert_int_equal(password_scram_make_with("pencil", salt, (size_t)n, 4096, &keys, &error),
			 1);
	assert_string_equal(keys, RFC5803);
	assert_int_equal(password_scram_matches(keys, "pencil"), 1);
	assert_int_equal(password_scram_matches(keys, "pencil "), 0);
	free(keys);

	struct password_scram k;
	assert_int_equal(password_scram_parse(RFC5803, &k, &error), 0);
	assert_int_equal(k.iterations, 4096);
	assert_int_equal(k.salt_len, 16);
	/* the Dovecot / gsasl form is imported as the same keys */
	char *stored = NULL;
	assert_int_equal(password_scram_normalise(DOVECOT, &stored, &error), 0);
	assert_string_equal(stored, RFC5803);
	free(stored);
}

static void test_fresh_keys(void **state)
{
	(void)state;
	char *a = NULL, *b = NULL, *error = NULL;
	assert_int_equal(password_scram_make("correct horse", &a, &error), 1);
	assert_int_equal(password_scram_make("correct horse", &b, &error), 1);
	assert_string_not_equal(a, b); /* a salt of its own */
	struct password_scram k;
	assert_int_equal(password_scram_parse(a, &k, &error), 0);
	assert_int_equal(k.iterations, PASSWORD_SCRAM_ITERATIONS);
	assert_int_equal(k.salt_len, SCRAM_SALT_SIZE);
	assert_int_equal(password_scram_matches(a, "correct horse"), 1);
	assert_int_equal(password_scram_matches(b, "correct horsE"), 0);
	free(a);
	free(b);
	assert_int_equal(password_scram_make("", &a, &error), -1);
	free(error);
}

static void refused(const char *keys)
{
	struct password_scram k;
	char *error = NULL;
	if (password_scram_parse(keys, &k, &error) != -1)
		fail_msg("keys '%s' were accepted", keys);
	assert_non_null(strstr(error, "accepted:"));
	free(error);
}

static void test_bad_keys(void **state)
{
	(void)state;
	refused("");
	refused("SCRAM-SHA-1$4096:" SALT_B64 "$" STORED_B64 ":" SERVER_B64);
	refused("SCRAM-SHA-256$4095:" SALT_B64 "$" STORED_B64 ":" SERVER_B64); /* too few */
	refused("SCRAM-SHA-256$04096:" SALT_B64 "$" STORED_B64 ":" SERVER_B64);
	refused("SCRAM-SHA-256$99999999:" SALT_B64 "$" STORED_B64 ":" SERVER_B64);
	refused("SCRAM-SHA-256$4096:$" STORED_B64 ":" SERVER_B64);
	refused("SCRAM-SHA-256$4096:" SALT_B64 "$" SALT_B64 ":" SERVER_B64); /* 16 bytes */
	refused("SCRAM-SHA-256$4096:" SALT_B64 "$" STORED_B64 ":" SERVER_B64 "x");
	refused("SCRAM-SHA-256$4096:" SALT_B64 "$" STORED_B64);
	refused("SCRAM-SHA-256$4096," SALT_B64 "," STORED_B64 "," SERVER_B64);
	refused("{SCRAM-SHA-256}4096:" SALT_B64 "$" STORED_B64 ":" SERVER_B64);
	refused("SCRAM-SHA-256$4096:" SALT_B64 "$" STORED_B64 ":" SERVER_B64 ":x");
	struct password_scram k;
	char *error = NULL;
	assert_int_equal(password_scram_parse(NULL, &k, &error), -1);
	free(error);
	assert_int_equal(password_scram_matches("nonsense", "x"), -1);
}

static void prepared(const char *in, const char *want)
{
	char *out = NULL, *error = NULL;
	int r = password_scram_prepare(in, &out, &error);
	if (want == NULL) {
		if (r != 0)
			fail_msg("'%s' was prepared as '%s'", in, out);
		assert_non_null(strstr(error, "SASLprep"));
		free(error);
		return;
	}
	if (r != 1)
		fail_msg("'%s' was refused: %s", in, error);
	assert_string_equal(out, want);
	free(out);
}

/* RFC 4013 section 3's examples, and what they mean for the keys */
static void test_saslprep(void **state)
{
	(void)state;
	prepared("I\xc2\xadX", "IX");	/* SOFT HYPHEN mapped to nothing */
	prepared("user", "user");	/* no transformation */
	prepared("USER", "USER");	/* case preserved */
	prepared("\xc2\xaa", "a");	/* NFKC */
	prepared("\xe2\x85\xa8", "IX"); /* NFKC: ROMAN NUMERAL NINE */
	prepared("a\xc2\xa0"
		 "b",
		 "a b");		    /* non-ASCII space to SPACE */
	prepared("\x07", NULL);		    /* prohibited: control character */
	prepared("\xd8\xa7\x31", NULL);	    /* bidirectional rule */
	prepared("\xc2\xad", NULL);	    /* nothing left */
	prepared("\xf3\xa0\x80\x81", NULL); /* a tag character: prohibited */
	prepared("\xe0\xa1\x80", NULL);	    /* U+0840, unassigned in Unicode 3.2 */

	/* keys come from the prepared form: a client typing "IX" proves
	 * the password "I<SOFT HYPHEN>X", and no keys come from a refused one */
	unsigned char salt[16] = {1, 2, 3};
	char *a = NULL, *b = NULL, *error = NULL;
	assert_int_equal(password_scram_make_with("I\xc2\xadX", salt, 16, 4096, &a, &error), 1);
	assert_int_equal(password_scram_make_with("IX", salt, 16, 4096, &b, &error), 1);
	assert_string_equal(a, b);
	assert_int_equal(password_scram_matches(a, "\xe2\x85\xa8"), 1);
	free(a);
	free(b);
	assert_int_equal(password_scram_make("bell\x07", &a, &error), 0);
	assert_null(a);
	free(error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_keys),
	    cmocka_unit_test(test_fresh_keys),
	    cmocka_unit_test(test_saslprep),
	    cmocka_unit_test(test_bad_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
