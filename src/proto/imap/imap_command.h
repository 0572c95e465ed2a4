#ifndef POSTERN_IMAP_COMMAND_H
#define POSTERN_IMAP_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto/imap/imap_arg.h"
#include "proto/imap/imap_date.h"
#include "proto/imap/imap_search.h"
#include "proto/imap/imap_seqset.h"

/* Typed IMAP commands: the command table and the structures its parsers
 * fill from the generic argument tree (imap_arg.h). Everything a command
 * points to lives in the parser's per-command arena.
 *
 * Covered: IMAP4rev1 (RFC 3501), IMAP4rev2 (RFC 9051) and the extensions
 * LITERAL+/- (RFC 7888), SASL-IR (4959), ENABLE (5161), IDLE (2177),
 * NAMESPACE (2342), UIDPLUS (4315), MOVE (6851), UNSELECT (3691), ID (2971),
 * CHILDREN (3348), SPECIAL-USE / CREATE-SPECIAL-USE (6154), LIST-EXTENDED
 * (5258), LIST-STATUS (5819), ESEARCH (4731), SEARCHRES (5182), SORT and
 * THREAD (5256), CONDSTORE / QRESYNC (7162), QUOTA (9208), COMPRESS (4978),
 * APPENDLIMIT (7889), BINARY (3516), UTF8=ACCEPT (6855), STATUS=SIZE
 * (8438), SAVEDATE (8514), OBJECTID (8474), WITHIN (5032), MULTIAPPEND
 * (3502). */

/* States a command is allowed in (bits). */
#define IMAP_STATE_NOT_AUTH (1u << 0)
#define IMAP_STATE_AUTH	    (1u << 1)
#define IMAP_STATE_SELECTED (1u << 2)
#define IMAP_STATES_ANY	    (IMAP_STATE_NOT_AUTH | IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define IMAP_STATES_AUTHED  (IMAP_STATE_AUTH | IMAP_STATE_SELECTED)

/* Command flags. */
#define IMAP_CMD_FLAG_UID      (1u << 0) /* "UID <name>" form (set on the UID entry) */
#define IMAP_CMD_FLAG_SECTIONS (1u << 1) /* NAME[...]<...> is parsed as a section */
#define IMAP_CMD_FLAG_MESSAGES (1u << 2) /* literals may be messages (APPENDLIMIT) */
#define IMAP_CMD_FLAG_SEQ      (1u << 3) /* uses message sequence numbers (not
					    allowed while EXPUNGEs are pending) */
#define IMAP_CMD_FLAG_BREAKS_PIPELINE (1u << 4) /* STARTTLS, AUTHENTICATE, IDLE,
						   COMPRESS: no pipelining past */

/* Bounds of the typed parsers. */
#define IMAP_MAX_FLAGS		  256 /* flags in one flag list */
#define IMAP_MAX_MULTIAPPEND	  256 /* messages in one APPEND */
#define IMAP_MAX_LIST_PATTERNS	  64  /* patterns in one LIST */
#define IMAP_MAX_FETCH_ITEMS	  128 /* items in one FETCH */
#define IMAP_MAX_HEADER_FIELDS	  128 /* names in HEADER.FIELDS (...) */
#define IMAP_MAX_SECTION_PARTS	  32  /* depth of a section part path 1.2.3 */
#define IMAP_MAX_ENABLE		  64  /* capabilities in one ENABLE */
#define IMAP_MAX_SORT_CRITERIA	  32
#define IMAP_MAX_QUOTA_RESOURCES  16
#define IMAP_ID_MAX_PAIRS	  30   /* RFC 2971 */
#define IMAP_ID_MAX_FIELD	  30   /* RFC 2971 */
#define IMAP_ID_MAX_VALUE	  1024 /* RFC 2971 */
#define IMAP_MAX_CAPABILITY_NAME  64

enum imap_cmd_id {
	IMAP_CMD_CAPABILITY,
	IMAP_CMD_NOOP,
	IMAP_CMD_LOGOUT,
	IMAP_CMD_STARTTLS,
	IMAP_CMD_AUTHENTICATE,
	IMAP_CMD_LOGIN,
	IMAP_CMD_ENABLE,
	IMAP_CMD_SELECT,
	IMAP_CMD_EXAMINE,
	IMAP_CMD_CREATE,
	IMAP_CMD_DELETE,
	IMAP_CMD_RENAME,
	IMAP_CMD_SUBSCRIBE,
	IMAP_CMD_UNSUBSCRIBE,
	IMAP_CMD_LIST,
	IMAP_CMD_LSUB,
	IMAP_CMD_NAMESPACE,
	IMAP_CMD_STATUS,
	IMAP_CMD_APPEND,
	IMAP_CMD_IDLE,
	IMAP_CMD_CHECK,
	IMAP_CMD_CLOSE,
	IMAP_CMD_UNSELECT,
	IMAP_CMD_EXPUNGE,
	IMAP_CMD_SEARCH,
	IMAP_CMD_FETCH,
	IMAP_CMD_STORE,
	IMAP_CMD_COPY,
	IMAP_CMD_MOVE,
	IMAP_CMD_SORT,
	IMAP_CMD_THREAD,
	IMAP_CMD_GETQUOTA,
	IMAP_CMD_GETQUOTAROOT,
	IMAP_CMD_SETQUOTA,
	IMAP_CMD_COMPRESS,
	IMAP_CMD_ID,
	IMAP_CMD_COUNT_
};

struct imap_command;
struct imap_parse_ctx;

struct imap_command_def {
	const char *name; /* "FETCH", "UID FETCH" */
	enum imap_cmd_id id;
	/* Fill cmd's typed part from args. Returns 1, or -1 with *error_r (the
	 * text of the BAD answer, static or in cmd's arena). */
	int (*parse)(struct imap_command *cmd, const struct imap_arg *args, unsigned count,
		     const char **error_r);
	unsigned states; /* IMAP_STATE_* */
	unsigned flags;	 /* IMAP_CMD_FLAG_* */
};

/* A mailbox name: wire is what the client sent; name is UTF-8 (decoded
 * from modified UTF-7 unless UTF8=ACCEPT is on), INBOX in any case becomes
 * "INBOX". */
struct imap_mailbox {
	const char *wire;
	const char *name;
};

struct imap_cmd_authenticate {
	const char *mechanism; /* upper-cased */
	/* SASL-IR: the base64 text, "=" for an empty response; NULL: none */
	const char *initial;
};

struct imap_cmd_login {
	const char *user, *password;
	size_t user_len, password_len;
};

struct imap_cmd_enable {
	const char **capabilities; /* upper-cased */
	unsigned count;
};

struct imap_cmd_select {
	struct imap_mailbox mailbox;
	bool condstore;
	bool qresync;
	uint32_t uidvalidity;
	uint64_t modseq;
	bool has_known_uids;
	struct imap_seqset known_uids;
	bool has_seq_match; /* (known-sequence-set known-uid-set) */
	struct imap_seqset seq_match_seqs, seq_match_uids;
};

/* SPECIAL-USE attributes (RFC 6154), bits */
#define IMAP_USE_ALL	 (1u << 0)
#define IMAP_USE_ARCHIVE (1u << 1)
#define IMAP_USE_DRAFTS	 (1u << 2)
#define IMAP_USE_FLAGGED (1u << 3)
#define IMAP_USE_JUNK	 (1u << 4)
#define IMAP_USE_SENT	 (1u << 5)
#define IMAP_USE_TRASH	 (1u << 6)
#define IMAP_USE_IMPORTANT (1u << 7) /* RFC 8457 */

struct imap_cmd_create {
	struct imap_mailbox mailbox;
	unsigned use; /* IMAP_USE_* from (USE (...)) */
};

struct imap_cmd_mailbox { /* DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT */
	struct imap_mailbox mailbox;
};

struct imap_cmd_rename {
	struct imap_mailbox from, to;
};

/* STATUS items, bits */
#define IMAP_STATUS_MESSAGES	    (1u << 0)
#define IMAP_STATUS_RECENT	    (1u << 1)
#define IMAP_STATUS_UIDNEXT	    (1u << 2)
#define IMAP_STATUS_UIDVALIDITY	    (1u << 3)
#define IMAP_STATUS_UNSEEN	    (1u << 4)
#define IMAP_STATUS_DELETED	    (1u << 5)
#define IMAP_STATUS_SIZE	    (1u << 6)
#define IMAP_STATUS_HIGHESTMODSEQ   (1u << 7)
#define IMAP_STATUS_APPENDLIMIT	    (1u << 8)
#define IMAP_STATUS_DELETED_STORAGE (1u << 9)
#define IMAP_STATUS_MAILBOXID	    (1u << 10) /* OBJECTID (RFC 8474) */
/* The text of one item bit ("MESSAGES"). */
const char *imap_status_item_name(unsigned bit);

/* LIST selection options, bits */
#define IMAP_LIST_SEL_SUBSCRIBED     (1u << 0)
#define IMAP_LIST_SEL_REMOTE	     (1u << 1)
#define IMAP_LIST_SEL_RECURSIVEMATCH (1u << 2)
#define IMAP_LIST_SEL_SPECIAL_USE    (1u << 3)
/* LIST return options, bits */
#define IMAP_LIST_RET_SUBSCRIBED  (1u << 0)
#define IMAP_LIST_RET_CHILDREN	  (1u << 1)
#define IMAP_LIST_RET_SPECIAL_USE (1u << 2)
#define IMAP_LIST_RET_STATUS	  (1u << 3)

struct imap_cmd_list {
	bool extended; /* selection options, several patterns or RETURN given */
	unsigned selection; /* IMAP_LIST_SEL_* */
	unsigned ret;	    /* IMAP_LIST_RET_* */
	unsigned status_items; /* IMAP_STATUS_* with IMAP_LIST_RET_STATUS */
	struct imap_mailbox reference;
	struct imap_mailbox *patterns; /* may hold "%" and "*" */
	unsigned pattern_count;
};

struct imap_cmd_status {
	struct imap_mailbox mailbox;
	unsigned items; /* IMAP_STATUS_* */
};

struct imap_append_message {
	const char **flags;
	unsigned flag_count;
	bool has_date;
	struct imap_datetime date;
	const unsigned char *data;
	size_t size;
	bool binary; /* literal8 (BINARY) */
	bool utf8;   /* UTF8 (literal8) (UTF8=ACCEPT) */
	/* the bytes went to the caller (data NULL): stream_index is the
	 * IMAP_PARSE_LITERAL event's literal_index */
	bool streamed;
	unsigned stream_index;
};

struct imap_cmd_append {
	struct imap_mailbox mailbox;
	struct imap_append_message *messages;
	unsigned count; /* > 1: MULTIAPPEND */
};

struct imap_cmd_seqset { /* UID EXPUNGE */
	struct imap_seqset set;
};

/* SEARCH RETURN options (ESEARCH, SEARCHRES), bits */
#define IMAP_SEARCH_RET_MIN   (1u << 0)
#define IMAP_SEARCH_RET_MAX   (1u << 1)
#define IMAP_SEARCH_RET_ALL   (1u << 2)
#define IMAP_SEARCH_RET_COUNT (1u << 3)
#define IMAP_SEARCH_RET_SAVE  (1u << 4)

struct imap_cmd_search {
	bool esearch;	 /* RETURN (...) given: answer with ESEARCH */
	unsigned ret;	 /* IMAP_SEARCH_RET_*; RETURN () means ALL */
	const char *charset; /* NULL: none given */
	struct imap_search_key *keys; /* an AND of the top-level keys */
};

enum imap_fetch_kind {
	IMAP_FETCH_FLAGS,
	IMAP_FETCH_INTERNALDATE,
	IMAP_FETCH_RFC822,
	IMAP_FETCH_RFC822_HEADER,
	IMAP_FETCH_RFC822_SIZE,
	IMAP_FETCH_RFC822_TEXT,
	IMAP_FETCH_ENVELOPE,
	IMAP_FETCH_BODY,	  /* BODY without section: non-extensible structure */
	IMAP_FETCH_BODYSTRUCTURE,
	IMAP_FETCH_UID,
	IMAP_FETCH_BODY_SECTION,  /* BODY[...] / BODY.PEEK[...] */
	IMAP_FETCH_BINARY,	  /* BINARY[...] / BINARY.PEEK[...] */
	IMAP_FETCH_BINARY_SIZE,	  /* BINARY.SIZE[...] */
	IMAP_FETCH_MODSEQ,
	IMAP_FETCH_SAVEDATE,
	IMAP_FETCH_EMAILID,
	IMAP_FETCH_THREADID,
};

enum imap_section_text {
	IMAP_SECTION_ALL,	       /* BODY[] or BODY[1.2] */
	IMAP_SECTION_HEADER,
	IMAP_SECTION_HEADER_FIELDS,
	IMAP_SECTION_HEADER_FIELDS_NOT,
	IMAP_SECTION_MIME,
	IMAP_SECTION_TEXT,
};

struct imap_fetch_item {
	enum imap_fetch_kind kind;
	bool peek; /* .PEEK: do not set \Seen */
	/* BODY_SECTION, BINARY, BINARY_SIZE */
	uint32_t parts[IMAP_MAX_SECTION_PARTS];
	unsigned part_count;
	enum imap_section_text text;
	const char **fields; /* HEADER.FIELDS(.NOT), upper-cased */
	unsigned field_count;
	bool has_partial;
	uint32_t partial_offset, partial_count;
	/* the section as the client wrote it, for the answer ("BODY[HEADER]<0>") */
	const char *name;
};

struct imap_cmd_fetch {
	struct imap_seqset set;
	struct imap_fetch_item *items;
	unsigned count;
	const char *macro; /* "ALL", "FAST", "FULL" or NULL */
	bool has_changedsince;
	uint64_t changedsince;
	bool vanished; /* UID FETCH only, with CHANGEDSINCE */
};

enum imap_store_mode { IMAP_STORE_REPLACE, IMAP_STORE_ADD, IMAP_STORE_REMOVE };

struct imap_cmd_store {
	struct imap_seqset set;
	enum imap_store_mode mode;
	bool silent;
	const char **flags;
	unsigned flag_count;
	bool has_unchangedsince;
	uint64_t unchangedsince;
};

struct imap_cmd_copy { /* COPY, MOVE */
	struct imap_seqset set;
	struct imap_mailbox mailbox;
};

enum imap_sort_key {
	IMAP_SORT_ARRIVAL,
	IMAP_SORT_CC,
	IMAP_SORT_DATE,
	IMAP_SORT_FROM,
	IMAP_SORT_SIZE,
	IMAP_SORT_SUBJECT,
	IMAP_SORT_TO,
	IMAP_SORT_DISPLAYFROM, /* RFC 5957 */
	IMAP_SORT_DISPLAYTO,
};

struct imap_sort_criterion {
	enum imap_sort_key key;
	bool reverse;
};

struct imap_cmd_sort {
	struct imap_sort_criterion *criteria;
	unsigned count;
	const char *charset;
	struct imap_search_key *keys;
};

enum imap_thread_algorithm { IMAP_THREAD_ORDEREDSUBJECT, IMAP_THREAD_REFERENCES };

struct imap_cmd_thread {
	enum imap_thread_algorithm algorithm;
	const char *charset;
	struct imap_search_key *keys;
};

struct imap_cmd_quota_root { /* GETQUOTA */
	const char *root;
};

struct imap_quota_resource {
	const char *name; /* upper-cased: STORAGE, MESSAGE, MAILBOX, ... */
	uint64_t limit;
};

struct imap_cmd_setquota {
	const char *root;
	struct imap_quota_resource *resources;
	unsigned count;
};

struct imap_cmd_compress {
	const char *mechanism; /* "DEFLATE" */
};

struct imap_cmd_idparams {
	bool nil;
	const char **fields; /* NULL values for NIL */
	const char **values;
	unsigned count;
};

struct imap_command {
	const char *tag;
	const char *name; /* as in the table: "UID FETCH" */
	const struct imap_command_def *def;
	bool uid; /* "UID <command>" */
	const struct imap_arg *args; /* the generic tree, top level */
	unsigned arg_count;
	struct imap_arena *arena; /* the command's arena */
	const struct imap_parse_ctx *ctx;
	union {
		struct imap_cmd_authenticate authenticate;
		struct imap_cmd_login login;
		struct imap_cmd_enable enable;
		struct imap_cmd_select select; /* SELECT, EXAMINE */
		struct imap_cmd_create create;
		struct imap_cmd_mailbox mailbox; /* DELETE, (UN)SUBSCRIBE, GETQUOTAROOT */
		struct imap_cmd_rename rename;
		struct imap_cmd_list list;	 /* LIST, LSUB (reference + 1 pattern) */
		struct imap_cmd_status status;
		struct imap_cmd_append append;
		struct imap_cmd_seqset expunge; /* UID EXPUNGE */
		struct imap_cmd_search search;
		struct imap_cmd_fetch fetch;
		struct imap_cmd_store store;
		struct imap_cmd_copy copy; /* COPY, MOVE */
		struct imap_cmd_sort sort;
		struct imap_cmd_thread thread;
		struct imap_cmd_quota_root quota;
		struct imap_cmd_setquota setquota;
		struct imap_cmd_compress compress;
		struct imap_cmd_idparams id;
	} u;
};

/* Options that change how arguments are read, set by the session. */
struct imap_parse_ctx {
	bool utf8_accept; /* ENABLE UTF8=ACCEPT: mailbox names are UTF-8 */
};

/* The entry for a command name ("fetch", "UID FETCH": case-insensitive,
 * one space after UID), or NULL. */
const struct imap_command_def *imap_command_lookup(const char *name);
/* The whole table (count in *count_r), in a fixed order. */
const struct imap_command_def *imap_command_table(unsigned *count_r);
/* true when def may run in state (one IMAP_STATE_* bit). */
bool imap_command_allowed(const struct imap_command_def *def, unsigned state);

/* Run def's typed parser over the tree in cmd (tag, name, def, args,
 * arena, ctx set). Returns 1, or -1 with *error_r. */
int imap_command_parse(struct imap_command *cmd, const char **error_r);

/* Helpers the typed parsers share; public for the back end's own
 * arguments. All return 1, or -1 with *error_r. */

/* A mailbox argument (astring; decoded per ctx). allow_wildcards: a
 * list-mailbox (LIST patterns: "%" and "*" and quoted strings). */
int imap_parse_mailbox_arg(struct imap_command *cmd, const struct imap_arg *arg,
			   bool allow_wildcards, struct imap_mailbox *mailbox_r,
			   const char **error_r);
/* A parenthesised flag list; system flags are normalised ("\SEEN" ->
 * "\Seen"), keywords kept as sent. allow_recent false refuses \Recent
 * (STORE, APPEND). */
int imap_parse_flag_list(struct imap_command *cmd, const struct imap_arg *arg, bool allow_recent,
			 const char ***flags_r, unsigned *count_r, const char **error_r);
/* A sequence set argument (atom), "$" allowed. */
int imap_parse_seqset_arg(struct imap_command *cmd, const struct imap_arg *arg,
			  struct imap_seqset *set_r, const char **error_r);

#endif
