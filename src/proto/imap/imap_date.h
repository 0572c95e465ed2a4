#ifndef POSTERN_IMAP_DATE_H
#define POSTERN_IMAP_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* IMAP dates: date-time ("17-Jul-1996 02:44:25 -0700", APPEND and
 * INTERNALDATE) and date ("1-Feb-1994", SEARCH). */

/* "dd-Mon-yyyy hh:mm:ss +zzzz" and its NUL */
#define IMAP_DATETIME_SIZE 27

struct imap_datetime {
	time_t time;	/* seconds since the epoch, UTC */
	int tz_minutes; /* the zone it was written in, east of UTC */
};

/* Parse a date-time (without the quotes): day as 2 digits or space + digit
 * (RFC 9051 also accepts 1 digit here), month name in any case, year
 * 4 digits, time, zone +/-hhmm. Returns 1, or -1 with *error_r. */
int imap_date_parse_datetime(const char *str, size_t len, struct imap_datetime *dt_r,
			     const char **error_r);
/* Parse a date (1 or 2 digit day). *day_r is 00:00:00 UTC of that day.
 * Returns 1, or -1 with *error_r. */
int imap_date_parse_date(const char *str, size_t len, time_t *day_r, const char **error_r);
/* Format t as seen in zone tz_minutes: " 7-Feb-1994 21:52:25 -0800"
 * (day space-padded, RFC 3501). buf must hold IMAP_DATETIME_SIZE bytes.
 * Returns the length (26). */
size_t imap_date_format_datetime(time_t t, int tz_minutes, char *buf);

#endif
