#include "directory/tls_selfsigned.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/xalloc.h"

/* The text of the newest OpenSSL error, or fallback. */
static char *tls_selfsigned_error(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];
	if (e == 0)
		snprintf(buf, sizeof(buf), "unknown error");
	else
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return xasprintf("%s: %s", what, buf);
}

static int tls_selfsigned_add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	int ret = X509_add_ext(cert, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return ret;
}

static X509 *tls_selfsigned_build(EVP_PKEY *key, const char *hostname, char **error_r)
{
	X509 *cert = X509_new();
	BIGNUM *serial = BN_new();
	unsigned char rnd[16];
	if (cert == NULL || serial == NULL || RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto fail;
	rnd[0] &= 0x7f; /* a positive serial */
	if (BN_bin2bn(rnd, sizeof(rnd), serial) == NULL ||
	    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) == NULL)
		goto fail;
	if (X509_set_version(cert, 2) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(cert), (long)TLS_SELFSIGNED_DAYS * 86400) == NULL ||
	    X509_set_pubkey(cert, key) != 1)
		goto fail;
	X509_NAME *name = X509_get_subject_name(cert);
	if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"postern",
				       -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname,
				       -1, -1, 0) != 1 ||
	    X509_set_issuer_name(cert, name) != 1)
		goto fail;
	char *san = strcmp(hostname, "localhost") == 0
			? xstrdup("DNS:localhost,IP:127.0.0.1,IP:::1")
			: xasprintf("DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1", hostname);
	int ret = tls_selfsigned_add_ext(cert, NID_subject_alt_name, san);
	free(san);
	if (ret < 0 ||
	    tls_selfsigned_add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    tls_selfsigned_add_ext(cert, NID_key_usage, "critical,digitalSignature") < 0 ||
	    tls_selfsigned_add_ext(cert, NID_ext_key_usage, "serverAuth") < 0 ||
	    tls_selfsigned_add_ext(cert, NID_subject_key_identifier, "hash") < 0)
		goto fail;
	if (X509_sign(cert, key, EVP_sha256()) == 0)
		goto fail;
	BN_free(serial);
	return cert;
fail:
	*error_r = tls_selfsigned_error("making the self-signed certificate");
	BN_free(serial);
	X509_free(cert);
	return NULL;
}

/* Open path for writing; it must not exist. */
static FILE *tls_selfsigned_fopen(const char *path, mode_t mode, char **error_r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		*error_r = xasprintf("%s: cannot create: %s", path, strerror(errno));
		return NULL;
	}
	if (fchmod(fd, mode) < 0) {
		*error_r = xasprintf("%s: chmod: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return NULL;
	}
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
	}
	return f;
}

/* Flush, fsync and close; -1 with *error_r on any failure. */
static int tls_selfsigned_fclose(FILE *f, const char *path, char **error_r)
{
	int ret = 0;
	if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
		*error_r = xasprintf("%s: write: %s", path, strerror(errno));
		ret = -1;
	}
	if (fclose(f) != 0 && ret == 0) {
		*error_r = xasprintf("%s: close: %s", path, strerror(errno));
		ret = -1;
	}
	return ret;
}

int tls_selfsigned_create(const char *cert_path, const char *key_path, const char *hostname,
			  char **error_r)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (key == NULL) {
		*error_r = tls_selfsigned_error("making an EC P-256 key");
		return -1;
	}
	X509 *cert = tls_selfsigned_build(key, hostname, error_r);
	if (cert == NULL) {
		EVP_PKEY_free(key);
		return -1;
	}
	int ret = -1;
	bool key_written = false;
	FILE *f = tls_selfsigned_fopen(key_path, 0600, error_r);
	if (f == NULL)
		goto out;
	if (PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1) {
		*error_r = tls_selfsigned_error(key_path);
		fclose(f);
		unlink(key_path);
		goto out;
	}
	if (tls_selfsigned_fclose(f, key_path, error_r) < 0) {
		unlink(key_path);
		goto out;
	}
	key_written = true;
	f = tls_selfsigned_fopen(cert_path, 0644, error_r);
	if (f == NULL)
		goto out;
	if (PEM_write_X509(f, cert) != 1) {
		*error_r = tls_selfsigned_error(cert_path);
		fclose(f);
		unlink(cert_path);
		goto out;
	}
	if (tls_selfsigned_fclose(f, cert_path, error_r) < 0) {
		unlink(cert_path);
		goto out;
	}
	ret = 0;
out:
	if (ret < 0 && key_written)
		unlink(key_path);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ret;
}
