#ifndef POSTERN_SETTINGS_H
#define POSTERN_SETTINGS_H

#include <stdbool.h>

/* The typed schema of every service setting: which services a key applies
 * to, its type, bounds, default and one line of help. Values are text; this
 * module validates and normalises them, and parses normalised values for the
 * workers. It knows nothing about where values are stored (settings.db is
 * src/directory/settings_db.h).
 *
 * Normalised forms: seconds as a plain number of seconds, counts as a number
 * or "unlimited", booleans "true"/"false", choices in lower-case dashed form,
 * lists joined with ", ". */

/* Every service name, NULL-terminated, in a fixed order:
 * imap4, imap4-backend, pop3, pop3-backend, submission, lmtp, http. */
extern const char *const settings_services[];

/* True when service is one of settings_services. */
bool settings_service_known(const char *service);

/* True when key is a setting of a known service. */
bool settings_key_known(const char *service, const char *key);

/* Validate and normalise one value (leading and trailing blanks are ignored).
 * Returns 0 with *normalised_r (malloc'ed, caller frees), or -1 with
 * *error_r (malloc'ed, caller frees) naming the service, the key and the
 * accepted form, e.g.
 *   "pop3: max-command-size: must be a number from 40 to 1024 (got 'abc')".
 * An unknown service or key is an error too. */
int settings_validate(const char *service, const char *key, const char *value, char **normalised_r,
		      char **error_r);

/* The schema default of a key for a service (a static string, never NULL for
 * a known key), or NULL for an unknown service or key. Defaults may depend on
 * the service. Values that depend on the instance (host name, data dir) are
 * not here: init stores them in settings.db. */
const char *settings_default(const char *service, const char *key);

/* One line of help for a key: what it means and the accepted form. NULL for
 * an unknown service or key. */
const char *settings_help(const char *service, const char *key);

/* Call cb for every key of a service, in table order. Nothing happens for an
 * unknown service. */
void settings_foreach_key(const char *service,
			  void (*cb)(void *ctx, const char *key, const char *help), void *ctx);

/* Typed parsers for values (normally already validated). Each returns 0 with
 * the result, or -1 when the text is not of that form. */

/* "60", "60s", "5m", "1h", "00:01:00" (h:mm:ss) -> seconds. */
int settings_parse_seconds(const char *value, unsigned *seconds_r);
/* A decimal number, or "unlimited" which gives 0. */
int settings_parse_count(const char *value, unsigned long long *count_r);
/* true/false, yes/no, on/off, 1/0 in any case. */
int settings_parse_bool(const char *value, bool *bool_r);

/* Split a normalised list ("a, b, c"; "" is empty) into a NULL-terminated
 * malloc'ed array of malloc'ed strings; free it with settings_list_free().
 * *count_r (when not NULL) gets the number of items. */
char **settings_list_split(const char *value, unsigned *count_r);
void settings_list_free(char ***list);

/* Check a DNS host name: labels of letters, digits and '-' (not at either
 * end of a label), 1..63 bytes each, 253 bytes at most in all.
 * Returns true when valid. */
bool settings_dns_name_valid(const char *name);

#endif
