#include "proto/imap/imap_arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

#define ARENA_ALIGN 16

struct arena_block {
	struct arena_block *next;
	size_t size; /* usable bytes after the header */
	size_t used;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

struct imap_arena {
	struct arena_block *blocks; /* newest first; the last one is the first block */
	size_t block_size;
	size_t used;
};

static struct arena_block *block_new(size_t size)
{
	struct arena_block *b = xmalloc(sizeof(*b) + size);
	b->next = NULL;
	b->size = size;
	b->used = 0;
	return b;
}

struct imap_arena *imap_arena_new(size_t block_size)
{
	struct imap_arena *a = xcalloc(1, sizeof(*a));
	a->block_size = block_size != 0 ? block_size : IMAP_ARENA_DEFAULT_BLOCK;
	a->blocks = block_new(a->block_size);
	return a;
}

void imap_arena_free(struct imap_arena **arena)
{
	if (arena == NULL || *arena == NULL)
		return;
	struct arena_block *b = (*arena)->blocks;
	while (b != NULL) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	free(*arena);
	*arena = NULL;
}

void imap_arena_clear(struct imap_arena *arena)
{
	struct arena_block *b = arena->blocks;
	while (b->next != NULL) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	b->used = 0;
	arena->blocks = b;
	arena->used = 0;
}

void *imap_arena_alloc(struct imap_arena *arena, size_t size)
{
	size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (need < size)
		abort();
	if (need == 0)
		need = ARENA_ALIGN;
	struct arena_block *b = arena->blocks;
	if (b->size - b->used < need) {
		/* big allocations get a block of their own, behind the current one,
		 * so the current block keeps serving small ones */
		if (need > arena->block_size / 4) {
			struct arena_block *big = block_new(need);
			big->used = need;
			big->next = b->next;
			b->next = big;
			arena->used += size;
			return big->data;
		}
		b = block_new(arena->block_size);
		b->next = arena->blocks;
		arena->blocks = b;
	}
	void *p = b->data + b->used;
	b->used += need;
	arena->used += size;
	return p;
}

void *imap_arena_zalloc(struct imap_arena *arena, size_t size)
{
	void *p = imap_arena_alloc(arena, size);
	memset(p, 0, size);
	return p;
}

char *imap_arena_strndup(struct imap_arena *arena, const char *data, size_t len)
{
	char *p = imap_arena_alloc(arena, len + 1);
	if (len > 0)
		memcpy(p, data, len);
	p[len] = '\0';
	return p;
}

char *imap_arena_strdup(struct imap_arena *arena, const char *str)
{
	return imap_arena_strndup(arena, str, strlen(str));
}

char *imap_arena_printf(struct imap_arena *arena, const char *fmt, ...)
{
	char stack[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(stack, sizeof(stack), fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	if ((size_t)n < sizeof(stack))
		return imap_arena_strndup(arena, stack, (size_t)n);
	char *p = imap_arena_alloc(arena, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

size_t imap_arena_used(const struct imap_arena *arena)
{
	return arena->used;
}
