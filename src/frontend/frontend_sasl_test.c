#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend_sasl.h"
#include "lib/base64.h"
#include "lib/ipc.h"

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
	struct fe_sasl sasl = {0};
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
	struct fe_sasl sasl = {0};
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
	struct fe_sasl sasl = {0};
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
	struct fe_sasl sasl = {0};
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

/* an answer from authd */
static struct ipc_msg *reply(const char *result, const char *exchange, const char *challenge)
{
	struct ipc_msg *m = calloc(1, sizeof(*m));
	m->type = IPC_AUTH_REPLY;
	m->fd = -1;
	m->fields[m->nfields++] = (struct ipc_field){"id", "1"};
	m->fields[m->nfields++] = (struct ipc_field){"result", result};
	if (exchange != NULL)
		m->fields[m->nfields++] = (struct ipc_field){"exchange", exchange};
	if (challenge != NULL)
		m->fields[m->nfields++] = (struct ipc_field){"challenge", challenge};
	return m;
}

static const char *b64(const char *text)
{
	static char out[512];
	assert_true(base64_encode((const unsigned char *)text, strlen(text), out, sizeof(out)) >= 0);
	return out;
}

static void test_scram_walk(void **state)
{
	(void)state;
	struct fe_sasl sasl = {0};
	const char *challenge = NULL, *error = NULL;
	struct ipc_field f[2];
	size_t n;
	assert_int_equal(fe_sasl_mech_parse("scram-sha-256"), FE_SASL_SCRAM_SHA_256);
	assert_int_equal(fe_sasl_mech_parse("SCRAM-SHA-256-PLUS"), FE_SASL_NONE);
	assert_int_equal(fe_sasl_mech_parse("SCRAM-SHA-1"), FE_SASL_NONE);
	/* without an initial response: an empty challenge first */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_SCRAM_SHA_256, NULL, &challenge, &error),
			 FE_SASL_CHALLENGE);
	assert_string_equal(challenge, "");
	assert_int_equal(fe_sasl_authd_request(&sasl, f, &n), -1);
	assert_int_equal(fe_sasl_step(&sasl, b64("n,,n=alice,r=abc"), &challenge, &error),
			 FE_SASL_AUTHD);
	assert_true(fe_sasl_awaiting_authd(&sasl));
	assert_string_equal(sasl.user, "alice");
	assert_int_equal(fe_sasl_authd_request(&sasl, f, &n), IPC_SCRAM_FIRST);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].key, "message");
	assert_string_equal(f[0].value, "n,,n=alice,r=abc");
	struct ipc_msg *m = reply("continue", "5.0011", "r=abcdef,s=QSXCR+Q6sek8bf92,i=4096");
	assert_int_equal(fe_sasl_authd_reply(&sasl, m, &challenge), FE_SASL_CHALLENGE);
	assert_string_equal(challenge, b64("r=abcdef,s=QSXCR+Q6sek8bf92,i=4096"));
	free(m);
	assert_false(fe_sasl_awaiting_authd(&sasl));
	const char *final = "c=biws,r=abcdef,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
	assert_int_equal(fe_sasl_step(&sasl, b64(final), &challenge, &error), FE_SASL_AUTHD);
	assert_int_equal(fe_sasl_authd_request(&sasl, f, &n), IPC_SCRAM_FINAL);
	assert_int_equal(n, 2);
	assert_string_equal(f[0].value, "5.0011");
	assert_string_equal(f[1].value, final);
	m = reply("continue", "5.0011", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	assert_int_equal(fe_sasl_authd_reply(&sasl, m, &challenge), FE_SASL_CHALLENGE);
	free(m);
	/* the client's empty answer to the server signature goes to authd too */
	assert_int_equal(fe_sasl_step(&sasl, "", &challenge, &error), FE_SASL_AUTHD);
	assert_int_equal(fe_sasl_authd_request(&sasl, f, &n), IPC_SCRAM_CONFIRM);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].key, "exchange");
	m = reply("ok", NULL, NULL);
	assert_int_equal(fe_sasl_authd_reply(&sasl, m, &challenge), FE_SASL_VERDICT);
	free(m);
	assert_false(fe_sasl_active(&sasl));
	assert_null(sasl.scram);
}

static void test_scram_refusals(void **state)
{
	(void)state;
	struct fe_sasl sasl = {0};
	const char *challenge = NULL, *error = NULL;
#define SCRAM_FIRST_FAILS(ir, text)                                                                	do {                                                                                       		assert_int_equal(fe_sasl_start(&sasl, FE_SASL_SCRAM_SHA_256, ir, &challenge,       					       &error),                                            				 FE_SASL_ERROR);                                                   		assert_non_null(strstr(error, text));                                              		assert_false(fe_sasl_active(&sasl));                                               	} while (0)
	SCRAM_FIRST_FAILS("=", "invalid base64");
	SCRAM_FIRST_FAILS("bixuPWFsaWNlLHI9YWJj=", "invalid base64");
	SCRAM_FIRST_FAILS("not base64!", "invalid base64");
	SCRAM_FIRST_FAILS(b64("p=tls-unique,,n=alice,r=abc"), "channel binding");
	SCRAM_FIRST_FAILS(b64("n,,m=x,n=alice,r=abc"), "extensions");
	SCRAM_FIRST_FAILS(b64("n,,n=alice"), "malformed");
	SCRAM_FIRST_FAILS(b64("n,,n=al=ice,r=abc"), "user name");
	SCRAM_FIRST_FAILS(b64("n,a=bob,n=alice,r=abc"), "authorization identity");
	/* y: the client could bind but thinks the server cannot; fine */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_SCRAM_SHA_256, b64("y,,n=alice,r=abc"),
				       &challenge, &error),
			 FE_SASL_AUTHD);
	/* authd fails the first step: the verdict, and the exchange is over */
	struct ipc_msg *m = reply("tempfail", NULL, NULL);
	assert_int_equal(fe_sasl_authd_reply(&sasl, m, &challenge), FE_SASL_VERDICT);
	free(m);
	assert_false(fe_sasl_active(&sasl));

	/* a malformed client-final message, and cancelling */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_SCRAM_SHA_256, b64("n,,n=alice,r=abc"),
				       &challenge, &error),
			 FE_SASL_AUTHD);
	m = reply("continue", "1.00", "r=abcdef,s=QSXCR+Q6sek8bf92,i=4096");
	assert_int_equal(fe_sasl_authd_reply(&sasl, m, &challenge), FE_SASL_CHALLENGE);
	assert_int_equal(fe_sasl_step(&sasl, b64("c=biws,r=abcdef"), &challenge, &error),
			 FE_SASL_ERROR);
	assert_false(fe_sasl_active(&sasl));
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_SCRAM_SHA_256, b64("n,,n=alice,r=abc"),
				       &challenge, &error),
			 FE_SASL_AUTHD);
	assert_int_equal(fe_sasl_authd_reply(&sasl, m, &challenge), FE_SASL_CHALLENGE);
	assert_int_equal(fe_sasl_step(&sasl, "*", &challenge, &error), FE_SASL_CANCEL);
	assert_false(fe_sasl_active(&sasl));
	/* a wrong proof: authd's fail is the verdict */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_SCRAM_SHA_256, b64("n,,n=alice,r=abc"),
				       &challenge, &error),
			 FE_SASL_AUTHD);
	assert_int_equal(fe_sasl_authd_reply(&sasl, m, &challenge), FE_SASL_CHALLENGE);
	free(m);
	const char *final = "c=biws,r=abcdef,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
	assert_int_equal(fe_sasl_step(&sasl, b64(final), &challenge, &error), FE_SASL_AUTHD);
	m = reply("fail", NULL, NULL);
	assert_int_equal(fe_sasl_authd_reply(&sasl, m, &challenge), FE_SASL_VERDICT);
	free(m);
	assert_false(fe_sasl_active(&sasl));
	/* after the server signature only an empty response is right */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_SCRAM_SHA_256, b64("n,,n=alice,r=abc"),
				       &challenge, &error),
			 FE_SASL_AUTHD);
	m = reply("continue", "1.00", "r=abcdef,s=QSXCR+Q6sek8bf92,i=4096");
	assert_int_equal(fe_sasl_authd_reply(&sasl, m, &challenge), FE_SASL_CHALLENGE);
	free(m);
	assert_int_equal(fe_sasl_step(&sasl, b64(final), &challenge, &error), FE_SASL_AUTHD);
	m = reply("continue", "1.00", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	assert_int_equal(fe_sasl_authd_reply(&sasl, m, &challenge), FE_SASL_CHALLENGE);
	free(m);
	assert_int_equal(fe_sasl_step(&sasl, "eA==", &challenge, &error), FE_SASL_ERROR);
	assert_false(fe_sasl_active(&sasl));
	/* a second "continue" where the verdict belongs is a verdict (a failure) */
	assert_int_equal(fe_sasl_start(&sasl, FE_SASL_SCRAM_SHA_256, b64("n,,n=alice,r=abc"),
				       &challenge, &error),
			 FE_SASL_AUTHD);
	m = reply("continue", NULL, "r=abcdef,s=QSXCR+Q6sek8bf92,i=4096");
	assert_int_equal(fe_sasl_authd_reply(&sasl, m, &challenge), FE_SASL_VERDICT);
	free(m);
	fe_sasl_reset(&sasl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64_strict),
		cmocka_unit_test(test_plain_with_initial_response),
		cmocka_unit_test(test_plain_without_initial_response),
		cmocka_unit_test(test_plain_refusals),
		cmocka_unit_test(test_login_mechanism),
		cmocka_unit_test(test_scram_walk),
		cmocka_unit_test(test_scram_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
