#ifndef POSTERN_NET_H
#define POSTERN_NET_H

#include <sys/types.h>

#include "lib/net_addr.h"

/* Sockets for listening and connecting. Every descriptor returned here is
 * non-blocking and close-on-exec. */

#define NET_UNIX_DEFAULT_MODE 0600

/* Open a listening socket on addr.
 *  - TCP: SO_REUSEADDR; IPv6 sockets are IPV6_V6ONLY, so "[::]:993" and
 *    "0.0.0.0:993" can both be bound.
 *  - unix: an existing socket file is removed first only if nothing answers
 *    on it (a stale file left by a crash); a live socket or a file that is
 *    not a socket is an error. The socket file gets mode 0600.
 * Returns the descriptor, or -1 with *error_r (malloc'ed, naming the
 * address). */
int net_listen(const struct net_addr *addr, int backlog, char **error_r);
/* Same with the unix socket file's mode given (ignored for TCP). */
int net_listen_mode(const struct net_addr *addr, int backlog, mode_t unix_mode, char **error_r);

/* Start connecting to addr without blocking. Returns 1 when connected at
 * once (unix sockets usually), 0 when in progress (wait until the socket is
 * writable, then call net_connect_finish()), or -1 with *error_r
 * (malloc'ed). On 1 and 0, *fd_r is the socket, owned by the caller. */
int net_connect_nonblock(const struct net_addr *addr, int *fd_r, char **error_r);

/* After an in-progress connect became writable: returns 1 when connected,
 * or -1 with *error_r (malloc'ed) when it failed (the caller closes fd). */
int net_connect_finish(int fd, char **error_r);

/* Make fd non-blocking and close-on-exec. Returns 0 or -1 (errno set). */
int net_set_nonblock_cloexec(int fd);

#endif
