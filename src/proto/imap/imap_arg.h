#ifndef POSTERN_IMAP_ARG_H
#define POSTERN_IMAP_ARG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The generic argument tree of one IMAP command, as the parser
 * (imap_parser.h) builds it in the command's arena. Typed command parsers
 * (imap_command.h) read it; nothing here is modified after parsing. */

enum imap_arg_type {
	IMAP_ARG_ATOM,	  /* a bare token: atom, flag ("\Seen"), sequence set,
			     list-mailbox with "%" / "*"; see the flags below */
	IMAP_ARG_NUMBER,  /* digits only, fits in 64 bits; str holds them */
	IMAP_ARG_NIL,	  /* the atom NIL (any case); str is "NIL" as sent */
	IMAP_ARG_QUOTED,  /* "..." unescaped */
	IMAP_ARG_LITERAL, /* {N} / {N+} / ~{N} / ~{N+}; str may hold NULs (literal8) */
	IMAP_ARG_LIST,	  /* ( ... ) */
	IMAP_ARG_SECTION, /* FETCH only: NAME[ ... ]<o.c> e.g. BODY.PEEK[HEADER.FIELDS (To)] */
};

/* IMAP_ARG_ATOM / NUMBER / NIL: which characters beyond ATOM-CHAR occur */
#define IMAP_ATOM_WILDCARD  0x01 /* "%" or "*" (list-wildcards) */
#define IMAP_ATOM_BRACKET   0x02 /* "]" (an ASTRING-CHAR, not an ATOM-CHAR) */
#define IMAP_ATOM_BACKSLASH 0x04 /* starts with "\" (flag, \* ) */

struct imap_arg {
	enum imap_arg_type type;
	/* ATOM, NUMBER, NIL, QUOTED, LITERAL: the bytes, NUL-terminated at
	 * str[len]; SECTION: the name before "[" ("BODY.PEEK") */
	const char *str;
	size_t len;
	uint64_t number;      /* NUMBER */
	unsigned atom_flags;  /* ATOM: IMAP_ATOM_* */
	bool literal8;	      /* LITERAL: ~{N} */
	bool literal_nonsync; /* LITERAL: {N+} */
	bool eightbit;	      /* QUOTED / LITERAL: holds bytes >= 0x80 */
	/* LITERAL: an APPEND message the caller received itself
	 * (imap_parser_limits.stream_messages): str is "", len its size,
	 * stream_index its number among the command's streamed literals */
	bool streamed;
	unsigned stream_index;
	/* LIST: the items; SECTION: the items inside the brackets */
	struct imap_arg *list;
	unsigned list_count;
	/* SECTION: <offset.count> */
	bool has_partial;
	uint32_t partial_offset, partial_count;
};

/* true for an atom (not a number or NIL) equal to name, case-insensitive */
bool imap_arg_atom_eq(const struct imap_arg *arg, const char *name);
/* The text of an atom, number or NIL (any case) in *str_r; false for others. */
bool imap_arg_get_atom(const struct imap_arg *arg, const char **str_r);
/* astring (RFC 3501): an atom with ASTRING-CHARs only (no wildcards, no
 * leading backslash), a number, NIL (as the text "NIL"), a quoted string or
 * a literal (not literal8). NUL bytes make it fail. Returns true with the
 * bytes in *str_r, *len_r. */
bool imap_arg_get_astring(const struct imap_arg *arg, const char **str_r, size_t *len_r);
/* string: quoted or literal (not literal8), without NUL bytes. */
bool imap_arg_get_string(const struct imap_arg *arg, const char **str_r, size_t *len_r);
/* nstring: NIL gives *str_r NULL; otherwise as imap_arg_get_string(). */
bool imap_arg_get_nstring(const struct imap_arg *arg, const char **str_r, size_t *len_r);
/* number (RFC 3501: 32 bits) / nz-number / number64 (RFC 9051) /
 * mod-sequence-value (1..2^63-1). */
bool imap_arg_get_number(const struct imap_arg *arg, uint32_t *n_r);
bool imap_arg_get_nz_number(const struct imap_arg *arg, uint32_t *n_r);
bool imap_arg_get_number64(const struct imap_arg *arg, uint64_t *n_r);
bool imap_arg_get_modseq(const struct imap_arg *arg, uint64_t *n_r);
/* A LIST: its items. */
bool imap_arg_get_list(const struct imap_arg *arg, const struct imap_arg **items_r,
		       unsigned *count_r);

#endif
