#ifndef POSTERN_IMAP_SEARCH_H
#define POSTERN_IMAP_SEARCH_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "proto/imap/imap_seqset.h"

/* The search-key tree of SEARCH, SORT and THREAD (RFC 3501 6.4.4, RFC 9051
 * 6.4.4, CONDSTORE MODSEQ, WITHIN OLDER/YOUNGER, SAVEDATE, OBJECTID,
 * SEARCHRES "$"). The top level and every parenthesised group is an
 * IMAP_SEARCH_AND whose children are linked by next; NOT has one child,
 * OR two. */

/* nesting of NOT / OR / ( ) in one search program */
#define IMAP_SEARCH_MAX_DEPTH 32
/* keys in one search program */
#define IMAP_SEARCH_MAX_KEYS 1000

enum imap_search_type {
	IMAP_SEARCH_AND, /* children */
	IMAP_SEARCH_OR,	 /* children: exactly two */
	IMAP_SEARCH_NOT, /* children: exactly one */
	IMAP_SEARCH_ALL,
	IMAP_SEARCH_SEQSET, /* seqset (may be "$") */
	IMAP_SEARCH_UID,    /* seqset (may be "$") */
	/* flags */
	IMAP_SEARCH_ANSWERED,
	IMAP_SEARCH_DELETED,
	IMAP_SEARCH_DRAFT,
	IMAP_SEARCH_FLAGGED,
	IMAP_SEARCH_SEEN,
	IMAP_SEARCH_RECENT,
	IMAP_SEARCH_NEW,
	IMAP_SEARCH_OLD,
	IMAP_SEARCH_UNANSWERED,
	IMAP_SEARCH_UNDELETED,
	IMAP_SEARCH_UNDRAFT,
	IMAP_SEARCH_UNFLAGGED,
	IMAP_SEARCH_UNSEEN,
	IMAP_SEARCH_KEYWORD,   /* str */
	IMAP_SEARCH_UNKEYWORD, /* str */
	/* strings: str */
	IMAP_SEARCH_BCC,
	IMAP_SEARCH_BODY,
	IMAP_SEARCH_CC,
	IMAP_SEARCH_FROM,
	IMAP_SEARCH_SUBJECT,
	IMAP_SEARCH_TEXT,
	IMAP_SEARCH_TO,
	IMAP_SEARCH_HEADER, /* field (upper-cased), str */
	/* dates: date (00:00 UTC of the day; the mailbox's zone is the store's) */
	IMAP_SEARCH_BEFORE,
	IMAP_SEARCH_ON,
	IMAP_SEARCH_SINCE,
	IMAP_SEARCH_SENTBEFORE,
	IMAP_SEARCH_SENTON,
	IMAP_SEARCH_SENTSINCE,
	IMAP_SEARCH_SAVEDATEBEFORE,
	IMAP_SEARCH_SAVEDATEON,
	IMAP_SEARCH_SAVEDATESINCE,
	IMAP_SEARCH_SAVEDATESUPPORTED,
	/* numbers: number */
	IMAP_SEARCH_LARGER,
	IMAP_SEARCH_SMALLER,
	IMAP_SEARCH_OLDER,   /* seconds */
	IMAP_SEARCH_YOUNGER, /* seconds */
	IMAP_SEARCH_MODSEQ,  /* number; modseq_entry / modseq_entry_type optional */
	IMAP_SEARCH_EMAILID, /* str */
	IMAP_SEARCH_THREADID, /* str */
};

enum imap_modseq_entry_type {
	IMAP_MODSEQ_ENTRY_NONE,
	IMAP_MODSEQ_ENTRY_PRIV,
	IMAP_MODSEQ_ENTRY_SHARED,
	IMAP_MODSEQ_ENTRY_ALL,
};

struct imap_search_key {
	enum imap_search_type type;
	struct imap_search_key *next;	  /* next sibling */
	struct imap_search_key *children; /* AND / OR / NOT */
	const char *str;		  /* string keys, KEYWORD, HEADER value */
	size_t str_len;
	const char *field;		  /* HEADER */
	time_t date;
	uint64_t number;
	struct imap_seqset seqset;
	const char *modseq_entry; /* "/flags/\\seen" or NULL */
	enum imap_modseq_entry_type modseq_entry_type;
};

/* The key name of a type ("SENTBEFORE"); "AND" for groups. */
const char *imap_search_type_name(enum imap_search_type type);
/* Canonical text of a tree, for logs and tests:
 * "(SEEN (OR FROM \"a\" NOT TO \"b\"))" style, malloc'ed. */
char *imap_search_format(const struct imap_search_key *key);
/* true when the tree uses "$" (SEARCHRES). */
bool imap_search_uses_saved(const struct imap_search_key *key);
/* true when the tree has a MODSEQ key (CONDSTORE: answer with MODSEQ). */
bool imap_search_has_modseq(const struct imap_search_key *key);

#endif
