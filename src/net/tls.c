#include "net/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/log.h"
#include "lib/worker.h"
#include "lib/xalloc.h"

/* TLS 1.2 suites: forward secrecy and AEAD only */
#define TLS_CIPHERS_12                                                                             \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define TLS_SESSION_ID_CONTEXT "postern"
#define TLS_TICKET_KEYS_LEN    80

struct tls_file_sig {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct tls_server {
	char *cert_path;
	char *key_path;
	SSL_CTX *ctx;
	struct tls_file_sig cert_sig; /* of the last pair tried */
	struct tls_file_sig key_sig;
	time_t last_check;
};

const char *tls_error_text(char *buf, size_t size)
{
	size_t pos = 0;
	unsigned long err;
	buf[0] = '\0';
	while ((err = ERR_get_error()) != 0) {
		if (pos + 3 >= size)
			continue;
		if (pos > 0) {
			buf[pos++] = ';';
			buf[pos++] = ' ';
			buf[pos] = '\0';
		}
		ERR_error_string_n(err, buf + pos, size - pos);
		pos += strlen(buf + pos);
	}
	return buf;
}

static char *tls_error(const char *what, const char *path)
{
	char text[512];
	tls_error_text(text, sizeof(text));
	return xasprintf("%s %s: %s", what, path, text[0] != '\0' ? text : "unknown error");
}

static void tls_file_sig_get(const char *path, struct tls_file_sig *sig_r)
{
	struct stat st;
	memset(sig_r, 0, sizeof(*sig_r));
	if (stat(path, &st) < 0)
		return;
	sig_r->exists = true;
	sig_r->dev = st.st_dev;
	sig_r->ino = st.st_ino;
	sig_r->size = st.st_size;
	sig_r->mtime = st.st_mtim;
}

static bool tls_file_sig_equal(const struct tls_file_sig *a, const struct tls_file_sig *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static EVP_PKEY *tls_read_key(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		ERR_raise_data(ERR_LIB_SYS, errno, "fopen");
		return NULL;
	}
	EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return key;
}

static void tls_ctx_common(SSL_CTX *ctx)
{
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

static int tls_server_ctx_build(const char *cert_path, const char *key_path, SSL_CTX **ctx_r,
				char **error_r)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error_r = tls_error("cannot create TLS context for", cert_path);
		return -1;
	}
	tls_ctx_common(ctx);
	/* OpenSSL 3 refuses client-initiated renegotiation unless
	 * SSL_OP_ALLOW_CLIENT_RENEGOTIATION; SSL_OP_NO_RENEGOTIATION covers
	 * the rest */
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1) {
		*error_r = tls_error("bad cipher list for", cert_path);
		SSL_CTX_free(ctx);
		return -1;
	}
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
				       sizeof(TLS_SESSION_ID_CONTEXT) - 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		*error_r = tls_error("cannot load certificate chain from", cert_path);
		SSL_CTX_free(ctx);
		return -1;
	}
	EVP_PKEY *key = tls_read_key(key_path);
	if (key == NULL) {
		*error_r = tls_error("cannot load private key from", key_path);
		SSL_CTX_free(ctx);
		return -1;
	}
	if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) != 1) {
		ERR_clear_error();
		*error_r =
		    xasprintf("private key %s does not match certificate %s", key_path, cert_path);
		EVP_PKEY_free(key);
		SSL_CTX_free(ctx);
		return -1;
	}
	int ok = SSL_CTX_use_PrivateKey(ctx, key);
	EVP_PKEY_free(key);
	if (ok != 1) {
		*error_r = tls_error("cannot use private key from", key_path);
		SSL_CTX_free(ctx);
		return -1;
	}
	*ctx_r = ctx;
	return 0;
}

int tls_server_open(const char *cert_path, const char *key_path, struct tls_server **tls_r,
		    char **error_r)
{
	struct tls_file_sig cert_sig, key_sig;
	/* stat first: a change between stat and load is then seen next time */
	tls_file_sig_get(cert_path, &cert_sig);
	tls_file_sig_get(key_path, &key_sig);
	SSL_CTX *ctx;
	if (tls_server_ctx_build(cert_path, key_path, &ctx, error_r) < 0)
		return -1;
	struct tls_server *tls = xcalloc(1, sizeof(*tls));
	tls->cert_path = xstrdup(cert_path);
	tls->key_path = xstrdup(key_path);
	tls->ctx = ctx;
	tls->cert_sig = cert_sig;
	tls->key_sig = key_sig;
	tls->last_check = time(NULL);
	*tls_r = tls;
	return 0;
}

int tls_server_load_settings(struct worker *w, struct tls_server **tls, char **error_r)
{
	char *cert = worker_setting_path(w, "certificate-file", "tls/server.crt");
	char *key = worker_setting_path(w, "certificate-key-file", "tls/server.key");
	struct tls_server *loaded = NULL;
	int r = tls_server_open(cert, key, &loaded, error_r);
	free(cert);
	free(key);
	if (r < 0)
		return -1;
	tls_server_free(tls);
	*tls = loaded;
	return 0;
}

void tls_server_free(struct tls_server **tlsp)
{
	struct tls_server *tls = *tlsp;
	if (tls == NULL)
		return;
	*tlsp = NULL;
	SSL_CTX_free(tls->ctx);
	free(tls->cert_path);
	free(tls->key_path);
	free(tls);
}

SSL_CTX *tls_server_ctx(struct tls_server *tls)
{
	return tls->ctx;
}

int tls_server_check_reload(struct tls_server *tls)
{
	struct tls_file_sig cert_sig, key_sig;
	tls_file_sig_get(tls->cert_path, &cert_sig);
	tls_file_sig_get(tls->key_path, &key_sig);
	if (tls_file_sig_equal(&cert_sig, &tls->cert_sig) &&
	    tls_file_sig_equal(&key_sig, &tls->key_sig))
		return 0;
	/* remember what was tried, so a bad pair is reported once, not every
	 * second; a half-written pair is retried when the other file lands */
	tls->cert_sig = cert_sig;
	tls->key_sig = key_sig;

	SSL_CTX *ctx;
	char *error;
	if (tls_server_ctx_build(tls->cert_path, tls->key_path, &ctx, &error) < 0) {
		log_warn("TLS certificate changed but not reloaded (keeping the old one): %s",
			 error);
		free(error);
		return -1;
	}
	unsigned char keys[TLS_TICKET_KEYS_LEN];
	if (SSL_CTX_get_tlsext_ticket_keys(tls->ctx, keys, sizeof(keys)) == 1)
		SSL_CTX_set_tlsext_ticket_keys(ctx, keys, sizeof(keys));
	OPENSSL_cleanse(keys, sizeof(keys));
	SSL_CTX_free(tls->ctx);
	tls->ctx = ctx;
	log_info("TLS certificate reloaded from %s", tls->cert_path);
	return 1;
}

int tls_server_maybe_reload(struct tls_server *tls, time_t now)
{
	if (now - tls->last_check < 1 && now >= tls->last_check)
		return 0;
	tls->last_check = now;
	return tls_server_check_reload(tls);
}

SSL_CTX *tls_client_ctx_new(bool verify, const char *ca_file, char **error_r)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		*error_r = tls_error("cannot create TLS client context", "");
		return NULL;
	}
	tls_ctx_common(ctx);
	if (!verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
				 : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		*error_r = tls_error("cannot load trusted certificates from",
				     ca_file != NULL ? ca_file : "the system store");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}
