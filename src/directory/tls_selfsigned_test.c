#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "directory/tls_selfsigned.h"

static char tmpdir[64];
static char cert_path[128], key_path[128];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	strcpy(tmpdir, "/tmp/postern-tls-test-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(cert_path, sizeof(cert_path), "%s/server.crt", tmpdir);
	snprintf(key_path, sizeof(key_path), "%s/server.key", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void test_create(void **state)
{
	char *error = NULL;
	if (tls_selfsigned_create(cert_path, key_path, "mail.example.com", &error) != 0)
		fail_msg("create: %s", error);
	struct stat st;
	assert_int_equal(stat(key_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(cert_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	FILE *f = fopen(cert_path, "r");
	assert_non_null(f);
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(cert);
	f = fopen(key_path, "r");
	assert_non_null(f);
	EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(key);

	assert_int_equal(X509_get_version(cert), 2);
	assert_int_equal(X509_check_private_key(cert, key), 1);
	assert_int_equal(X509_verify(cert, key), 1);
	assert_int_equal(X509_check_host(cert, "mail.example.com", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(cert, "other.example.com", 0, 0, NULL), 0);
	assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(cert, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(cert, "10.0.0.1", 0), 0);
	assert_int_equal(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
	assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);

	/* the subject's CN is the host name */
	char cn[256];
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
					      sizeof(cn)) > 0);
	assert_string_equal(cn, "mail.example.com");

	/* valid now and for about ten years */
	int days, secs;
	assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)), 1);
	assert_true(days >= TLS_SELFSIGNED_DAYS - 1 && days <= TLS_SELFSIGNED_DAYS);
	assert_true(X509_cmp_current_time(X509_get0_notBefore(cert)) < 0);

	/* the SAN lists exactly four names */
	GENERAL_NAMES *san = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	assert_non_null(san);
	assert_int_equal(sk_GENERAL_NAME_num(san), 4);
	GENERAL_NAMES_free(san);

	X509_free(cert);
	EVP_PKEY_free(key);

	/* the files exist now: a second create refuses and keeps them */
	assert_int_equal(tls_selfsigned_create(cert_path, key_path, "mail.example.com", &error),
			 -1);
	assert_non_null(strstr(error, "cannot create"));
	free(error);
	assert_int_equal(access(cert_path, F_OK), 0);
	assert_int_equal(access(key_path, F_OK), 0);
}

static void test_localhost_and_failure(void **state)
{
	char *error = NULL;
	assert_int_equal(tls_selfsigned_create(cert_path, key_path, "localhost", &error), 0);
	FILE *f = fopen(cert_path, "r");
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	GENERAL_NAMES *san = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	assert_int_equal(sk_GENERAL_NAME_num(san), 3);
	GENERAL_NAMES_free(san);
	X509_free(cert);
	unlink(cert_path);
	unlink(key_path);

	/* the certificate cannot be written: the key is not left behind */
	char bad_cert[160];
	snprintf(bad_cert, sizeof(bad_cert), "%s/missing/server.crt", tmpdir);
	assert_int_equal(tls_selfsigned_create(bad_cert, key_path, "mx", &error), -1);
	assert_non_null(strstr(error, bad_cert));
	free(error);
	assert_int_equal(access(key_path, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_localhost_and_failure, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
