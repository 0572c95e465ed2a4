#ifndef POSTERN_MAIL_HEADER_H
#define POSTERN_MAIL_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/mime_parser.h"

/* RFC 5322 header blocks, MIME parameters (RFC 2045, RFC 2231), encoded
 * words (RFC 2047) and charset conversion to UTF-8 (iconv). Every function
 * is tolerant: damaged input gives a best-effort result, never a failure.
 * Returned strings are malloc'ed and owned by the caller. */

/* Iterate the fields of a header block (bytes up to the empty line, which
 * may be absent). *pos starts at 0. Returns 1 with the field's name and
 * its unfolded value (CRLF/LF of continuation lines removed, leading and
 * trailing blanks trimmed, NUL bytes dropped), 0 at the end. Lines without
 * a colon are skipped. */
int mail_header_next(const char *block, size_t len, size_t *pos, char **name_r, char **value_r);

/* The first field called name (ASCII case-insensitive), unfolded; NULL if
 * absent. */
char *mail_header_get(const char *block, size_t len, const char *name);

/* Parse "type/subtype; a=b; c=\"d\"" (comments skipped). type and subtype
 * are NULL when absent or malformed; params as written (unquoted). */
void mail_content_type_parse(const char *value, char **type_r, char **subtype_r,
			     struct mime_param **params_r, size_t *count_r);
/* Parse "token; a=b..." (Content-Disposition): the token and parameters. */
void mail_disposition_parse(const char *value, char **type_r, struct mime_param **params_r,
			    size_t *count_r);
void mail_params_free(struct mime_param **params, size_t count);

/* The value of parameter name with RFC 2231 applied: continuations
 * (name*0, name*1*...) joined, %XX decoded, charset converted to UTF-8;
 * a plain name=value is returned as is (RFC 2047 words in it decoded, as
 * common software writes them). NULL when absent. */
char *mail_param_decode(const struct mime_param *params, size_t count, const char *name);

/* Decode RFC 2047 encoded words in an unstructured value to UTF-8 (blanks
 * between adjacent encoded words dropped). Bytes outside encoded words
 * that are not valid UTF-8 are taken as ISO-8859-1. */
char *mail_decode_words(const char *value);

/* Convert len bytes in charset to UTF-8 (NUL-terminated, *out_len_r set
 * when not NULL). Unknown charsets are taken as UTF-8 if valid, else
 * ISO-8859-1; invalid sequences become U+FFFD. Never fails. */
char *mail_charset_to_utf8(const char *charset, const void *data, size_t len, size_t *out_len_r);

/* True when the bytes are valid UTF-8. */
bool mail_utf8_valid(const void *data, size_t len);

#endif
