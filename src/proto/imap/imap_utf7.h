#ifndef POSTERN_IMAP_UTF7_H
#define POSTERN_IMAP_UTF7_H

#include <stdbool.h>
#include <stddef.h>

/* Mailbox name encodings: modified UTF-7 (RFC 3501 5.1.3, the wire form
 * unless UTF8=ACCEPT is enabled) and UTF-8 (RFC 6855 / RFC 9051).
 *
 * Decoding is strict: only the canonical encoding of a name is accepted
 * (what imap_utf7_encode() would produce), so one name has one wire form.
 * Refused: bytes outside 0x20..0x7e, an unterminated or empty "&...-",
 * characters outside the modified base64 alphabet, non-zero padding bits or
 * a partial UTF-16 unit, printable ASCII encoded in base64, two adjacent
 * base64 runs, unpaired surrogates and U+0000.
 *
 * Output strings are NUL-terminated; they come from arena when one is given
 * (imap_arena.h), else from malloc (the caller frees). */

/* decoded or encoded names longer than this are refused */
#define IMAP_UTF7_MAX_NAME 4096

struct imap_arena;

/* Modified UTF-7 -> UTF-8. Returns 1 with *out_r, or -1 with *error_r
 * (static text). */
int imap_utf7_decode(const char *in, size_t len, struct imap_arena *arena, char **out_r,
		     const char **error_r);
/* UTF-8 -> modified UTF-7. Returns 1 with *out_r, or -1 with *error_r when
 * in is not valid UTF-8 (overlong forms, surrogates, > U+10FFFF) or holds
 * U+0000. */
int imap_utf7_encode(const char *in, size_t len, struct imap_arena *arena, char **out_r,
		     const char **error_r);
/* true when in is valid modified UTF-7 in canonical form. */
bool imap_utf7_valid(const char *in, size_t len);

/* true when in[0..len) is valid UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). NUL bytes are valid UTF-8. */
bool imap_utf8_valid(const char *in, size_t len);
/* true when in is acceptable as a UTF-8 mailbox name (UTF8=ACCEPT): valid
 * UTF-8, not empty, no control characters (U+0000..U+001F, U+007F,
 * U+0080..U+009F), at most IMAP_UTF7_MAX_NAME bytes. */
bool imap_utf8_mailbox_valid(const char *in, size_t len);

#endif
