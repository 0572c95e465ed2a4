#include "lib/base64.h"

#include <stdbool.h>
#include <stdint.h>

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int base64_value(unsigned char c)
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

long base64_decode(const char *in, size_t in_len, unsigned char *out, size_t out_size)
{
	if (in_len % 4 != 0)
		return -1;
	size_t pad = 0;
	if (in_len > 0 && in[in_len - 1] == '=')
		pad = in_len > 1 && in[in_len - 2] == '=' ? 2 : 1;
	size_t decoded = in_len / 4 * 3 - pad;
	if (decoded + 1 > out_size)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < in_len; i += 4) {
		bool last = i + 4 == in_len;
		int v[4];
		for (size_t k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=' && last && k >= 4 - pad) {
				v[k] = 0;
				continue;
			}
			v[k] = base64_value(c);
			if (v[k] < 0)
				return -1;
		}
		uint32_t n = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		out[o++] = (unsigned char)(n >> 16);
		if (!last || pad < 2)
			out[o++] = (unsigned char)(n >> 8);
		if (!last || pad < 1)
			out[o++] = (unsigned char)n;
		/* the bits the padding leaves over must be zero (canonical form) */
		if (last && ((pad == 2 && (n & 0xffff) != 0) || (pad == 1 && (n & 0xff) != 0)))
			return -1;
	}
	out[o] = '\0';
	return (long)o;
}

long base64_encode(const unsigned char *in, size_t len, char *out, size_t out_size)
{
	size_t need = BASE64_ENCODED_LEN(len);
	if (need + 1 > out_size)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t n = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			n |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			n |= in[i + 2];
		out[o++] = base64_alphabet[(n >> 18) & 63];
		out[o++] = base64_alphabet[(n >> 12) & 63];
		out[o++] = i + 1 < len ? base64_alphabet[(n >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? base64_alphabet[n & 63] : '=';
	}
	out[o] = '\0';
	return (long)o;
}
