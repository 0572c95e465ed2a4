#ifndef POSTERN_MAIL_DECODE_H
#define POSTERN_MAIL_DECODE_H

#include <stdbool.h>
#include <stddef.h>

/* Streaming Content-Transfer-Encoding decoders: fed any split of the input,
 * they produce the same output. Damage (bad characters, truncated groups,
 * bad escapes) is skipped or passed through, never fatal; `damaged` tells. */

enum mail_encoding { MAIL_ENC_IDENTITY, MAIL_ENC_BASE64, MAIL_ENC_QP };

struct mail_decoder {
	enum mail_encoding enc;
	unsigned char pend[4];
	unsigned npend;
	bool damaged;
};

/* Encoding from a Content-Transfer-Encoding value (NULL: identity). */
enum mail_encoding mail_encoding_parse(const char *value);
void mail_decoder_init(struct mail_decoder *dec, enum mail_encoding enc);
/* Decode len bytes; output goes to out, which must hold at least len + 4
 * bytes. Returns the number of bytes written. */
size_t mail_decoder_feed(struct mail_decoder *dec, const void *data, size_t len, void *out);
/* Flush what is pending at the end of input (up to 4 bytes into out). */
size_t mail_decoder_finish(struct mail_decoder *dec, void *out);

/* Whole-buffer helpers; the result is malloc'ed and NUL-terminated. */
char *mail_base64_decode(const void *data, size_t len, size_t *out_len_r);
char *mail_qp_decode(const void *data, size_t len, bool header_mode, size_t *out_len_r);

#endif
