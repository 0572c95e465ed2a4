#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "frontend/frontend_sasl.h"

static void test_base64_strict(void **state)
{
	(void)state;
	unsigned char out[64];
	assert_int_equal(fe_base64_decode("", out, sizeof(out)), 0);
	assert_int_equal(fe_base64_decode("Zm9v", out, sizeof(out)), 3);
	assert_string_equal((char *)out, "foo");
	assert_int_equal(fe_base64_decode("Zm8=", out, sizeof(out)), 2);
	assert_string_equal((char *)out, "fo");
	assert_int_equal(fe_base64_decode("Zg==", out, sizeof(out)), 1);
	assert_int_equal(fe_base64_decode("Zg=", out, sizeof(out)), -1);
	assert_int_equal(fe_base64_decode("Z===", out, sizeof(out)), -1);
	assert_int_equal(fe_base64_decode("Zm 9", out, sizeof(out)), -1);
	assert_int_equal(fe_base64_decode("Zm9v!", out, sizeof(out)), -1);
	assert_int_equal(fe_base64_decode("Zg=a", out, sizeof(out)), -1);
	/* does not fit */
	assert_int_equal(fe_base64_decode("Zm9vYmFy", out, 6), -1);
}

static void test_plain_with_initial_response(void **state)
{
	(void)state;
	struct fe_sasl sasl;
	fe_sasl_reset(&sasl);
	const char *challenge = NULL, *error = NULL;
	/* "\0alice\0secret" */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_PLAIN, "AGFsaWNlAHNlY3JldA==", &challenge,
				       &error),
			 FE_SASL_DONE);
	assert_string_equal(sasl.user, "alice");
	assert_string_equal(sasl.password, "secret");
	assert_false(fe_sasl_active(&sasl));
	fe_sasl_reset(&sasl);
	assert_string_equal(sasl.password, "");
}

static void test_plain_without_initial_response(void **state)
{
	(void)state;
	struct fe_sasl sasl;
	fe_sasl_reset(&sasl);
	const char *challenge = NULL, *error = NULL;
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_PLAIN, NULL, &challenge, &error),
			 FE_SASL_CHALLENGE);
	assert_string_equal(challenge, "");
	assert_true(fe_sasl_active(&sasl));
	/* "alice\0alice\0pw": authzid equal to authcid is accepted */
	assert_int_equal(fe_sasl_step(&sasl, "YWxpY2UAYWxpY2UAcHc=", &challenge, &error),
			 FE_SASL_DONE);
	assert_string_equal(sasl.user, "alice");
	assert_string_equal(sasl.password, "pw");
}

static void test_plain_refusals(void **state)
{
	(void)state;
	struct fe_sasl sasl;
	fe_sasl_reset(&sasl);
	const char *challenge = NULL, *error = NULL;
	/* "bob\0alice\0pw": acting as another user */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_PLAIN, "Ym9iAGFsaWNlAHB3", &challenge,
				       &error),
			 FE_SASL_ERROR);
	assert_non_null(error);
	/* no NULs */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_PLAIN, "YWxpY2U=", &challenge, &error),
			 FE_SASL_ERROR);
	/* empty user: "\0\0pw" */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_PLAIN, "AABwdw==", &challenge, &error),
			 FE_SASL_ERROR);
	/* empty initial response */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_PLAIN, "=", &challenge, &error),
			 FE_SASL_ERROR);
	/* bad base64 */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_PLAIN, "%%%%", &challenge, &error),
			 FE_SASL_ERROR);
	/* cancel */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_PLAIN, NULL, &challenge, &error),
			 FE_SASL_CHALLENGE);
	assert_int_equal(fe_sasl_step(&sasl, "*", &challenge, &error), FE_SASL_CANCEL);
	assert_false(fe_sasl_active(&sasl));
}

static void test_login_mechanism(void **state)
{
	(void)state;
	struct fe_sasl sasl;
	fe_sasl_reset(&sasl);
	const char *challenge = NULL, *error = NULL;
	assert_int_equal(fe_sasl_mech_parse("login"), FE_SASL_LOGIN);
	assert_int_equal(fe_sasl_mech_parse("CRAM-MD5"), FE_SASL_NONE);
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_LOGIN, NULL, &challenge, &error),
			 FE_SASL_CHALLENGE);
	assert_string_equal(challenge, "VXNlcm5hbWU6");
	assert_int_equal(fe_sasl_step(&sasl, "YWxpY2U=", &challenge, &error), FE_SASL_CHALLENGE);
	assert_string_equal(challenge, "UGFzc3dvcmQ6");
	assert_int_equal(fe_sasl_step(&sasl, "c2VjcmV0", &challenge, &error), FE_SASL_DONE);
	assert_string_equal(sasl.user, "alice");
	assert_string_equal(sasl.password, "secret");
	/* user name as the initial response */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_LOGIN, "YWxpY2U=", &challenge, &error),
			 FE_SASL_CHALLENGE);
	assert_string_equal(challenge, "UGFzc3dvcmQ6");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64_strict),
		cmocka_unit_test(test_plain_with_initial_response),
		cmocka_unit_test(test_plain_without_initial_response),
		cmocka_unit_test(test_plain_refusals),
		cmocka_unit_test(test_login_mechanism),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
