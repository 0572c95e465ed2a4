#ifndef POSTERN_BASE64_H
#define POSTERN_BASE64_H

#include <stddef.h>

/* Base64 (RFC 4648 section 4, the standard alphabet with padding), as SASL
 * uses it. */

/* Strict decoding: padding required, no spaces or line breaks, no bits left
 * over in the last character. Returns the decoded length, or -1 on bad
 * input or when the result and a terminating NUL do not fit out_size (out
 * is NUL-terminated after the data). */
long base64_decode(const char *in, size_t in_len, unsigned char *out, size_t out_size);

/* Encode len bytes into out, NUL-terminated. Returns the encoded length, or
 * -1 when it does not fit out_size. */
long base64_encode(const unsigned char *in, size_t len, char *out, size_t out_size);

/* Encoded length of len bytes, without the NUL. */
#define BASE64_ENCODED_LEN(len) (((len) + 2) / 3 * 4)

#endif
