#ifndef POSTERN_PASSWORD_H
#define POSTERN_PASSWORD_H

/* Password hashes in crypt(3) form, through libxcrypt. New hashes are
 * yescrypt ("$y$") at libxcrypt's default cost; SHA-512-crypt ("$6$") and
 * bcrypt ("$2b$", "$2y$", "$2a$") and scrypt ("$7$") hashes imported from
 * other systems verify too. Methods libxcrypt calls legacy (DES, MD5-crypt,
 * SHA-256-crypt, ...) are refused at import. */

/* Longest password accepted, in bytes (libxcrypt's own limit is 511). */
#define PASSWORD_MAX_LENGTH 511

/* Hash a password with a fresh random salt. Returns 0 with *hash_r
 * (malloc'ed), or -1 with *error_r (malloc'ed): empty or too long password,
 * or libcrypt failed. */
int password_hash(const char *password, char **hash_r, char **error_r);

/* Verify a password against a stored hash, comparing in constant time.
 * Returns 1 on a match, 0 on a mismatch, -1 when hash is not a usable
 * crypt hash (a NULL hash is -1 too). */
int password_verify(const char *password, const char *hash);

/* Check that hash is a complete crypt hash of a method libxcrypt supports
 * and postern accepts. Returns 0, or -1 with *error_r (malloc'ed) saying
 * what is wrong and which forms are accepted. */
int password_hash_check(const char *hash, char **error_r);

/* The scheme's name for display: "yescrypt", "gost-yescrypt", "scrypt",
 * "sha512-crypt", "sha256-crypt", "bcrypt", or "unknown". Never NULL. */
const char *password_scheme(const char *hash);

#endif
