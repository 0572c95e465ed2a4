#ifndef POSTERN_PROTOLOG_H
#define POSTERN_PROTOLOG_H

#include <stdbool.h>
#include <stddef.h>

/* Protocol logs (the protocol-log-enabled setting): one line per command a
 * client sent and per status line the service answered, in
 * DATADIR/logs/SERVICE/YYYY-MM-DD.log (UTC days), as
 *   2026-11-25T12:00:00.123Z SESSION PEER C|S TEXT
 * Credentials never reach the file: the protocol masks them before calling
 * (passwords, SASL data). Bytes that are not printable ASCII are written as
 * '?', and a line is cut at 512 bytes. Writes are O_APPEND single write()s,
 * so the lines of several workers of one service interleave whole. */

struct protolog;

/* A log for service under datadir; nothing is opened until the first line.
 * The directory DATADIR/logs/SERVICE must exist or be creatable. */
struct protolog *protolog_new(const char *datadir, const char *service);
void protolog_free(struct protolog **log);
/* Turn logging on or off (from the setting); off closes the file. */
void protolog_enable(struct protolog *log, bool enabled);
bool protolog_enabled(const struct protolog *log);
/* One line: direction 'C' (client to server) or 'S'. */
void protolog_line(struct protolog *log, const char *session, const char *peer, char direction,
		   const char *text, size_t len);

#endif
