#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/scram.h"

/* RFC 7677 section 3: user "user", password "pencil" */
#define V_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define V_SERVER_FIRST                                                                             \
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define V_CLIENT_FINAL_NO_PROOF "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define V_PROOF			"dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define V_CLIENT_FINAL		V_CLIENT_FINAL_NO_PROOF ",p=" V_PROOF
#define V_SERVER_FINAL		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static void b64(const unsigned char *in, size_t len, char *out, size_t size)
{
	assert_true(base64_encode(in, len, out, size) >= 0);
}

static void test_rfc7677_vector(void **state)
{
	(void)state;
	struct scram_client_first cf;
	const char *error = NULL;
	assert_int_equal(
	    scram_parse_client_first(V_CLIENT_FIRST, strlen(V_CLIENT_FIRST), &cf, &error), 0);
	assert_string_equal(cf.user, "user");
	assert_string_equal(cf.authzid, "");
	assert_int_equal(cf.cbind_flag, 'n');
	assert_int_equal(cf.gs2_header_len, 3);
	assert_int_equal(cf.nonce_len, 20);
	assert_memory_equal(V_CLIENT_FIRST + cf.nonce_offset, "rOprNGfwEbeRWgbNEkqO", 20);

	struct scram_server_first sf;
	assert_int_equal(
	    scram_parse_server_first(V_SERVER_FIRST, strlen(V_SERVER_FIRST), &sf, &error), 0);
	assert_int_equal(sf.iterations, 4096);
	assert_int_equal(sf.salt_len, 16);

	unsigned char salted[SCRAM_KEY_SIZE], stored[SCRAM_KEY_SIZE], server[SCRAM_KEY_SIZE];
	assert_int_equal(
	    scram_salted_password("pencil", 6, sf.salt, sf.salt_len, sf.iterations, salted), 0);
	scram_server_keys(salted, stored, server);

	char auth[1024];
	const char *bare = V_CLIENT_FIRST + cf.bare_offset;
	long n = scram_auth_message(bare, strlen(bare), V_SERVER_FIRST, strlen(V_SERVER_FIRST),
				    V_CLIENT_FINAL_NO_PROOF, strlen(V_CLIENT_FINAL_NO_PROOF), auth,
				    sizeof(auth));
	assert_true(n > 0);

	/* the client's proof is the RFC's */
	unsigned char proof[SCRAM_KEY_SIZE];
	char text[128];
	scram_client_proof(salted, auth, (size_t)n, proof);
	b64(proof, sizeof(proof), text, sizeof(text));
	assert_string_equal(text, V_PROOF);

	/* the server parses the client-final message and accepts the proof */
	struct scram_client_final fin;
	assert_int_equal(
	    scram_parse_client_final(V_CLIENT_FINAL, strlen(V_CLIENT_FINAL), &fin, &error), 0);
	assert_int_equal(fin.without_proof_len, strlen(V_CLIENT_FINAL_NO_PROOF));
	assert_int_equal(fin.cbind_len, 3);
	assert_memory_equal(fin.cbind, "n,,", 3);
	assert_memory_equal(fin.proof, proof, SCRAM_KEY_SIZE);
	assert_true(scram_verify_proof(stored, auth, (size_t)n, fin.proof));
	/* one bit off: refused */
	fin.proof[5] ^= 1;
	assert_false(scram_verify_proof(stored, auth, (size_t)n, fin.proof));
	fin.proof[5] ^= 1;
	/* another AuthMessage (a replay in another exchange): refused */
	auth[n - 1] ^= 1;
	assert_false(scram_verify_proof(stored, auth, (size_t)n, fin.proof));
	auth[n - 1] ^= 1;

	/* the server signature is the RFC's, and the client parses it */
	unsigned char sig[SCRAM_KEY_SIZE];
	scram_server_signature(server, auth, (size_t)n, sig);
	b64(sig, sizeof(sig), text, sizeof(text));
	char final[160];
	snprintf(final, sizeof(final), "v=%s", text);
	assert_string_equal(final, V_SERVER_FINAL);
	struct scram_server_final sfin;
	assert_int_equal(scram_parse_server_final(final, strlen(final), &sfin, &error), 0);
	assert_false(sfin.error);
	assert_memory_equal(sfin.signature, sig, SCRAM_KEY_SIZE);
}

static void first_fails(const char *msg, const char *expected_error)
{
	struct scram_client_first cf;
	const char *error = NULL;
	if (scram_parse_client_first(msg, strlen(msg), &cf, &error) != -1)
		fail_msg("client-first '%s' was accepted", msg);
	assert_string_equal(error, expected_error);
}

static void first_ok(const char *msg, const char *user, const char *authzid, char flag)
{
	struct scram_client_first cf;
	const char *error = NULL;
	if (scram_parse_client_first(msg, strlen(msg), &cf, &error) != 0)
		fail_msg("client-first '%s' was refused: %s", msg, error);
	assert_string_equal(cf.user, user);
	assert_string_equal(cf.authzid, authzid);
	assert_int_equal(cf.cbind_flag, flag);
	assert_int_equal(cf.bare_offset, cf.gs2_header_len);
	assert_memory_equal(msg + cf.bare_offset, "n=", 2);
}

static void test_client_first_edge_cases(void **state)
{
	(void)state;
	first_ok("y,,n=user,r=abc", "user", "", 'y');
	first_ok("n,a=alice,n=alice,r=abc", "alice", "alice", 'n');
	first_ok("n,,n=a=2Cb=3Dc,r=x", "a,b=c", "", 'n');
	first_ok("n,,n=j\xc3\xb6rg,r=x", "j\xc3\xb6rg", "", 'n');
	/* optional extensions after the nonce are ignored */
	first_ok("n,,n=user,r=abc,x=foo,Y=b=r", "user", "", 'n');

	/* channel binding is not offered; mandatory extensions are refused */
	first_fails("p=tls-unique,,n=user,r=abc", "channel-binding-not-supported");
	first_fails("p=tls-server-end-point,a=user,n=user,r=abc", "channel-binding-not-supported");
	first_fails("n,,m=foo,n=user,r=abc", "extensions-not-supported");
	/* gs2 header */
	first_fails("F,n,,n=user,r=abc", "invalid-encoding");
	first_fails("x,,n=user,r=abc", "invalid-encoding");
	first_fails("n,n=user,r=abc", "invalid-encoding");
	first_fails("n", "invalid-encoding");
	first_fails("n,a=,n=user,r=abc", "invalid-username-encoding");
	/* missing or empty attributes */
	first_fails("n,,r=abc", "invalid-encoding");
	first_fails("n,,n=user", "invalid-encoding");
	first_fails("n,,n=user,r=", "invalid-encoding");
	first_fails("n,,n=,r=abc", "invalid-username-encoding");
	first_fails("n,,r=abc,n=user", "invalid-encoding");
	/* bad saslname escapes and UTF-8 */
	first_fails("n,,n=a=2,r=x", "invalid-username-encoding");
	first_fails("n,,n=a=41,r=x", "invalid-username-encoding");
	first_fails("n,,n=a=,r=x", "invalid-username-encoding");
	first_fails("n,,n=\xff,r=x", "invalid-username-encoding");
	first_fails("n,,n=\xc0\xaf,r=x", "invalid-username-encoding");	   /* overlong '/' */
	first_fails("n,,n=\xed\xa0\x80,r=x", "invalid-username-encoding"); /* surrogate */
	/* the nonce is printable ASCII */
	first_fails("n,,n=user,r=a b", "invalid-encoding");
	first_fails("n,,n=user,r=a\x7f", "invalid-encoding");
	/* extensions: a letter, '=', a value */
	first_fails("n,,n=user,r=abc,", "invalid-encoding");
	first_fails("n,,n=user,r=abc,1=x", "invalid-encoding");
	first_fails("n,,n=user,r=abc,xy=1", "invalid-encoding");
	first_fails("n,,n=user,r=abc,x=", "invalid-encoding");
	/* empty, NUL, too long */
	first_fails("", "invalid-encoding");
	struct scram_client_first cf;
	const char *error;
	assert_int_equal(scram_parse_client_first("n,,n=us\0er,r=x", 15, &cf, &error), -1);
	char big[SCRAM_MAX_MESSAGE + 64];
	int n = snprintf(big, sizeof(big), "n,,n=user,r=");
	memset(big + n, 'a', sizeof(big) - (size_t)n - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(scram_parse_client_first(big, strlen(big), &cf, &error), -1);
	/* a name longer than SCRAM_MAX_NAME */
	n = snprintf(big, sizeof(big), "n,,n=");
	memset(big + n, 'u', SCRAM_MAX_NAME + 1);
	snprintf(big + n + SCRAM_MAX_NAME + 1, 16, ",r=abc");
	assert_int_equal(scram_parse_client_first(big, strlen(big), &cf, &error), -1);
}

static void final_fails(const char *msg)
{
	struct scram_client_final cf;
	const char *error = NULL;
	if (scram_parse_client_final(msg, strlen(msg), &cf, &error) != -1)
		fail_msg("client-final '%s' was accepted", msg);
	assert_string_equal(error, "invalid-encoding");
}

static void test_client_final_edge_cases(void **state)
{
	(void)state;
	struct scram_client_final cf;
	const char *error;
	/* an extension before the proof is ignored */
	const char *ext = "c=eSws,r=abc,x=1,"
			  "p=" V_PROOF;
	assert_int_equal(scram_parse_client_final(ext, strlen(ext), &cf, &error), 0);
	assert_int_equal(cf.without_proof_len, strlen("c=eSws,r=abc,x=1"));
	assert_memory_equal(cf.cbind, "y,,", 3);

	final_fails("c=biws,r=abc");						    /* no proof */
	final_fails("r=abc,c=biws,p=" V_PROOF);					    /* order */
	final_fails("c=biws,p=" V_PROOF);					    /* no nonce */
	final_fails("c=,r=abc,p=" V_PROOF);					    /* empty c= */
	final_fails("c=biw,r=abc,p=" V_PROOF);					    /* bad base64 */
	final_fails("c=bi=s,r=abc,p=" V_PROOF);					    /* bad base64 */
	final_fails("c=biws,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ");  /* padding */
	final_fails("c=biws,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndQ=="); /* 31 bytes */
	final_fails("c=biws,r=abc,p=" V_PROOF ",x=1"); /* proof not last */
	final_fails("c=biws,r=abc,p=" V_PROOF ","
		    "p=" V_PROOF); /* two proofs */
	final_fails("c=biws,r=abc,p=");
	final_fails("c=biws,r=a,bc,p=" V_PROOF);
	final_fails("c=biws,r=,p=" V_PROOF);
	final_fails("");
}

static void test_server_messages(void **state)
{
	(void)state;
	struct scram_server_first sf;
	struct scram_server_final sfin;
	const char *error;
#define SF_FAILS(m) assert_int_equal(scram_parse_server_first(m, strlen(m), &sf, &error), -1)
	SF_FAILS("m=x,r=abc,s=QSXCR+Q6sek8bf92,i=4096");
	SF_FAILS("r=abc,s=QSXCR+Q6sek8bf92");
	SF_FAILS("r=abc,s=,i=4096");
	SF_FAILS("r=abc,s=QSXCR+Q6sek8bf92,i=0");
	SF_FAILS("r=abc,s=QSXCR+Q6sek8bf92,i=04096");
	SF_FAILS("r=abc,s=QSXCR+Q6sek8bf92,i=4096x");
	SF_FAILS("r=abc,s=QSXCR+Q6sek8bf92,i=99999999999");
	SF_FAILS("s=QSXCR+Q6sek8bf92,r=abc,i=4096");
	const char *ok = "r=abc,s=QSXCR+Q6sek8bf92,i=4096,x=ext";
	assert_int_equal(scram_parse_server_first(ok, strlen(ok), &sf, &error), 0);
	assert_int_equal(sf.salt_len, 12);

	const char *e = "e=invalid-proof";
	assert_int_equal(scram_parse_server_final(e, strlen(e), &sfin, &error), 0);
	assert_true(sfin.error);
	assert_string_equal(sfin.error_text, "invalid-proof");
	e = "v=6rriTRBi23WpRR";
	assert_int_equal(scram_parse_server_final(e, strlen(e), &sfin, &error), -1);
	e = "x=1";
	assert_int_equal(scram_parse_server_final(e, strlen(e), &sfin, &error), -1);
}

static void test_base64_and_saslname(void **state)
{
	(void)state;
	unsigned char out[16];
	char text[32];
	assert_int_equal(base64_decode("", 0, out, sizeof(out)), 0);
	assert_int_equal(base64_decode("Zm9v", 4, out, sizeof(out)), 3);
	assert_memory_equal(out, "foo", 4);
	assert_int_equal(base64_decode("Zm8=", 4, out, sizeof(out)), 2);
	assert_int_equal(base64_decode("Zg==", 4, out, sizeof(out)), 1);
	assert_int_equal(base64_decode("Zh==", 4, out, sizeof(out)), -1); /* bits left over */
	assert_int_equal(base64_decode("Zm9=", 4, out, sizeof(out)), -1);
	assert_int_equal(base64_decode("Zg=", 3, out, sizeof(out)), -1);
	assert_int_equal(base64_decode("=Zg=", 4, out, sizeof(out)), -1);
	assert_int_equal(base64_decode("Zg==Zg==", 8, out, sizeof(out)), -1);
	assert_int_equal(base64_decode("Zm9vYmFy", 8, out, 6), -1);
	assert_int_equal(base64_encode((const unsigned char *)"foob", 4, text, sizeof(text)), 8);
	assert_string_equal(text, "Zm9vYg==");
	assert_int_equal(base64_encode((const unsigned char *)"foob", 4, text, 8), -1);

	assert_int_equal(scram_saslname_encode("a,b=c", text, sizeof(text)), 9);
	assert_string_equal(text, "a=2Cb=3Dc");
	assert_int_equal(scram_saslname_encode("a,b", text, 4), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc7677_vector),
	    cmocka_unit_test(test_client_first_edge_cases),
	    cmocka_unit_test(test_client_final_edge_cases),
	    cmocka_unit_test(test_server_messages),
	    cmocka_unit_test(test_base64_and_saslname),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
