#ifndef POSTERN_AUTHD_TICKET_H
#define POSTERN_AUTHD_TICKET_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One-time tickets with which a front end logs a user in at the back end
 * (see authd.h). The MAC key is the instance's internal secret; used
 * tickets are remembered until they expire, so each is accepted once. */

#define AUTHD_TICKET_MAC_HEX 64
#define AUTHD_TICKET_LIFETIME_S 60
#define AUTHD_TICKET_SLOTS 16384
#define AUTHD_TICKET_PROBE 16

struct authd_ticket_used {
	uint8_t mac[16]; /* prefix of the MAC */
	time_t expiry;
};

struct authd_tickets {
	uint8_t key[64];
	size_t key_len;
	struct authd_ticket_used used[AUTHD_TICKET_SLOTS];
};

/* Take the key from the secret's hex text. Returns 0, or -1 with *error_r
 * (malloc'ed) when it is not 32..64 bytes of hex. */
int authd_tickets_init(struct authd_tickets *t, const char *secret_hex, char **error_r);
/* Make a ticket for user at peer, valid from now for the lifetime:
 * expiry text (unix time) into expiry_r, the MAC as hex into mac_r. */
void authd_ticket_make(const struct authd_tickets *t, const char *user, const char *peer,
		       time_t now, char *expiry_r, size_t expiry_size,
		       char mac_r[AUTHD_TICKET_MAC_HEX + 1]);
/* Accept a ticket once. Returns 0, or -1 with *why_r (static text):
 * malformed, expired, forged, or used before. */
int authd_ticket_check(struct authd_tickets *t, const char *user, const char *peer,
		       const char *expiry, const char *mac_hex, time_t now, const char **why_r);

#endif
