#ifndef POSTERN_IMAP_WRITER_H
#define POSTERN_IMAP_WRITER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* IMAP response formatting into a growable buffer the caller flushes to
 * its connection (no I/O here). Strings are written as atoms, quoted
 * strings or literals by what they hold; status responses carry response
 * codes (RFC 3501, RFC 5530 and the extensions'). */

/* strings longer than this are sent as literals, never quoted */
#define IMAP_WRITER_QUOTED_MAX 1024

struct imap_buf {
	char *data;
	size_t len, cap;
};

/* An empty buffer. */
void imap_buf_init(struct imap_buf *buf);
/* Free the buffer's memory; it is empty and usable afterwards. */
void imap_buf_deinit(struct imap_buf *buf);
void imap_buf_clear(struct imap_buf *buf);
/* Drop the first n bytes (what the caller has flushed). */
void imap_buf_consume(struct imap_buf *buf, size_t n);
void imap_buf_append(struct imap_buf *buf, const void *data, size_t len);
void imap_buf_str(struct imap_buf *buf, const char *str);
void imap_buf_printf(struct imap_buf *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void imap_buf_vprintf(struct imap_buf *buf, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* String flags */
#define IMAP_WRITE_UTF8	  0x01 /* UTF8=ACCEPT / IMAP4rev2: UTF-8 may be quoted */
#define IMAP_WRITE_BINARY 0x02 /* the client asked BINARY: literal8 for NUL data */

enum imap_string_form { IMAP_FORM_ATOM, IMAP_FORM_QUOTED, IMAP_FORM_LITERAL, IMAP_FORM_LITERAL8 };

/* How imap_write_string() / imap_write_astring() would send data:
 * astring: an atom when it is non-empty ASTRING-CHARs and not NIL;
 * quoted when at most IMAP_WRITER_QUOTED_MAX bytes without CR, LF, NUL
 * and 8-bit bytes (8-bit allowed with IMAP_WRITE_UTF8 when valid UTF-8);
 * literal8 when it holds NUL and IMAP_WRITE_BINARY is set; else literal. */
enum imap_string_form imap_string_form(const void *data, size_t len, bool astring,
				       unsigned flags);

/* string (quoted or literal). */
void imap_write_string(struct imap_buf *buf, const void *data, size_t len, unsigned flags);
/* astring (atom, quoted or literal). */
void imap_write_astring(struct imap_buf *buf, const void *data, size_t len, unsigned flags);
/* nstring: NIL when data is NULL. */
void imap_write_nstring(struct imap_buf *buf, const void *data, size_t len, unsigned flags);
/* {N}CRLF data, or ~{N}CRLF data when literal8. */
void imap_write_literal(struct imap_buf *buf, const void *data, size_t len, bool literal8);
void imap_write_nil(struct imap_buf *buf);
void imap_write_number(struct imap_buf *buf, uint64_t n);
/* "(\Seen $Forwarded)"; count may be 0: "()" */
void imap_write_flags(struct imap_buf *buf, const char *const *flags, unsigned count);
/* "\" 7-Feb-1994 21:52:25 -0800\"" */
void imap_write_datetime(struct imap_buf *buf, time_t t, int tz_minutes);
/* A mailbox name held as UTF-8: modified UTF-7 unless utf8 (UTF8=ACCEPT),
 * then as an astring. Returns 0, or -1 when name is not valid UTF-8
 * (nothing written). */
int imap_write_mailbox(struct imap_buf *buf, const char *name, bool utf8);

enum imap_status { IMAP_OK, IMAP_NO, IMAP_BAD, IMAP_BYE, IMAP_PREAUTH };

enum imap_resp_code {
	IMAP_CODE_NONE,
	IMAP_CODE_ALERT,
	IMAP_CODE_ALREADYEXISTS,
	IMAP_CODE_APPENDUID,
	IMAP_CODE_AUTHENTICATIONFAILED,
	IMAP_CODE_AUTHORIZATIONFAILED,
	IMAP_CODE_BADCHARSET,
	IMAP_CODE_CANNOT,
	IMAP_CODE_CAPABILITY,
	IMAP_CODE_CLIENTBUG,
	IMAP_CODE_CLOSED,
	IMAP_CODE_COMPRESSIONACTIVE,
	IMAP_CODE_CONTACTADMIN,
	IMAP_CODE_COPYUID,
	IMAP_CODE_CORRUPTION,
	IMAP_CODE_EXPIRED,
	IMAP_CODE_EXPUNGEISSUED,
	IMAP_CODE_HASCHILDREN,
	IMAP_CODE_HIGHESTMODSEQ,
	IMAP_CODE_INUSE,
	IMAP_CODE_LIMIT,
	IMAP_CODE_MODIFIED,
	IMAP_CODE_NOMODSEQ,
	IMAP_CODE_NONEXISTENT,
	IMAP_CODE_NOPERM,
	IMAP_CODE_NOTSAVED,
	IMAP_CODE_OVERQUOTA,
	IMAP_CODE_PARSE,
	IMAP_CODE_PERMANENTFLAGS,
	IMAP_CODE_PRIVACYREQUIRED,
	IMAP_CODE_READ_ONLY,
	IMAP_CODE_READ_WRITE,
	IMAP_CODE_SERVERBUG,
	IMAP_CODE_TOOBIG,
	IMAP_CODE_TRYCREATE,
	IMAP_CODE_UIDNEXT,
	IMAP_CODE_UIDNOTSTICKY,
	IMAP_CODE_UIDVALIDITY,
	IMAP_CODE_UNAVAILABLE,
	IMAP_CODE_UNKNOWN_CTE,
	IMAP_CODE_UNSEEN,
	IMAP_CODE_USEATTR,
	IMAP_CODE_MAILBOXID,
	IMAP_CODE_COUNT_
};

/* "OK", "NO", "BAD", "BYE", "PREAUTH" */
const char *imap_status_name(enum imap_status status);
/* "TRYCREATE", "READ-ONLY", ...; NULL for IMAP_CODE_NONE. */
const char *imap_resp_code_name(enum imap_resp_code code);
/* The code for a name (any case), IMAP_CODE_NONE if unknown. */
enum imap_resp_code imap_resp_code_lookup(const char *name);

/* "<tag> <status> [<CODE> <code_args>] <text>\r\n"; tag NULL means "*".
 * code_args (e.g. "38505 3955" for APPENDUID, "(\Seen \*)" for
 * PERMANENTFLAGS) may be NULL. CR and LF in the text become spaces. */
void imap_write_status(struct imap_buf *buf, const char *tag, enum imap_status status,
		       enum imap_resp_code code, const char *code_args, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/* "+ <text>\r\n" (text "" gives "+ "). */
void imap_write_continuation(struct imap_buf *buf, const char *text);
/* The answer to a parser error (imap_parser.h: tag, code name, text,
 * bye): "<tag> BAD [CODE] text" and, when bye, "* BYE text". */
void imap_write_parse_error(struct imap_buf *buf, const char *tag, const char *code,
			    const char *text, bool bye);

#endif
