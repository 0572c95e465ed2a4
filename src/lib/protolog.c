#include "lib/protolog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"

#define PROTOLOG_MAX_TEXT 512

struct protolog {
	char *dir;
	bool enabled;
	int fd;
	char day[16]; /* the day the open file is for */
	bool warned;
};

struct protolog *protolog_new(const char *datadir, const char *service)
{
	struct protolog *log = xcalloc(1, sizeof(*log));
	log->dir = xasprintf("%s/logs/%s", datadir, service);
	log->fd = -1;
	return log;
}

void protolog_free(struct protolog **log)
{
	if (*log == NULL)
		return;
	if ((*log)->fd >= 0)
		close((*log)->fd);
	free((*log)->dir);
	free(*log);
	*log = NULL;
}

void protolog_enable(struct protolog *log, bool enabled)
{
	log->enabled = enabled;
	if (!enabled && log->fd >= 0) {
		close(log->fd);
		log->fd = -1;
		log->day[0] = '\0';
	}
}

bool protolog_enabled(const struct protolog *log)
{
	return log != NULL && log->enabled;
}

static int protolog_open_day(struct protolog *log, const char *day)
{
	if (log->fd >= 0 && strcmp(log->day, day) == 0)
		return 0;
	if (log->fd >= 0)
		close(log->fd);
	log->fd = -1;
	mkdir(log->dir, 0750);
	char *path = xasprintf("%s/%s.log", log->dir, day);
	log->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (log->fd < 0) {
		/* said once: a full disk must not flood the main log */
		if (!log->warned)
			log_warn("protocol log %s: %s", path, strerror(errno));
		log->warned = true;
		free(path);
		return -1;
	}
	log->warned = false;
	free(path);
	snprintf(log->day, sizeof(log->day), "%s", day);
	return 0;
}

void protolog_line(struct protolog *log, const char *session, const char *peer, char direction,
		   const char *text, size_t len)
{
	if (!protolog_enabled(log))
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char day[16], stamp[32];
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	if (protolog_open_day(log, day) < 0)
		return;
	char line[PROTOLOG_MAX_TEXT + 256];
	int n = snprintf(line, sizeof(line), "%s.%03ldZ %s %s %c ", stamp, ts.tv_nsec / 1000000L,
			 session != NULL ? session : "-", peer != NULL ? peer : "-", direction);
	if (n < 0)
		return;
	size_t pos = (size_t)n;
	for (size_t i = 0; i < len && i < PROTOLOG_MAX_TEXT && pos + 2 < sizeof(line); i++) {
		unsigned char c = (unsigned char)text[i];
		line[pos++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (len > PROTOLOG_MAX_TEXT && pos + 5 < sizeof(line)) {
		memcpy(line + pos, "...", 3);
		pos += 3;
	}
	line[pos++] = '\n';
	if (write(log->fd, line, pos) < 0 && !log->warned) {
		log_warn("protocol log: %s", strerror(errno));
		log->warned = true;
	}
}
