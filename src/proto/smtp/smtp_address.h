#ifndef POSTERN_SMTP_ADDRESS_H
#define POSTERN_SMTP_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

/* SMTP address syntax: RFC 5321 Mailbox (dot-string or quoted local part,
 * domain or address literal), RFC 6531 UTF-8 when allowed, the length
 * bounds of RFC 5321 4.5.3.1, and RFC 3461 xtext. Pure functions. */

/* bounds of RFC 5321 section 4.5.3.1 */
#define SMTP_MAX_LOCAL_PART 64
#define SMTP_MAX_DOMAIN	    255
#define SMTP_MAX_PATH	    256 /* including the angle brackets */
/* RFC 3461: ENVID at most 100 characters, ORCPT 500 */
#define SMTP_MAX_ENVID 100
#define SMTP_MAX_ORCPT 500
/* Check a Mailbox without angle brackets: "local@domain",
 * "\"quoted local\"@[192.0.2.1]". utf8 allows well-formed non-ASCII UTF-8
 * in both parts. Returns 0, or -1 with a static *error_r. */
int smtp_mailbox_check(const char *mailbox, size_t len, bool utf8, const char **error_r);

/* Check a Domain or address-literal ("[192.0.2.1]", "[IPv6:...]",
 * "[tag:content]") of n bytes at p. Returns 0, or -1 with *error_r. */
int smtp_domain_check(const unsigned char *p, size_t n, bool utf8, const char **error_r);

/* True for an RFC 5322 atext character. */
bool smtp_atext(unsigned char c);

/* Length of a well-formed UTF-8 sequence at p (at most n bytes) whose first
 * byte is >= 0x80, or 0 when it is malformed (overlong, surrogate, past
 * U+10FFFF, truncated). */
size_t smtp_utf8_len(const unsigned char *p, size_t n);

/* True when s is valid xtext (RFC 3461 4: printable ASCII but '=' and
 * '+', and "+XX" with upper-case hex digits). */
bool smtp_xtext_valid(const char *s);

#endif
