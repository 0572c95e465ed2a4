#ifndef POSTERN_TEST_CERT_H
#define POSTERN_TEST_CERT_H

/* Test-only helpers (linked into the unit tests, never into a program). */

/* Write a fresh self-signed certificate (EC P-256, CN and DNS name cn,
 * valid for a day) to cert_path and its key to key_path, both PEM.
 * Returns 0 or -1. */
int test_cert_write(const char *cert_path, const char *key_path, const char *cn);

/* Make a private temporary directory; returns its malloc'ed path. */
char *test_tmpdir(void);
/* Remove the files in dir (one level) and dir itself. */
void test_tmpdir_remove(const char *dir);

#endif
