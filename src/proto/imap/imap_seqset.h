#ifndef POSTERN_IMAP_SEQSET_H
#define POSTERN_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* IMAP sequence sets (RFC 3501 / RFC 9051 sequence-set, RFC 5182 "$").
 *
 * A set is a sorted list of disjoint, non-adjacent ranges. "*" (the
 * largest number in use) is kept as IMAP_SEQ_STAR until the caller
 * resolves it with imap_seqset_resolve_star(); it sorts above every
 * number. "$" (the saved search result) is a flag on an otherwise empty
 * set. Ranges live in an arena when one is given, else on the heap
 * (release with imap_seqset_deinit()). */

#define IMAP_SEQ_STAR UINT32_MAX
/* ranges a client may send in one set (comma-separated items) */
#define IMAP_SEQSET_MAX_RANGES 10000

struct imap_arena;

struct imap_seq_range {
	uint32_t lo, hi; /* lo <= hi */
};

struct imap_seqset {
	struct imap_seq_range *ranges;
	unsigned count, cap;
	bool saved; /* "$" */
	struct imap_arena *arena; /* NULL: heap */
};

/* An empty set allocating from arena (NULL: heap). */
void imap_seqset_init(struct imap_seqset *set, struct imap_arena *arena);
/* Release heap ranges; the set is empty afterwards. */
void imap_seqset_deinit(struct imap_seqset *set);
void imap_seqset_clear(struct imap_seqset *set);

/* Parse a sequence-set ("1,3:5,7:*", "$" when allow_saved). Ranges in
 * either order ("5:1"); the result is normalised. Numbers are 1..2^32-1.
 * Returns 1, or -1 with *error_r (static text) on bad syntax, 0, a number
 * out of range, or more than IMAP_SEQSET_MAX_RANGES items. set must be
 * initialised; it is cleared first. */
int imap_seqset_parse(struct imap_seqset *set, const char *str, size_t len, bool allow_saved,
		      const char **error_r);

/* Add lo:hi (either order; IMAP_SEQ_STAR allowed) keeping the set
 * normalised. */
void imap_seqset_add_range(struct imap_seqset *set, uint32_t lo, uint32_t hi);
void imap_seqset_add(struct imap_seqset *set, uint32_t n);
/* Remove lo:hi (lo <= hi). */
void imap_seqset_remove_range(struct imap_seqset *set, uint32_t lo, uint32_t hi);

/* Replace IMAP_SEQ_STAR with max, the highest number in use: "*" becomes
 * max, "n:*" becomes n:max (max:n when n > max). With max 0 (an empty
 * mailbox) ranges touching "*" are dropped. Numbers above max elsewhere
 * are kept (the caller decides whether they are errors). */
void imap_seqset_resolve_star(struct imap_seqset *set, uint32_t max);

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);
bool imap_seqset_has_star(const struct imap_seqset *set);
/* Numbers in the set (IMAP_SEQ_STAR counts as one number). */
uint64_t imap_seqset_count(const struct imap_seqset *set);
/* Highest number, 0 when empty. */
uint32_t imap_seqset_max(const struct imap_seqset *set);

/* Iterate in ascending order: set *iter to 0 first; returns true with
 * *n_r, false at the end. */
bool imap_seqset_next(const struct imap_seqset *set, uint64_t *iter, uint32_t *n_r);

/* Compact text ("1:3,5,7:*", "$"); malloc'ed, "" for an empty set. */
char *imap_seqset_format(const struct imap_seqset *set);
/* Into buf of size bytes; returns the length it needs (like snprintf). */
size_t imap_seqset_format_buf(const struct imap_seqset *set, char *buf, size_t size);

#endif
