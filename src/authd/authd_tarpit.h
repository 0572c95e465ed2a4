#ifndef POSTERN_AUTHD_TARPIT_H
#define POSTERN_AUTHD_TARPIT_H

#include <stdbool.h>

/* Authentication failures counted per source: an IPv4 address, or the /64
 * of an IPv6 address. Bounded memory: a fixed table; a collision replaces
 * the older entry. Failures older than the window are forgotten. */

#define TARPIT_WINDOW_MS (15LL * 60 * 1000)
#define TARPIT_MAX_DELAY_MS (60LL * 1000)

/* The source key of a peer text as logged ("1.2.3.4:5", "[2001:db8::1]:5"). */
void authd_tarpit_key(const char *peer, char *key, unsigned size);
/* Record one failure at now_ms; returns the failures now counted. */
unsigned authd_tarpit_fail(const char *key, long long now_ms);
/* Failures counted for key at now_ms. */
unsigned authd_tarpit_count(const char *key, long long now_ms);
/* Delay to add for a source with n failures: base doubling per failure
 * after the first, capped at TARPIT_MAX_DELAY_MS. */
long long authd_tarpit_delay_ms(unsigned failures, long long base_ms);

#endif
