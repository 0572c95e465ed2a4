#include "proto/imap/imap_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "proto/imap/imap_date.h"
#include "proto/imap/imap_utf7.h"

void imap_buf_init(struct imap_buf *buf)
{
	memset(buf, 0, sizeof(*buf));
}

void imap_buf_deinit(struct imap_buf *buf)
{
	free(buf->data);
	imap_buf_init(buf);
}

void imap_buf_clear(struct imap_buf *buf)
{
	buf->len = 0;
	if (buf->data != NULL)
		buf->data[0] = '\0';
}

void imap_buf_consume(struct imap_buf *buf, size_t n)
{
	if (n >= buf->len) {
		imap_buf_clear(buf);
		return;
	}
	memmove(buf->data, buf->data + n, buf->len - n);
	buf->len -= n;
	buf->data[buf->len] = '\0';
}

static void reserve(struct imap_buf *buf, size_t more)
{
	if (buf->len + more + 1 <= buf->cap)
		return;
	size_t cap = buf->cap < 256 ? 256 : buf->cap;
	while (cap < buf->len + more + 1)
		cap *= 2;
	buf->data = xrealloc(buf->data, cap);
	buf->cap = cap;
}

void imap_buf_append(struct imap_buf *buf, const void *data, size_t len)
{
	reserve(buf, len);
	if (len > 0)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

void imap_buf_str(struct imap_buf *buf, const char *str)
{
	imap_buf_append(buf, str, strlen(str));
}

void imap_buf_vprintf(struct imap_buf *buf, const char *fmt, va_list ap)
{
	reserve(buf, 128);
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(buf->data + buf->len, buf->cap - buf->len, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		buf->data[buf->len] = '\0';
		return;
	}
	if ((size_t)n >= buf->cap - buf->len) {
		reserve(buf, (size_t)n);
		vsnprintf(buf->data + buf->len, buf->cap - buf->len, fmt, ap);
	}
	buf->len += (size_t)n;
}

void imap_buf_printf(struct imap_buf *buf, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	imap_buf_vprintf(buf, fmt, ap);
	va_end(ap);
}

static bool astring_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"' &&
	       c != '\\' && c != '%' && c != '*';
}

enum imap_string_form imap_string_form(const void *data, size_t len, bool astring,
				       unsigned flags)
{
	const unsigned char *p = data;
	bool nul = false, crlf = false, eightbit = false, atom = len > 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\0')
			nul = true;
		else if (p[i] == '\r' || p[i] == '\n')
			crlf = true;
		else if (p[i] >= 0x80)
			eightbit = true;
		if (!astring_char(p[i]))
			atom = false;
	}
	if (nul)
		return (flags & IMAP_WRITE_BINARY) != 0 ? IMAP_FORM_LITERAL8 : IMAP_FORM_LITERAL;
	if (astring && atom && !(len == 3 && strncasecmp(data, "NIL", 3) == 0))
		return IMAP_FORM_ATOM;
	if (crlf || len > IMAP_WRITER_QUOTED_MAX)
		return IMAP_FORM_LITERAL;
	if (eightbit && ((flags & IMAP_WRITE_UTF8) == 0 || !imap_utf8_valid(data, len)))
		return IMAP_FORM_LITERAL;
	return IMAP_FORM_QUOTED;
}

void imap_write_literal(struct imap_buf *buf, const void *data, size_t len, bool literal8)
{
	imap_buf_printf(buf, "%s{%zu}\r\n", literal8 ? "~" : "", len);
	imap_buf_append(buf, data, len);
}

static void write_form(struct imap_buf *buf, const void *data, size_t len, bool astring,
		       unsigned flags)
{
	const char *p = data;
	switch (imap_string_form(data, len, astring, flags)) {
	case IMAP_FORM_ATOM:
		imap_buf_append(buf, data, len);
		return;
	case IMAP_FORM_QUOTED:
		reserve(buf, len + 2);
		buf->data[buf->len++] = '"';
		for (size_t i = 0; i < len; i++) {
			if (p[i] == '"' || p[i] == '\\')
				imap_buf_append(buf, "\\", 1);
			imap_buf_append(buf, p + i, 1);
		}
		imap_buf_append(buf, "\"", 1);
		return;
	case IMAP_FORM_LITERAL:
		imap_write_literal(buf, data, len, false);
		return;
	case IMAP_FORM_LITERAL8:
		imap_write_literal(buf, data, len, true);
		return;
	}
}

void imap_write_string(struct imap_buf *buf, const void *data, size_t len, unsigned flags)
{
	write_form(buf, data, len, false, flags);
}

void imap_write_astring(struct imap_buf *buf, const void *data, size_t len, unsigned flags)
{
	write_form(buf, data, len, true, flags);
}

void imap_write_nstring(struct imap_buf *buf, const void *data, size_t len, unsigned flags)
{
	if (data == NULL)
		imap_write_nil(buf);
	else
		write_form(buf, data, len, false, flags);
}

void imap_write_nil(struct imap_buf *buf)
{
	imap_buf_append(buf, "NIL", 3);
}

void imap_write_number(struct imap_buf *buf, uint64_t n)
{
	imap_buf_printf(buf, "%llu", (unsigned long long)n);
}

void imap_write_flags(struct imap_buf *buf, const char *const *flags, unsigned count)
{
	imap_buf_append(buf, "(", 1);
	for (unsigned i = 0; i < count; i++) {
		if (i > 0)
			imap_buf_append(buf, " ", 1);
		imap_buf_str(buf, flags[i]);
	}
	imap_buf_append(buf, ")", 1);
}

void imap_write_datetime(struct imap_buf *buf, time_t t, int tz_minutes)
{
	char tmp[IMAP_DATETIME_SIZE];
	size_t n = imap_date_format_datetime(t, tz_minutes, tmp);
	imap_buf_append(buf, "\"", 1);
	imap_buf_append(buf, tmp, n);
	imap_buf_append(buf, "\"", 1);
}

int imap_write_mailbox(struct imap_buf *buf, const char *name, bool utf8)
{
	size_t len = strlen(name);
	if (utf8) {
		if (!imap_utf8_valid(name, len))
			return -1;
		imap_write_astring(buf, name, len, IMAP_WRITE_UTF8);
		return 0;
	}
	char *wire;
	const char *error;
	if (imap_utf7_encode(name, len, NULL, &wire, &error) < 0)
		return -1;
	imap_write_astring(buf, wire, strlen(wire), 0);
	free(wire);
	return 0;
}

static const char *const status_names[] = {"OK", "NO", "BAD", "BYE", "PREAUTH"};

const char *imap_status_name(enum imap_status status)
{
	return status_names[status];
}

static const char *const code_names[IMAP_CODE_COUNT_] = {
	[IMAP_CODE_NONE] = NULL,
	[IMAP_CODE_ALERT] = "ALERT",
	[IMAP_CODE_ALREADYEXISTS] = "ALREADYEXISTS",
	[IMAP_CODE_APPENDUID] = "APPENDUID",
	[IMAP_CODE_AUTHENTICATIONFAILED] = "AUTHENTICATIONFAILED",
	[IMAP_CODE_AUTHORIZATIONFAILED] = "AUTHORIZATIONFAILED",
	[IMAP_CODE_BADCHARSET] = "BADCHARSET",
	[IMAP_CODE_CANNOT] = "CANNOT",
	[IMAP_CODE_CAPABILITY] = "CAPABILITY",
	[IMAP_CODE_CLIENTBUG] = "CLIENTBUG",
	[IMAP_CODE_CLOSED] = "CLOSED",
	[IMAP_CODE_COMPRESSIONACTIVE] = "COMPRESSIONACTIVE",
	[IMAP_CODE_CONTACTADMIN] = "CONTACTADMIN",
	[IMAP_CODE_COPYUID] = "COPYUID",
	[IMAP_CODE_CORRUPTION] = "CORRUPTION",
	[IMAP_CODE_EXPIRED] = "EXPIRED",
	[IMAP_CODE_EXPUNGEISSUED] = "EXPUNGEISSUED",
	[IMAP_CODE_HASCHILDREN] = "HASCHILDREN",
	[IMAP_CODE_HIGHESTMODSEQ] = "HIGHESTMODSEQ",
	[IMAP_CODE_INUSE] = "INUSE",
	[IMAP_CODE_LIMIT] = "LIMIT",
	[IMAP_CODE_MODIFIED] = "MODIFIED",
	[IMAP_CODE_NOMODSEQ] = "NOMODSEQ",
	[IMAP_CODE_NONEXISTENT] = "NONEXISTENT",
	[IMAP_CODE_NOPERM] = "NOPERM",
	[IMAP_CODE_NOTSAVED] = "NOTSAVED",
	[IMAP_CODE_OVERQUOTA] = "OVERQUOTA",
	[IMAP_CODE_PARSE] = "PARSE",
	[IMAP_CODE_PERMANENTFLAGS] = "PERMANENTFLAGS",
	[IMAP_CODE_PRIVACYREQUIRED] = "PRIVACYREQUIRED",
	[IMAP_CODE_READ_ONLY] = "READ-ONLY",
	[IMAP_CODE_READ_WRITE] = "READ-WRITE",
	[IMAP_CODE_SERVERBUG] = "SERVERBUG",
	[IMAP_CODE_TOOBIG] = "TOOBIG",
	[IMAP_CODE_TRYCREATE] = "TRYCREATE",
	[IMAP_CODE_UIDNEXT] = "UIDNEXT",
	[IMAP_CODE_UIDNOTSTICKY] = "UIDNOTSTICKY",
	[IMAP_CODE_UIDVALIDITY] = "UIDVALIDITY",
	[IMAP_CODE_UNAVAILABLE] = "UNAVAILABLE",
	[IMAP_CODE_UNKNOWN_CTE] = "UNKNOWN-CTE",
	[IMAP_CODE_UNSEEN] = "UNSEEN",
	[IMAP_CODE_USEATTR] = "USEATTR",
	[IMAP_CODE_MAILBOXID] = "MAILBOXID",
};

const char *imap_resp_code_name(enum imap_resp_code code)
{
	return code < IMAP_CODE_COUNT_ ? code_names[code] : NULL;
}

enum imap_resp_code imap_resp_code_lookup(const char *name)
{
	for (int i = 1; i < IMAP_CODE_COUNT_; i++) {
		if (strcasecmp(code_names[i], name) == 0)
			return (enum imap_resp_code)i;
	}
	return IMAP_CODE_NONE;
}

/* text without CR/LF */
static void put_text(struct imap_buf *buf, const char *text)
{
	size_t start = buf->len;
	imap_buf_str(buf, text);
	for (size_t i = start; i < buf->len; i++) {
		if (buf->data[i] == '\r' || buf->data[i] == '\n' || buf->data[i] == '\0')
			buf->data[i] = ' ';
	}
}

static void write_status_head(struct imap_buf *buf, const char *tag, const char *status,
			      const char *code, const char *code_args)
{
	imap_buf_str(buf, tag != NULL ? tag : "*");
	imap_buf_append(buf, " ", 1);
	imap_buf_str(buf, status);
	imap_buf_append(buf, " ", 1);
	if (code != NULL) {
		imap_buf_append(buf, "[", 1);
		imap_buf_str(buf, code);
		if (code_args != NULL) {
			imap_buf_append(buf, " ", 1);
			put_text(buf, code_args);
		}
		imap_buf_append(buf, "] ", 2);
	}
}

void imap_write_status(struct imap_buf *buf, const char *tag, enum imap_status status,
		       enum imap_resp_code code, const char *code_args, const char *fmt, ...)
{
	write_status_head(buf, tag, imap_status_name(status), imap_resp_code_name(code),
			  code_args);
	size_t start = buf->len;
	va_list ap;
	va_start(ap, fmt);
	imap_buf_vprintf(buf, fmt, ap);
	va_end(ap);
	for (size_t i = start; i < buf->len; i++) {
		if (buf->data[i] == '\r' || buf->data[i] == '\n' || buf->data[i] == '\0')
			buf->data[i] = ' ';
	}
	imap_buf_append(buf, "\r\n", 2);
}

void imap_write_continuation(struct imap_buf *buf, const char *text)
{
	imap_buf_append(buf, "+ ", 2);
	put_text(buf, text);
	imap_buf_append(buf, "\r\n", 2);
}

void imap_write_parse_error(struct imap_buf *buf, const char *tag, const char *code,
			    const char *text, bool bye)
{
	write_status_head(buf, tag, "BAD", code, NULL);
	put_text(buf, text);
	imap_buf_append(buf, "\r\n", 2);
	if (bye) {
		imap_buf_str(buf, "* BYE ");
		put_text(buf, text);
		imap_buf_append(buf, "\r\n", 2);
	}
}
