#ifndef POSTERN_TLS_SELFSIGNED_H
#define POSTERN_TLS_SELFSIGNED_H

/* The self-signed certificate that `posternctl init` gives a new instance,
 * so that TLS works from the first start. Administrators replace it with a
 * real one (settings certificate-file / certificate-key-file). */

/* Days the certificate is valid. */
#define TLS_SELFSIGNED_DAYS 3650

/* Make an EC P-256 key and an X.509 v3 certificate signed with it (SHA-256,
 * random serial, valid TLS_SELFSIGNED_DAYS from now, CN = hostname,
 * subjectAltName DNS:hostname, DNS:localhost, IP:127.0.0.1, IP:::1,
 * serverAuth) and write both as PEM. Neither file may exist; the key is
 * created mode 0600, the certificate 0644. Returns 0, or -1 with *error_r
 * (malloc'ed) and neither file left behind. */
int tls_selfsigned_create(const char *cert_path, const char *key_path, const char *hostname,
			  char **error_r);

#endif
