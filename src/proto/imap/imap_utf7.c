#include "proto/imap/imap_utf7.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "proto/imap/imap_arena.h"

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/* a small growable output, moved to the arena or returned at the end */
struct out {
	char *buf;
	size_t len, cap;
};

static void out_put(struct out *o, const void *data, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->buf = xrealloc(o->buf, o->cap);
	}
	memcpy(o->buf + o->len, data, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void out_byte(struct out *o, unsigned char c)
{
	out_put(o, &c, 1);
}

static char *out_finish(struct out *o, struct imap_arena *arena)
{
	if (o->buf == NULL)
		out_put(o, "", 0);
	if (arena == NULL)
		return o->buf;
	char *s = imap_arena_strndup(arena, o->buf, o->len);
	free(o->buf);
	return s;
}

/* one code point from UTF-8; returns bytes used, 0 on invalid input */
static size_t utf8_next(const unsigned char *p, size_t len, uint32_t *cp_r)
{
	unsigned char c = p[0];
	if (c < 0x80) {
		*cp_r = c;
		return 1;
	}
	size_t n;
	uint32_t cp, min;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

static void utf8_put(struct out *o, uint32_t cp)
{
	unsigned char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | (cp >> 6));
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (cp >> 12));
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (cp >> 18));
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	out_put(o, b, n);
}

bool imap_utf8_valid(const char *in, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0;
	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		size_t n = utf8_next(p + i, len - i, &cp);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

bool imap_utf8_mailbox_valid(const char *in, size_t len)
{
	if (len == 0 || len > IMAP_UTF7_MAX_NAME)
		return false;
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_next(p + i, len - i, &cp);
		if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return false;
		i += n;
	}
	return true;
}

int imap_utf7_encode(const char *in, size_t len, struct imap_arena *arena, char **out_r,
		     const char **error_r)
{
	const unsigned char *p = (const unsigned char *)in;
	struct out o = {0};
	size_t i = 0;
	if (len > IMAP_UTF7_MAX_NAME) {
		*error_r = "Mailbox name too long";
		return -1;
	}
	while (i < len) {
		if (p[i] >= 0x20 && p[i] <= 0x7e) {
			if (p[i] == '&')
				out_put(&o, "&-", 2);
			else
				out_byte(&o, p[i]);
			i++;
			continue;
		}
		/* a run of characters needing base64, as UTF-16BE */
		out_byte(&o, '&');
		uint32_t bits = 0;
		unsigned nbits = 0;
		while (i < len && (p[i] < 0x20 || p[i] > 0x7e)) {
			uint32_t cp;
			size_t n = utf8_next(p + i, len - i, &cp);
			if (n == 0 || cp == 0) {
				free(o.buf);
				*error_r = cp == 0 && n == 1 ? "NUL in mailbox name"
							     : "Mailbox name is not valid UTF-8";
				return -1;
			}
			i += n;
			uint16_t units[2];
			unsigned nunits = 1;
			if (cp >= 0x10000) {
				cp -= 0x10000;
				units[0] = (uint16_t)(0xd800 | (cp >> 10));
				units[1] = (uint16_t)(0xdc00 | (cp & 0x3ff));
				nunits = 2;
			} else {
				units[0] = (uint16_t)cp;
			}
			for (unsigned u = 0; u < nunits; u++) {
				bits = (bits << 16) | units[u];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					out_byte(&o, (unsigned char)b64chars[(bits >> nbits) & 0x3f]);
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits > 0)
			out_byte(&o, (unsigned char)b64chars[(bits << (6 - nbits)) & 0x3f]);
		out_byte(&o, '-');
	}
	*out_r = out_finish(&o, arena);
	return 1;
}

static int fail(struct out *o, const char **error_r, const char *error)
{
	free(o->buf);
	*error_r = error;
	return -1;
}

int imap_utf7_decode(const char *in, size_t len, struct imap_arena *arena, char **out_r,
		     const char **error_r)
{
	const unsigned char *p = (const unsigned char *)in;
	struct out o = {0};
	size_t i = 0;
	bool last_was_b64 = false;
	if (len > IMAP_UTF7_MAX_NAME)
		return fail(&o, error_r, "Mailbox name too long");
	while (i < len) {
		unsigned char c = p[i];
		if (c < 0x20 || c > 0x7e)
			return fail(&o, error_r,
				    "Mailbox name is not valid modified UTF-7 (8-bit or control "
				    "character)");
		if (c != '&') {
			out_byte(&o, c);
			i++;
			last_was_b64 = false;
			continue;
		}
		i++;
		if (i < len && p[i] == '-') {
			out_byte(&o, '&');
			i++;
			last_was_b64 = false;
			continue;
		}
		if (last_was_b64)
			return fail(&o, error_r,
				    "Mailbox name is not canonical modified UTF-7 (adjacent "
				    "base64 runs)");
		uint32_t bits = 0, high = 0;
		unsigned nbits = 0, nchars = 0;
		while (i < len && p[i] != '-') {
			int v = b64value(p[i]);
			if (v < 0)
				return fail(&o, error_r,
					    "Mailbox name is not valid modified UTF-7 (bad base64)");
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			nchars++;
			i++;
			if (nbits < 16)
				continue;
			nbits -= 16;
			uint32_t unit = (bits >> nbits) & 0xffff;
			bits &= (1u << nbits) - 1;
			if (high != 0) {
				if (unit < 0xdc00 || unit > 0xdfff)
					return fail(&o, error_r,
						    "Mailbox name is not valid modified UTF-7 "
						    "(unpaired surrogate)");
				utf8_put(&o, 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00));
				high = 0;
			} else if (unit >= 0xd800 && unit <= 0xdbff) {
				high = unit;
			} else if (unit >= 0xdc00 && unit <= 0xdfff) {
				return fail(&o, error_r,
					    "Mailbox name is not valid modified UTF-7 (unpaired "
					    "surrogate)");
			} else if (unit >= 0x20 && unit <= 0x7e) {
				return fail(&o, error_r,
					    "Mailbox name is not canonical modified UTF-7 (printable "
					    "ASCII in base64)");
			} else if (unit == 0) {
				return fail(&o, error_r, "NUL in mailbox name");
			} else {
				utf8_put(&o, unit);
			}
		}
		if (i == len)
			return fail(&o, error_r,
				    "Mailbox name is not valid modified UTF-7 (missing \"-\")");
		i++; /* '-' */
		if (nchars == 0)
			return fail(&o, error_r,
				    "Mailbox name is not valid modified UTF-7 (empty base64)");
		if (high != 0)
			return fail(&o, error_r,
				    "Mailbox name is not valid modified UTF-7 (unpaired surrogate)");
		/* leftover: fewer than 6 bits, all zero */
		if (nbits >= 6 || bits != 0)
			return fail(&o, error_r,
				    "Mailbox name is not canonical modified UTF-7 (padding bits)");
		last_was_b64 = true;
	}
	*out_r = out_finish(&o, arena);
	return 1;
}

bool imap_utf7_valid(const char *in, size_t len)
{
	char *out;
	const char *error;
	if (imap_utf7_decode(in, len, NULL, &out, &error) < 0)
		return false;
	free(out);
	return true;
}
