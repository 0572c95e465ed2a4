#ifndef POSTERN_IMAP_ARENA_H
#define POSTERN_IMAP_ARENA_H

#include <stddef.h>

/* A bump allocator: many small allocations, freed together. The IMAP
 * parser keeps one per command; a session may keep one for what must
 * outlive a command. Allocation never fails (xalloc.h semantics).
 * Memory is 16-byte aligned. */

/* first block size when 0 is given */
#define IMAP_ARENA_DEFAULT_BLOCK 4096

struct imap_arena;

/* A new, empty arena whose blocks are at least block_size bytes
 * (0: IMAP_ARENA_DEFAULT_BLOCK). */
struct imap_arena *imap_arena_new(size_t block_size);
/* Free the arena and everything allocated in it; sets *arena to NULL.
 * NULL and *arena == NULL are fine. */
void imap_arena_free(struct imap_arena **arena);
/* Forget every allocation, keeping the first block for reuse (large
 * blocks are returned to the system). */
void imap_arena_clear(struct imap_arena *arena);

/* size bytes, uninitialised (size 0 gives a valid unique pointer). */
void *imap_arena_alloc(struct imap_arena *arena, size_t size);
/* size bytes, zeroed. */
void *imap_arena_zalloc(struct imap_arena *arena, size_t size);
/* Copy of data[0..len) followed by a NUL. */
char *imap_arena_strndup(struct imap_arena *arena, const char *data, size_t len);
char *imap_arena_strdup(struct imap_arena *arena, const char *str);
char *imap_arena_printf(struct imap_arena *arena, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Bytes handed out since creation or the last clear (for bounds). */
size_t imap_arena_used(const struct imap_arena *arena);

#endif
