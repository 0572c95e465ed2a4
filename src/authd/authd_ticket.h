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

/* Sent copies: the submission service files a copy of a message its user
 * submitted into that user's Sent folder through the lmtp service of the
 * user's back end, naming the copy with an LMTP RCPT parameter. Only
 * authd can authorise that: the MAC binds the user (canonical name) to the
 * SHA-256 of the copy's exact bytes, so a holder can file that one message
 * into that one user's Sent folder and nothing else, and an LMTP client
 * without such a MAC cannot address a folder at all. No expiry and no
 * single use: the copy stays in the queue until delivered (days, across
 * restarts), and filing the same bytes again harms nobody.
 * digest is 64 hex digits. make returns 0 with mac_r (hex), -1 for a
 * malformed digest; check returns 0, or -1 with *why_r (static text). */
int authd_sent_copy_make(const struct authd_tickets *t, const char *user, const char *digest,
			 char mac_r[AUTHD_TICKET_MAC_HEX + 1]);
int authd_sent_copy_check(const struct authd_tickets *t, const char *user, const char *digest,
			  const char *mac_hex, const char **why_r);

#endif
