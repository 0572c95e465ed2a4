#include "proto/smtp/smtp_address.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

/* RFC 5321 4.1.2 Mailbox syntax with RFC 6531 (SMTPUTF8) extensions, and
 * RFC 3461 xtext. */

bool smtp_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* length of a well-formed UTF-8 sequence at p (at most n bytes) whose first
 * byte is >= 0x80, or 0 */
size_t smtp_utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	unsigned cp;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int smtp_domain_check(const unsigned char *p, size_t n, bool utf8, const char **error_r)
{
	if (n == 0) {
		*error_r = "missing domain";
		return -1;
	}
	if (n > SMTP_MAX_DOMAIN) {
		*error_r = "domain longer than 255 bytes";
		return -1;
	}
	if (p[0] == '[') {
		if (n < 3 || p[n - 1] != ']') {
			*error_r = "bad address literal";
			return -1;
		}
		char lit[SMTP_MAX_DOMAIN + 1];
		memcpy(lit, p + 1, n - 2);
		lit[n - 2] = '\0';
		unsigned char addr[16];
		if (strncasecmp(lit, "IPv6:", 5) == 0) {
			if (inet_pton(AF_INET6, lit + 5, addr) == 1)
				return 0;
		} else if (isdigit((unsigned char)lit[0])) {
			if (inet_pton(AF_INET, lit, addr) == 1)
				return 0;
		} else {
			/* General-address-literal: Standardized-tag ":" 1*dcontent */
			char *colon = strchr(lit, ':');
			bool ok = colon != NULL && colon > lit && colon[1] != '\0' &&
				  isalnum((unsigned char)lit[0]) &&
				  isalnum((unsigned char)colon[-1]);
			for (char *q = lit; ok && q < colon; q++)
				ok = isalnum((unsigned char)*q) || *q == '-';
			for (char *q = colon != NULL ? colon + 1 : lit; ok && *q != '\0'; q++)
				ok = *q >= 33 && *q <= 126 && *q != '[' && *q != '\\' && *q != ']';
			if (ok)
				return 0;
		}
		*error_r = "bad address literal";
		return -1;
	}
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (c == '.') {
			if (label == 0 || p[i - 1] == '-') {
				*error_r = "bad domain syntax";
				return -1;
			}
			label = 0;
			continue;
		}
		if (c >= 0x80) {
			size_t l = utf8 ? smtp_utf8_len(p + i, n - i) : 0;
			if (l == 0) {
				*error_r = "bad domain syntax";
				return -1;
			}
			i += l - 1;
			label += l;
		} else if (isalnum(c) || (c == '-' && label > 0)) {
			label++;
		} else {
			*error_r = "bad domain syntax";
			return -1;
		}
		if (label > 63) {
			*error_r = "domain label longer than 63 bytes";
			return -1;
		}
	}
	if (label == 0 || p[n - 1] == '-') {
		*error_r = "bad domain syntax";
		return -1;
	}
	return 0;
}

/* Length of the local part at the start of p (up to its '@'), checked; or
 * 0 with *error_r. */
static size_t smtp_local_part(const unsigned char *p, size_t n, bool utf8, const char **error_r)
{
	size_t i = 0;
	*error_r = "bad local part syntax";
	if (n > 0 && p[0] == '"') {
		for (i = 1; i < n && p[i] != '"'; i++) {
			unsigned char c = p[i];
			if (c == '\\') {
				if (i + 1 >= n || p[i + 1] < 32 || p[i + 1] > 126)
					return 0;
				i++;
			} else if (c >= 0x80) {
				size_t l = utf8 ? smtp_utf8_len(p + i, n - i) : 0;
				if (l == 0)
					return 0;
				i += l - 1;
			} else if (c < 32 || c > 126) {
				return 0;
			}
		}
		if (i >= n)
			return 0;
		i++;
	} else {
		bool dot_ok = false;
		for (; i < n && p[i] != '@'; i++) {
			unsigned char c = p[i];
			if (c == '.') {
				if (!dot_ok)
					return 0;
				dot_ok = false;
			} else if (c >= 0x80) {
				size_t l = utf8 ? smtp_utf8_len(p + i, n - i) : 0;
				if (l == 0)
					return 0;
				i += l - 1;
				dot_ok = true;
			} else if (smtp_atext(c)) {
				dot_ok = true;
			} else {
				return 0;
			}
		}
		if (!dot_ok)
			return 0;
	}
	if (i > SMTP_MAX_LOCAL_PART) {
		*error_r = "local part longer than 64 bytes";
		return 0;
	}
	return i;
}

int smtp_mailbox_check(const char *mailbox, size_t len, bool utf8, const char **error_r)
{
	const unsigned char *p = (const unsigned char *)mailbox;
	if (len + 2 > SMTP_MAX_PATH) {
		*error_r = "path longer than 256 bytes";
		return -1;
	}
	size_t l = smtp_local_part(p, len, utf8, error_r);
	if (l == 0)
		return -1;
	if (l >= len || p[l] != '@') {
		*error_r = "missing domain";
		return -1;
	}
	return smtp_domain_check(p + l + 1, len - l - 1, utf8, error_r);
}

bool smtp_xtext_valid(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '+') {
			if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]) ||
			    islower((unsigned char)s[1]) || islower((unsigned char)s[2]))
				return false;
			s += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
	}
	return true;
}
