#include "net/test_cert.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/xalloc.h"

static int test_cert_add_san(X509 *x509, const char *cn)
{
	char san[300];
	snprintf(san, sizeof(san), "DNS:%s", cn);
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x509, x509, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (ext == NULL)
		return -1;
	int ok = X509_add_ext(x509, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

int test_cert_write(const char *cert_path, const char *key_path, const char *cn)
{
	int ret = -1;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x509 = X509_new();
	FILE *f = NULL;
	if (key == NULL || x509 == NULL)
		goto out;
	static long serial = 1;
	X509_set_version(x509, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x509), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x509), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x509), 86400);
	X509_set_pubkey(x509, key);
	X509_NAME *name = X509_get_subject_name(x509);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x509, name);
	if (test_cert_add_san(x509, cn) < 0)
		goto out;
	if (X509_sign(x509, key, EVP_sha256()) == 0)
		goto out;

	/* write to a temporary name and rename, as a certificate tool would */
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", cert_path);
	if ((f = fopen(tmp, "w")) == NULL || PEM_write_X509(f, x509) != 1)
		goto out;
	fclose(f);
	f = NULL;
	if (rename(tmp, cert_path) < 0)
		goto out;
	snprintf(tmp, sizeof(tmp), "%s.tmp", key_path);
	if ((f = fopen(tmp, "w")) == NULL ||
	    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	fclose(f);
	f = NULL;
	if (rename(tmp, key_path) < 0)
		goto out;
	ret = 0;
out:
	if (f != NULL)
		fclose(f);
	X509_free(x509);
	EVP_PKEY_free(key);
	return ret;
}

char *test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *path = xasprintf("%s/postern-test-XXXXXX", base != NULL ? base : "/tmp");
	if (mkdtemp(path) == NULL) {
		free(path);
		return NULL;
	}
	return path;
}

void test_tmpdir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			char *p = xasprintf("%s/%s", dir, de->d_name);
			unlink(p);
			free(p);
		}
		closedir(d);
	}
	rmdir(dir);
}
