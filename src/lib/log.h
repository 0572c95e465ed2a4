#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdarg.h>
#include <stdbool.h>

/* Structured log lines: one line per event, "key=value" context first, then
 * free text. Every process logs to stderr by default (the master's stderr is
 * inherited by its children), or to syslog after log_use_syslog(). */

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Context carried by the lines of one session. Any field may be NULL. */
struct log_ctx {
	const char *service;
	const char *session; /* session id, unique in the instance's lifetime */
	const char *peer;    /* client address as "addr:port" */
};

/* Set the process name shown in every line ("posternd", "authd", "pop3"...).
 * The string must outlive the process's logging. */
void log_set_process(const char *name);
/* Lines below this level are dropped. Default LOG_LEVEL_INFO. */
void log_set_level(enum log_level level);
/* Send lines to syslog (facility mail) instead of stderr. */
void log_use_syslog(bool use);

void log_msg(enum log_level level, const struct log_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const struct log_ctx *ctx, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, NULL, __VA_ARGS__)

#endif
