#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stdbool.h>
#include <time.h>

#include <openssl/ssl.h>

/* Server and client TLS contexts.
 *
 * Server policy: TLS 1.2 minimum; for TLS 1.2 only ECDHE key exchange with
 * AEAD ciphers (AES-GCM, ChaCha20-Poly1305), for TLS 1.3 the OpenSSL
 * defaults; the server's cipher order wins; no compression; no
 * renegotiation; session tickets on (their keys survive a certificate
 * reload); a peer closing without close_notify counts as a clean EOF (mail
 * protocols frame their own data, so truncation is not silent).
 *
 * Certificate reload: tls_server_check_reload() stats both files (mtime,
 * size, inode, device) and, when either changed, loads the new pair into a
 * fresh SSL_CTX. Only if it loads and the key matches the certificate is it
 * swapped in. Connections already open keep the SSL_CTX they started with
 * (SSL_CTX is reference-counted by OpenSSL); new connections get the new
 * one from tls_server_ctx(). A bad pair is logged once and the old one is
 * kept; the next change of either file is tried again. */

struct tls_server;

/* Load cert_path (PEM chain: leaf first) and key_path (PEM). Returns 0 with
 * *tls_r, or -1 with *error_r (malloc'ed). */
int tls_server_open(const char *cert_path, const char *key_path, struct tls_server **tls_r,
		    char **error_r);
struct worker;
/* Load the pair a worker's settings name (certificate-file and
 * certificate-key-file, relative to the data dir unless absolute) and put
 * it in *tls, freeing the context it replaces. On failure *tls is left as
 * it was (the old pair stays in use). Returns 0, or -1 with *error_r
 * (malloc'ed). */
int tls_server_load_settings(struct worker *w, struct tls_server **tls, char **error_r);
/* Free the server context; connections holding its SSL_CTX keep working.
 * Sets *tls to NULL. */
void tls_server_free(struct tls_server **tls);

/* The current SSL_CTX for new connections. Borrowed: valid until the next
 * reload; SSL_new() takes its own reference. */
SSL_CTX *tls_server_ctx(struct tls_server *tls);

/* Check the files now. Returns 1 when a new pair was loaded, 0 when nothing
 * changed, -1 when the files changed but the new pair is unusable (logged;
 * the old pair stays in use). */
int tls_server_check_reload(struct tls_server *tls);
/* Same, but does nothing (returns 0) when the last check was less than a
 * second before now. Call it freely, e.g. on every accepted connection. */
int tls_server_maybe_reload(struct tls_server *tls, time_t now);

/* A client context for front end -> back end and relay connections: TLS 1.2
 * minimum, no compression or renegotiation. With verify, the peer's chain
 * must verify against ca_file (PEM), or the system's trust store when
 * ca_file is NULL; the host name is checked per connection (conn does it
 * from conn_settings.tls_server_name). Returns the SSL_CTX (free with
 * SSL_CTX_free) or NULL with *error_r (malloc'ed). */
SSL_CTX *tls_client_ctx_new(bool verify, const char *ca_file, char **error_r);

/* The OpenSSL error queue as one line of text ("" when empty), emptying
 * the queue. Returns buf. */
const char *tls_error_text(char *buf, size_t size);

#endif
