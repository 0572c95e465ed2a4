#ifndef POSTERN_MAIL_ADDRESS_H
#define POSTERN_MAIL_ADDRESS_H

/* RFC 5322 address lists as IMAP ENVELOPE shows them. Tolerant: whatever
 * the input, a list (possibly empty) comes back. Strings are raw (encoded
 * words are not decoded), quoted strings unquoted.
 * A group is a start marker (mailbox = group name, domain NULL), its
 * members, and an end marker (mailbox and domain NULL). */
struct mail_address {
	struct mail_address *next;
	char *name;    /* display name or NULL */
	char *route;   /* "@a,@b" or NULL */
	char *mailbox; /* local part; "MISSING_MAILBOX" when absent */
	char *domain;  /* "MISSING_DOMAIN" when absent; NULL for group markers */
};

/* Parse an address list header value. NULL for an empty list. */
struct mail_address *mail_address_parse(const char *value);
void mail_address_free(struct mail_address **list);

#endif
