#ifndef POSTERN_XALLOC_H
#define POSTERN_XALLOC_H

#include <stddef.h>

/* Allocation that never returns NULL: on exhaustion the process logs and
 * exits (a worker is restarted by the master). Free with free(). */
void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
