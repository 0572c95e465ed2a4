#ifndef POSTERN_MAIL_IMAP_H
#define POSTERN_MAIL_IMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/mime_parser.h"

/* IMAP4rev1 (RFC 3501) renderings of a parsed message. Strings are quoted
 * when they are 7-bit without CR, LF or NUL (and not too long), else sent
 * as literals ("{n}\r\n" + bytes); absent values are NIL. Results are
 * malloc'ed, NUL-terminated. */

/* ENVELOPE of a message root (the top part, or the child of a
 * message/rfc822 part). Sender and Reply-To default to From. */
char *mail_imap_envelope(const struct mime_part *message);

/* BODYSTRUCTURE (extended = true) or BODY (extended = false) of a message
 * root. A multipart without parts shows one empty text/plain part. */
char *mail_imap_bodystructure(const struct mime_part *message, bool extended);

/* Append s as an IMAP string (quoted, literal, or NIL when s is NULL). */
void mail_imap_append_string(char **buf, size_t *len, const char *s);

/* Every addressable section of a message, in order:
 *   ("", root, true)        the whole message (HEADER, TEXT)
 *   ("1", part, false)      a part: its MIME header and body
 *   ("2", rfc822, false) and ("2", embedded root, true) for a message/rfc822
 * A non-multipart message's body is section "1" (of itself). */
typedef void mail_imap_section_cb(void *ctx, const char *section, const struct mime_part *part,
				  bool is_message);
void mail_imap_sections(const struct mime_part *root, mail_imap_section_cb *cb, void *ctx);

#endif
