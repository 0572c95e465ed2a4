#include "lib/log.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_process = "postern";
static enum log_level log_min_level = LOG_LEVEL_INFO;
static bool log_syslog;

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void log_set_process(const char *name)
{
	log_process = name;
	if (log_syslog) {
		closelog();
		openlog(log_process, LOG_PID | LOG_NDELAY, LOG_MAIL);
	}
}

void log_set_level(enum log_level level)
{
	log_min_level = level;
}

void log_use_syslog(bool use)
{
	if (use && !log_syslog)
		openlog(log_process, LOG_PID | LOG_NDELAY, LOG_MAIL);
	else if (!use && log_syslog)
		closelog();
	log_syslog = use;
}

/* printable copy of a context value: control bytes and spaces become '?',
 * so a hostile peer string cannot forge extra fields or lines. */
static void log_append_field(char *line, size_t size, size_t *pos, const char *key,
			     const char *value)
{
	if (value == NULL || *pos >= size)
		return;
	int n = snprintf(line + *pos, size - *pos, "%s=", key);
	if (n < 0)
		return;
	*pos += (size_t)n;
	for (const unsigned char *p = (const unsigned char *)value; *p != '\0' && *pos + 2 < size;
	     p++)
		line[(*pos)++] = (*p <= ' ' || *p == 0x7f) ? '?' : (char)*p;
	if (*pos + 1 < size)
		line[(*pos)++] = ' ';
	line[*pos < size ? *pos : size - 1] = '\0';
}

void log_vmsg(enum log_level level, const struct log_ctx *ctx, const char *fmt, va_list ap)
{
	if (level < log_min_level)
		return;
	char line[2048];
	size_t pos = 0;
	line[0] = '\0';
	if (ctx != NULL) {
		log_append_field(line, sizeof(line), &pos, "service", ctx->service);
		log_append_field(line, sizeof(line), &pos, "session", ctx->session);
		log_append_field(line, sizeof(line), &pos, "peer", ctx->peer);
	}
	if (pos < sizeof(line)) {
		int n = vsnprintf(line + pos, sizeof(line) - pos, fmt, ap);
		if (n > 0)
			pos += (size_t)n;
	}
	/* keep one event on one line whatever the text held */
	for (char *p = line; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	if (log_syslog) {
		static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
		syslog(prio[level], "%s", line);
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s[%ld] %s: %s\n", stamp, ts.tv_nsec / 1000000L, log_process,
		(long)getpid(), log_level_names[level], line);
}

void log_msg(enum log_level level, const struct log_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, ctx, fmt, ap);
	va_end(ap);
}
