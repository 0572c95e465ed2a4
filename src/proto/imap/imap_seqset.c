#include "proto/imap/imap_seqset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "proto/imap/imap_arena.h"

void imap_seqset_init(struct imap_seqset *set, struct imap_arena *arena)
{
	memset(set, 0, sizeof(*set));
	set->arena = arena;
}

void imap_seqset_deinit(struct imap_seqset *set)
{
	if (set->arena == NULL)
		free(set->ranges);
	set->ranges = NULL;
	set->count = set->cap = 0;
	set->saved = false;
}

void imap_seqset_clear(struct imap_seqset *set)
{
	set->count = 0;
	set->saved = false;
}

static void reserve(struct imap_seqset *set, unsigned need)
{
	if (need <= set->cap)
		return;
	unsigned cap = set->cap < 8 ? 8 : set->cap * 2;
	while (cap < need)
		cap *= 2;
	if (set->arena == NULL) {
		set->ranges = xrealloc(set->ranges, cap * sizeof(*set->ranges));
	} else {
		struct imap_seq_range *r = imap_arena_alloc(set->arena, cap * sizeof(*r));
		if (set->count > 0)
			memcpy(r, set->ranges, set->count * sizeof(*r));
		set->ranges = r;
	}
	set->cap = cap;
}

static int range_cmp(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

/* sort and merge overlapping or adjacent ranges */
static void normalise(struct imap_seqset *set)
{
	if (set->count < 2)
		return;
	qsort(set->ranges, set->count, sizeof(*set->ranges), range_cmp);
	unsigned out = 0;
	for (unsigned i = 1; i < set->count; i++) {
		struct imap_seq_range *last = &set->ranges[out];
		const struct imap_seq_range *r = &set->ranges[i];
		if (r->lo <= last->hi || r->lo - 1 == last->hi) {
			if (r->hi > last->hi)
				last->hi = r->hi;
		} else {
			set->ranges[++out] = *r;
		}
	}
	set->count = out + 1;
}

static int parse_number(const char **p, const char *end, uint32_t *n_r)
{
	if (*p < end && **p == '*') {
		(*p)++;
		*n_r = IMAP_SEQ_STAR;
		return 0;
	}
	if (*p == end || **p < '1' || **p > '9')
		return -1;
	uint64_t n = 0;
	while (*p < end && **p >= '0' && **p <= '9') {
		n = n * 10 + (uint64_t)(**p - '0');
		if (n >= IMAP_SEQ_STAR)
			return -1;
		(*p)++;
	}
	*n_r = (uint32_t)n;
	return 0;
}

int imap_seqset_parse(struct imap_seqset *set, const char *str, size_t len, bool allow_saved,
		      const char **error_r)
{
	imap_seqset_clear(set);
	if (len == 1 && str[0] == '$') {
		if (!allow_saved) {
			*error_r = "\"$\" is not allowed here";
			return -1;
		}
		set->saved = true;
		return 1;
	}
	const char *p = str, *end = str + len;
	unsigned items = 0;
	for (;;) {
		uint32_t lo, hi;
		if (++items > IMAP_SEQSET_MAX_RANGES) {
			*error_r = "Too many ranges in the sequence set";
			return -1;
		}
		if (parse_number(&p, end, &lo) < 0) {
			*error_r = "Invalid sequence set";
			return -1;
		}
		hi = lo;
		if (p < end && *p == ':') {
			p++;
			if (parse_number(&p, end, &hi) < 0) {
				*error_r = "Invalid sequence set";
				return -1;
			}
		}
		reserve(set, set->count + 1);
		set->ranges[set->count].lo = lo < hi ? lo : hi;
		set->ranges[set->count].hi = lo < hi ? hi : lo;
		set->count++;
		if (p == end)
			break;
		if (*p != ',') {
			*error_r = "Invalid sequence set";
			return -1;
		}
		p++;
	}
	normalise(set);
	return 1;
}

void imap_seqset_add_range(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	if (lo > hi) {
		uint32_t t = lo;
		lo = hi;
		hi = t;
	}
	/* fast path: appending in order */
	if (set->count > 0) {
		struct imap_seq_range *last = &set->ranges[set->count - 1];
		if (lo > last->hi && lo - 1 == last->hi) {
			last->hi = hi;
			return;
		}
		if (lo > last->hi) {
			reserve(set, set->count + 1);
			set->ranges[set->count].lo = lo;
			set->ranges[set->count++].hi = hi;
			return;
		}
	}
	reserve(set, set->count + 1);
	set->ranges[set->count].lo = lo;
	set->ranges[set->count++].hi = hi;
	normalise(set);
}

void imap_seqset_add(struct imap_seqset *set, uint32_t n)
{
	imap_seqset_add_range(set, n, n);
}

void imap_seqset_remove_range(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	unsigned n = set->count;
	for (unsigned i = 0; i < n; i++) {
		struct imap_seq_range r = set->ranges[i];
		if (r.hi < lo || r.lo > hi)
			continue;
		if (r.lo < lo && r.hi > hi) {
			/* split in two */
			set->ranges[i].hi = lo - 1;
			imap_seqset_add_range(set, hi + 1, r.hi);
			return;
		}
		if (r.lo < lo)
			set->ranges[i].hi = lo - 1;
		else if (r.hi > hi)
			set->ranges[i].lo = hi + 1;
		else
			set->ranges[i] = (struct imap_seq_range){.lo = 1, .hi = 0}; /* empty */
	}
	unsigned out = 0;
	for (unsigned i = 0; i < set->count; i++) {
		if (set->ranges[i].lo <= set->ranges[i].hi)
			set->ranges[out++] = set->ranges[i];
	}
	set->count = out;
}

void imap_seqset_resolve_star(struct imap_seqset *set, uint32_t max)
{
	unsigned out = 0;
	for (unsigned i = 0; i < set->count; i++) {
		struct imap_seq_range r = set->ranges[i];
		if (r.hi == IMAP_SEQ_STAR) {
			if (max == 0)
				continue;
			if (r.lo == IMAP_SEQ_STAR) {
				r.lo = r.hi = max;
			} else if (r.lo > max) {
				/* "n:*" with n above max is max:n (RFC 9051 6.4.8) */
				r.hi = r.lo;
				r.lo = max;
			} else {
				r.hi = max;
			}
		}
		set->ranges[out++] = r;
	}
	set->count = out;
	normalise(set);
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n)
{
	unsigned lo = 0, hi = set->count;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (set->ranges[mid].hi < n)
			lo = mid + 1;
		else if (set->ranges[mid].lo > n)
			hi = mid;
		else
			return true;
	}
	return false;
}

bool imap_seqset_has_star(const struct imap_seqset *set)
{
	return set->count > 0 && set->ranges[set->count - 1].hi == IMAP_SEQ_STAR;
}

uint64_t imap_seqset_count(const struct imap_seqset *set)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < set->count; i++)
		n += (uint64_t)set->ranges[i].hi - set->ranges[i].lo + 1;
	return n;
}

uint32_t imap_seqset_max(const struct imap_seqset *set)
{
	return set->count == 0 ? 0 : set->ranges[set->count - 1].hi;
}

bool imap_seqset_next(const struct imap_seqset *set, uint64_t *iter, uint32_t *n_r)
{
	/* iter: index of the range in the high 32 bits, offset in the low */
	uint64_t idx = *iter >> 32, off = *iter & 0xffffffffu;
	while (idx < set->count) {
		const struct imap_seq_range *r = &set->ranges[idx];
		if ((uint64_t)r->lo + off <= r->hi) {
			*n_r = (uint32_t)(r->lo + off);
			off++;
			if ((uint64_t)r->lo + off > r->hi) {
				idx++;
				off = 0;
			}
			*iter = (idx << 32) | off;
			return true;
		}
		idx++;
		off = 0;
	}
	*iter = idx << 32;
	return false;
}

static size_t put_number(char *buf, size_t size, size_t pos, uint32_t n)
{
	char tmp[16];
	int len = n == IMAP_SEQ_STAR ? snprintf(tmp, sizeof(tmp), "*")
				      : snprintf(tmp, sizeof(tmp), "%u", n);
	for (int i = 0; i < len; i++, pos++) {
		if (pos + 1 < size)
			buf[pos] = tmp[i];
	}
	return pos;
}

size_t imap_seqset_format_buf(const struct imap_seqset *set, char *buf, size_t size)
{
	size_t pos = 0;
	if (set->saved) {
		if (size > 1)
			buf[0] = '$';
		pos = 1;
	}
	for (unsigned i = 0; i < set->count; i++) {
		if (i > 0) {
			if (pos + 1 < size)
				buf[pos] = ',';
			pos++;
		}
		pos = put_number(buf, size, pos, set->ranges[i].lo);
		if (set->ranges[i].hi != set->ranges[i].lo) {
			if (pos + 1 < size)
				buf[pos] = ':';
			pos++;
			pos = put_number(buf, size, pos, set->ranges[i].hi);
		}
	}
	if (size > 0)
		buf[pos < size ? pos : size - 1] = '\0';
	return pos;
}

char *imap_seqset_format(const struct imap_seqset *set)
{
	size_t need = imap_seqset_format_buf(set, NULL, 0);
	char *s = xmalloc(need + 1);
	imap_seqset_format_buf(set, s, need + 1);
	return s;
}
