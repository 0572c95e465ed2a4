#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "mail/mail_decode.h"

enum mail_encoding mail_encoding_parse(const char *value)
{
	if (value == NULL)
		return MAIL_ENC_IDENTITY;
	while (*value == ' ' || *value == '\t')
		value++;
	if (strncasecmp(value, "base64", 6) == 0)
		return MAIL_ENC_BASE64;
	if (strncasecmp(value, "quoted-printable", 16) == 0)
		return MAIL_ENC_QP;
	return MAIL_ENC_IDENTITY;
}

void mail_decoder_init(struct mail_decoder *dec, enum mail_encoding enc)
{
	memset(dec, 0, sizeof(*dec));
	dec->enc = enc;
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static size_t b64_group(struct mail_decoder *dec, unsigned char *o)
{
	/* pend holds 4 sextets (or fewer at the end) */
	unsigned n = dec->npend;
	size_t w = 0;
	if (n >= 2)
		o[w++] = (unsigned char)((dec->pend[0] << 2) | (dec->pend[1] >> 4));
	if (n >= 3)
		o[w++] = (unsigned char)((dec->pend[1] << 4) | (dec->pend[2] >> 2));
	if (n >= 4)
		o[w++] = (unsigned char)((dec->pend[2] << 6) | dec->pend[3]);
	dec->npend = 0;
	return w;
}

size_t mail_decoder_feed(struct mail_decoder *dec, const void *data, size_t len, void *out)
{
	const unsigned char *s = data;
	unsigned char *o = out;
	size_t w = 0;
	switch (dec->enc) {
	case MAIL_ENC_IDENTITY:
		memcpy(o, s, len);
		return len;
	case MAIL_ENC_BASE64:
		for (size_t i = 0; i < len; i++) {
			int v = b64val(s[i]);
			if (v < 0) {
				if (s[i] == '=') {
					if (dec->npend >= 2)
						w += b64_group(dec, o + w);
					else
						dec->npend = 0;
				} else if (s[i] != '\r' && s[i] != '\n' && s[i] != ' ' &&
					   s[i] != '\t') {
					dec->damaged = true;
				}
				continue;
			}
			dec->pend[dec->npend++] = (unsigned char)v;
			if (dec->npend == 4)
				w += b64_group(dec, o + w);
		}
		return w;
	case MAIL_ENC_QP:
		/* pend holds what follows an unfinished '=' (or trailing blanks
		 * are not special: they are passed on) */
		for (size_t i = 0; i < len; i++) {
			unsigned char c = s[i];
			if (dec->npend > 0) {
				dec->pend[dec->npend++] = c;
				if (dec->npend == 2 && (c == '\n')) {
					dec->npend = 0; /* soft line break "=\n" */
				} else if (dec->npend == 2 && c == '\r') {
					/* wait for the LF */
				} else if (dec->npend == 3 && dec->pend[1] == '\r') {
					dec->npend = 0;
					if (c != '\n') {
						dec->damaged = true;
						i--; /* reprocess c */
					}
				} else if (dec->npend == 3) {
					int h = hexval(dec->pend[1]), l = hexval(dec->pend[2]);
					if (h >= 0 && l >= 0) {
						o[w++] = (unsigned char)(h * 16 + l);
					} else {
						dec->damaged = true;
						memcpy(o + w, dec->pend, 3);
						w += 3;
					}
					dec->npend = 0;
				}
				continue;
			}
			if (c == '=') {
				dec->pend[0] = c;
				dec->npend = 1;
			} else {
				o[w++] = c;
			}
		}
		return w;
	}
	return 0;
}

size_t mail_decoder_finish(struct mail_decoder *dec, void *out)
{
	size_t w = 0;
	if (dec->enc == MAIL_ENC_BASE64 && dec->npend > 0) {
		if (dec->npend == 1)
			dec->damaged = true;
		w = b64_group(dec, out);
	} else if (dec->enc == MAIL_ENC_QP && dec->npend > 0) {
		if (dec->pend[dec->npend - 1] != '\r') {
			memcpy(out, dec->pend, dec->npend);
			w = dec->npend;
		}
		dec->damaged = true;
		dec->npend = 0;
	}
	return w;
}

char *mail_base64_decode(const void *data, size_t len, size_t *out_len_r)
{
	struct mail_decoder dec;
	mail_decoder_init(&dec, MAIL_ENC_BASE64);
	char *out = xmalloc(len + 8);
	size_t n = mail_decoder_feed(&dec, data, len, out);
	n += mail_decoder_finish(&dec, out + n);
	out[n] = '\0';
	if (out_len_r != NULL)
		*out_len_r = n;
	return out;
}

char *mail_qp_decode(const void *data, size_t len, bool header_mode, size_t *out_len_r)
{
	struct mail_decoder dec;
	mail_decoder_init(&dec, MAIL_ENC_QP);
	char *out = xmalloc(len + 8);
	char *in = xmalloc(len + 1);
	memcpy(in, data, len);
	/* in encoded words '_' is a space; "=5F" stays '_' */
	if (header_mode)
		for (size_t i = 0; i < len; i++)
			if (in[i] == '_')
				in[i] = ' ';
	size_t n = mail_decoder_feed(&dec, in, len, out);
	n += mail_decoder_finish(&dec, out + n);
	out[n] = '\0';
	free(in);
	if (out_len_r != NULL)
		*out_len_r = n;
	return out;
}
