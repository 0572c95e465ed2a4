#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/xalloc.h"
#include "net/test_cert.h"
#include "net/tls.h"

struct fixture {
	char *dir;
	char *cert;
	char *key;
	char *cert_b;
	char *key_b;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	f->dir = test_tmpdir();
	if (f->dir == NULL)
		return -1;
	f->cert = xasprintf("%s/cert.pem", f->dir);
	f->key = xasprintf("%s/key.pem", f->dir);
	f->cert_b = xasprintf("%s/b-cert.pem", f->dir);
	f->key_b = xasprintf("%s/b-key.pem", f->dir);
	if (test_cert_write(f->cert, f->key, "mail-a.postern.test") < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	test_tmpdir_remove(f->dir);
	free(f->dir);
	free(f->cert);
	free(f->key);
	free(f->cert_b);
	free(f->key_b);
	free(f);
	return 0;
}

struct result {
	bool ok;
	char cn[128];
	const char *version;
	const char *cipher;
	bool reused;
	SSL_SESSION *session;
};

/* a handshake between two SSL objects over an in-memory BIO pair */
static void handshake(SSL_CTX *server_ctx, SSL_CTX *client_ctx, const char *host,
		      SSL_SESSION *resume, struct result *r)
{
	memset(r, 0, sizeof(*r));
	SSL *server = SSL_new(server_ctx);
	SSL *client = SSL_new(client_ctx);
	assert_non_null(server);
	assert_non_null(client);
	BIO *b1, *b2;
	assert_int_equal(BIO_new_bio_pair(&b1, 0, &b2, 0), 1);
	SSL_set_bio(client, b1, b1);
	SSL_set_bio(server, b2, b2);
	SSL_set_accept_state(server);
	SSL_set_connect_state(client);
	if (host != NULL) {
		SSL_set_tlsext_host_name(client, host);
		SSL_set1_host(client, host);
	}
	if (resume != NULL)
		SSL_set_session(client, resume);

	bool cdone = false, sdone = false, failed = false;
	for (int i = 0; i < 50 && !(cdone && sdone) && !failed; i++) {
		if (!cdone) {
			int ret = SSL_do_handshake(client);
			int err = SSL_get_error(client, ret);
			if (ret == 1)
				cdone = true;
			else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
				failed = true;
		}
		if (!sdone) {
			int ret = SSL_do_handshake(server);
			int err = SSL_get_error(server, ret);
			if (ret == 1)
				sdone = true;
			else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
				failed = true;
		}
	}
	r->ok = cdone && sdone && !failed;
	if (r->ok) {
		X509 *peer = SSL_get1_peer_certificate(client);
		assert_non_null(peer);
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, r->cn,
					  sizeof(r->cn));
		X509_free(peer);
		r->version = SSL_get_version(client);
		r->cipher = SSL_get_cipher_name(client);
		r->reused = SSL_session_reused(client) == 1;
		r->session = SSL_get1_session(client);
	}
	/* a clean shutdown, or OpenSSL marks the session not resumable */
	if (r->ok) {
		SSL_shutdown(client);
		SSL_shutdown(server);
	}
	ERR_clear_error();
	SSL_free(client);
	SSL_free(server);
}

static SSL_CTX *client_ctx(const char *ca, int max_version)
{
	char *error = NULL;
	SSL_CTX *ctx = tls_client_ctx_new(ca != NULL, ca, &error);
	assert_non_null(ctx);
	if (max_version != 0)
		SSL_CTX_set_max_proto_version(ctx, max_version);
	return ctx;
}

/* rewrite a file's mtime well away from now, as a renewal would */
static void bump_mtime(const char *path, int seconds)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	struct timespec ts[2] = {st.st_atim, st.st_mtim};
	ts[0].tv_sec += seconds;
	ts[1].tv_sec += seconds;
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void test_open_and_policy(void **state)
{
	struct fixture *f = *state;
	struct tls_server *tls;
	char *error = NULL;
	assert_int_equal(tls_server_open(f->cert, f->key, &tls, &error), 0);
	SSL_CTX *sctx = tls_server_ctx(tls);
	assert_int_equal(SSL_CTX_get_min_proto_version(sctx), TLS1_2_VERSION);
	uint64_t opts = SSL_CTX_get_options(sctx);
	assert_true((opts & SSL_OP_NO_COMPRESSION) != 0);
	assert_true((opts & SSL_OP_NO_RENEGOTIATION) != 0);
	assert_true((opts & SSL_OP_CIPHER_SERVER_PREFERENCE) != 0);
	assert_true((opts & SSL_OP_NO_TICKET) == 0);

	struct result r;
	SSL_CTX *cctx = client_ctx(f->cert, 0);
	handshake(sctx, cctx, "mail-a.postern.test", NULL, &r);
	assert_true(r.ok);
	assert_string_equal(r.cn, "mail-a.postern.test");
	assert_string_equal(r.version, "TLSv1.3");
	SSL_SESSION_free(r.session);

	/* the verifying client refuses a wrong host name */
	handshake(sctx, cctx, "other.postern.test", NULL, &r);
	assert_false(r.ok);
	SSL_CTX_free(cctx);

	/* TLS 1.2: ECDHE with an AEAD cipher */
	cctx = client_ctx(f->cert, TLS1_2_VERSION);
	handshake(sctx, cctx, "mail-a.postern.test", NULL, &r);
	assert_true(r.ok);
	assert_string_equal(r.version, "TLSv1.2");
	assert_non_null(strstr(r.cipher, "ECDHE"));
	assert_true(strstr(r.cipher, "GCM") != NULL || strstr(r.cipher, "CHACHA20") != NULL);
	SSL_SESSION_free(r.session);
	/* a client offering only RSA key exchange / CBC is refused */
	SSL_CTX_set_cipher_list(cctx, "AES128-SHA:AES256-SHA256:ECDHE-RSA-AES128-SHA");
	handshake(sctx, cctx, "mail-a.postern.test", NULL, &r);
	assert_false(r.ok);
	SSL_CTX_free(cctx);

	/* TLS 1.1 is refused */
	cctx = client_ctx(NULL, TLS1_1_VERSION);
	SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION);
	SSL_CTX_set_security_level(cctx, 0);
	handshake(sctx, cctx, NULL, NULL, &r);
	assert_false(r.ok);
	SSL_CTX_free(cctx);

	tls_server_free(&tls);
	assert_null(tls);
	tls_server_free(&tls);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct tls_server *tls = NULL;
	char *error = NULL;
	char *missing = xasprintf("%s/missing.pem", f->dir);

	assert_int_equal(tls_server_open(missing, f->key, &tls, &error), -1);
	assert_non_null(strstr(error, missing));
	free(error);

	/* a key that does not belong to the certificate */
	assert_int_equal(test_cert_write(f->cert_b, f->key_b, "other.postern.test"), 0);
	assert_int_equal(tls_server_open(f->cert, f->key_b, &tls, &error), -1);
	assert_non_null(strstr(error, "does not match"));
	free(error);
	assert_null(tls);
	free(missing);
}

static void test_reload(void **state)
{
	struct fixture *f = *state;
	struct tls_server *tls;
	char *error = NULL;
	struct result r;
	assert_int_equal(tls_server_open(f->cert, f->key, &tls, &error), 0);
	SSL_CTX *cctx = client_ctx(NULL, TLS1_2_VERSION);

	handshake(tls_server_ctx(tls), cctx, NULL, NULL, &r);
	assert_true(r.ok);
	assert_string_equal(r.cn, "mail-a.postern.test");
	SSL_SESSION *session = r.session;
	assert_int_equal(tls_server_check_reload(tls), 0);
	handshake(tls_server_ctx(tls), cctx, NULL, session, &r);
	assert_true(r.ok);
	assert_true(r.reused);
	SSL_SESSION_free(r.session);

	/* a connection that started before the reload keeps its context */
	SSL_CTX *old_ctx = tls_server_ctx(tls);
	SSL *old_conn = SSL_new(old_ctx);

	assert_int_equal(test_cert_write(f->cert, f->key, "mail-b.postern.test"), 0);
	bump_mtime(f->cert, 10);
	bump_mtime(f->key, 10);
	assert_int_equal(tls_server_check_reload(tls), 1);
	assert_ptr_not_equal(tls_server_ctx(tls), old_ctx);
	assert_int_equal(tls_server_check_reload(tls), 0);

	handshake(tls_server_ctx(tls), cctx, NULL, NULL, &r);
	assert_true(r.ok);
	assert_string_equal(r.cn, "mail-b.postern.test");
	SSL_SESSION_free(r.session);
	assert_ptr_equal(SSL_get_SSL_CTX(old_conn), old_ctx);
	SSL_free(old_conn);

	/* session tickets issued before the reload still resume */
	handshake(tls_server_ctx(tls), cctx, NULL, session, &r);
	assert_true(r.ok);
	assert_true(r.reused);
	SSL_SESSION_free(r.session);
	SSL_SESSION_free(session);

	/* a bad new pair is refused once and the old one stays in use */
	SSL_CTX *good = tls_server_ctx(tls);
	assert_int_equal(test_cert_write(f->cert_b, f->key_b, "mail-c.postern.test"), 0);
	assert_int_equal(rename(f->cert_b, f->cert), 0);
	bump_mtime(f->cert, 20);
	assert_int_equal(tls_server_check_reload(tls), -1);
	assert_ptr_equal(tls_server_ctx(tls), good);
	assert_int_equal(tls_server_check_reload(tls), 0);
	handshake(tls_server_ctx(tls), cctx, NULL, NULL, &r);
	assert_true(r.ok);
	assert_string_equal(r.cn, "mail-b.postern.test");
	SSL_SESSION_free(r.session);

	/* the key follows: the pair matches again and is loaded */
	assert_int_equal(rename(f->key_b, f->key), 0);
	bump_mtime(f->key, 30);
	assert_int_equal(tls_server_check_reload(tls), 1);
	handshake(tls_server_ctx(tls), cctx, NULL, NULL, &r);
	assert_true(r.ok);
	assert_string_equal(r.cn, "mail-c.postern.test");
	SSL_SESSION_free(r.session);

	SSL_CTX_free(cctx);
	tls_server_free(&tls);
}

static void test_maybe_reload_rate(void **state)
{
	struct fixture *f = *state;
	struct tls_server *tls;
	char *error = NULL;
	assert_int_equal(test_cert_write(f->cert, f->key, "mail-d.postern.test"), 0);
	assert_int_equal(tls_server_open(f->cert, f->key, &tls, &error), 0);
	time_t now = time(NULL) + 100;
	assert_int_equal(tls_server_maybe_reload(tls, now), 0);

	assert_int_equal(test_cert_write(f->cert, f->key, "mail-e.postern.test"), 0);
	bump_mtime(f->cert, 40);
	bump_mtime(f->key, 40);
	/* checked at most once a second */
	assert_int_equal(tls_server_maybe_reload(tls, now), 0);
	assert_int_equal(tls_server_maybe_reload(tls, now + 1), 1);
	assert_int_equal(tls_server_maybe_reload(tls, now + 2), 0);
	tls_server_free(&tls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_and_policy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_maybe_reload_rate, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
