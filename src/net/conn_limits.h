#ifndef POSTERN_CONN_LIMITS_H
#define POSTERN_CONN_LIMITS_H

#include <stddef.h>
#include <sys/socket.h>

/* Connection counting with limits, for one service in one worker process.
 *
 * The counts are per process: with N workers for a service, a limit of M
 * per address lets an address hold up to N*M connections in total, unless
 * the caller divides the setting by the worker count (or sessions are
 * sharded so that one key always lands on one worker). Counting across
 * processes would need the master or authd and is not done here.
 *
 * Three counters: the service total, per source address (IPv4 by /32, IPv6
 * by /64 since one client usually holds a whole /64; IPv4-mapped IPv6 counts
 * as IPv4; all unix-socket peers share one key), and per user name (compared
 * byte for byte: the caller normalises names first). Tables hold one entry
 * per key with a non-zero count and drop it at zero, so memory is bounded by
 * the number of open connections. Hashing is keyed with a per-table random
 * key, so a peer choosing addresses cannot force collisions.
 *
 * A max of 0 means unlimited (the connection is still counted). Every
 * successful try_add must be paired with one remove. */

struct conn_limits;

struct conn_limits *conn_limits_new(void);
/* Free the tables (counts are lost) and set *limits to NULL. */
void conn_limits_free(struct conn_limits **limits);

/* Count one more connection for the service unless max is reached.
 * Returns 1 counted, 0 refused (nothing counted). */
int conn_limits_try_add_total(struct conn_limits *limits, unsigned max);
void conn_limits_remove_total(struct conn_limits *limits);
unsigned conn_limits_total(const struct conn_limits *limits);

/* Count one more connection from sa's address (/32 or /64) unless max is
 * reached. Returns 1 counted, 0 refused (nothing counted). */
int conn_limits_try_add_ip(struct conn_limits *limits, const struct sockaddr *sa, unsigned max);
void conn_limits_remove_ip(struct conn_limits *limits, const struct sockaddr *sa);
unsigned conn_limits_ip_count(const struct conn_limits *limits, const struct sockaddr *sa);

/* Same for a user name. */
int conn_limits_try_add_user(struct conn_limits *limits, const char *user, unsigned max);
void conn_limits_remove_user(struct conn_limits *limits, const char *user);
unsigned conn_limits_user_count(const struct conn_limits *limits, const char *user);

/* Number of table entries held (addresses + users), for tests and status. */
size_t conn_limits_entries(const struct conn_limits *limits);

#endif
