#include "proto/imap/imap_date.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int days_in_month(int year, int mon)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (mon == 1 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
		return 29;
	return days[mon];
}

/* days since 1970-01-01 (civil calendar, proleptic Gregorian) */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* "d-Mon-yyyy" or "dd-Mon-yyyy" at *p; advances */
static int parse_day_month_year(const char **p, const char *end, bool space_day, int *day_r,
				int *mon_r, int *year_r)
{
	const char *s = *p;
	int day = 0;
	if (space_day && s < end && *s == ' ')
		s++;
	if (s == end || !is_digit(*s))
		return -1;
	day = *s++ - '0';
	if (s < end && is_digit(*s))
		day = day * 10 + (*s++ - '0');
	if (s == end || *s++ != '-' || end - s < 8)
		return -1;
	int mon = -1;
	for (int i = 0; i < 12; i++) {
		if (strncasecmp(s, month_names[i], 3) == 0)
			mon = i;
	}
	if (mon < 0)
		return -1;
	s += 3;
	if (*s++ != '-')
		return -1;
	int year = 0;
	for (int i = 0; i < 4; i++) {
		if (!is_digit(s[i]))
			return -1;
		year = year * 10 + (s[i] - '0');
	}
	s += 4;
	if (day < 1 || day > days_in_month(year, mon))
		return -1;
	*p = s;
	*day_r = day;
	*mon_r = mon;
	*year_r = year;
	return 0;
}

int imap_date_parse_date(const char *str, size_t len, time_t *day_r, const char **error_r)
{
	const char *p = str, *end = str + len;
	int day, mon, year;
	if (parse_day_month_year(&p, end, false, &day, &mon, &year) < 0 || p != end) {
		*error_r = "Invalid date (expected d-Mon-yyyy)";
		return -1;
	}
	*day_r = (time_t)(days_from_civil(year, mon + 1, day) * 86400);
	return 1;
}

static int two_digits(const char *s)
{
	if (!is_digit(s[0]) || !is_digit(s[1]))
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

int imap_date_parse_datetime(const char *str, size_t len, struct imap_datetime *dt_r,
			     const char **error_r)
{
	const char *p = str, *end = str + len;
	int day, mon, year;
	*error_r = "Invalid date-time (expected \"dd-Mon-yyyy hh:mm:ss +zzzz\")";
	if (parse_day_month_year(&p, end, true, &day, &mon, &year) < 0)
		return -1;
	/* " hh:mm:ss +zzzz" */
	if (end - p != 15 || p[0] != ' ' || p[3] != ':' || p[6] != ':' || p[9] != ' ' ||
	    (p[10] != '+' && p[10] != '-'))
		return -1;
	int hh = two_digits(p + 1), mm = two_digits(p + 4), ss = two_digits(p + 7);
	int zh = two_digits(p + 11), zm = two_digits(p + 13);
	if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 || zh < 0 || zh > 99 ||
	    zm < 0 || zm > 59)
		return -1;
	int tz = zh * 60 + zm;
	if (p[10] == '-')
		tz = -tz;
	int64_t t = days_from_civil(year, mon + 1, day) * 86400 + hh * 3600 + mm * 60 + ss;
	dt_r->time = (time_t)(t - (int64_t)tz * 60);
	dt_r->tz_minutes = tz;
	return 1;
}

size_t imap_date_format_datetime(time_t t, int tz_minutes, char *buf)
{
	time_t local = t + (time_t)tz_minutes * 60;
	struct tm tm;
	gmtime_r(&local, &tm);
	int tz = tz_minutes < 0 ? -tz_minutes : tz_minutes;
	int n = snprintf(buf, IMAP_DATETIME_SIZE, "%2d-%s-%04d %02d:%02d:%02d %c%02d%02d",
			 tm.tm_mday, month_names[tm.tm_mon], (tm.tm_year + 1900) % 10000,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, tz_minutes < 0 ? '-' : '+',
			 (tz / 60) % 100, tz % 60);
	return n < 0 ? 0 : (size_t)n;
}
