#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin/admin.h"
#include "lib/xalloc.h"

/* replies come after the master finished the work (a stop waits for
 * sessions to say goodbye), so allow more than the master's own wait */
#define CONTROL_REPLY_TIMEOUT_MS 60000
#define CONTROL_MAX_REPLY (1024 * 1024)

int admin_control_request(const char *datadir, const char *command, char **reply_r,
			  char **error_r)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/control.sock", datadir);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		*error_r = xasprintf("data dir path too long: %s", datadir);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int err = errno;
		close(fd);
		if (err == ENOENT || err == ECONNREFUSED)
			return 0;
		*error_r = xasprintf("cannot reach posternd at %s: %s", sun.sun_path, strerror(err));
		return -1;
	}
	char *line = xasprintf("%s\n", command);
	size_t len = strlen(line);
	if (write(fd, line, len) != (ssize_t)len) {
		*error_r = xasprintf("cannot send to posternd: %s", strerror(errno));
		free(line);
		close(fd);
		return -1;
	}
	free(line);
	size_t size = 4096, used = 0;
	char *reply = xmalloc(size);
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		int r = poll(&pfd, 1, CONTROL_REPLY_TIMEOUT_MS);
		if (r == 0) {
			*error_r = xstrdup("posternd did not answer in time");
			goto fail;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (used + 1 >= size) {
			if (size >= CONTROL_MAX_REPLY) {
				*error_r = xstrdup("reply from posternd too long");
				goto fail;
			}
			size *= 2;
			reply = xrealloc(reply, size);
		}
		ssize_t got = read(fd, reply + used, size - used - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			*error_r = xasprintf("reading from posternd: %s", strerror(errno));
			goto fail;
		}
		if (got == 0)
			break;
		used += (size_t)got;
	}
	close(fd);
	reply[used] = '\0';
	if (used == 0) {
		free(reply);
		*error_r = xstrdup("posternd closed the connection without answering");
		return -1;
	}
	*reply_r = reply;
	return 1;
fail:
	free(reply);
	close(fd);
	return -1;
}

/* the last non-empty line of a reply */
static const char *admin_reply_last_line(const char *reply)
{
	const char *end = reply + strlen(reply);
	while (end > reply && end[-1] == '\n')
		end--;
	const char *start = end;
	while (start > reply && start[-1] != '\n')
		start--;
	return start;
}

int admin_notify_reload(const char *datadir)
{
	char *reply = NULL, *error = NULL;
	int r = admin_control_request(datadir, "reload", &reply, &error);
	if (r == 0)
		return 0;
	if (r < 0) {
		fprintf(stderr, "posternctl: saved, but could not tell posternd: %s\n", error);
		free(error);
		return -1;
	}
	int result = strncmp(admin_reply_last_line(reply), "ok", 2) == 0 ? 0 : -1;
	char *save = NULL;
	for (char *l = strtok_r(reply, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "warning ", 8) == 0)
			fprintf(stderr, "posternctl: %s\n", l + 8);
		else if (strncmp(l, "error ", 6) == 0)
			fprintf(stderr, "posternctl: %s\n", l + 6);
		else if (strncmp(l, "applied ", 8) == 0)
			printf("%s: applied to the running service\n", l + 8);
	}
	free(reply);
	return result;
}

int admin_kick_user(const char *datadir, const char *user)
{
	char *request = xasprintf("kick %s", user);
	char *reply = NULL, *error = NULL;
	int r = admin_control_request(datadir, request, &reply, &error);
	free(request);
	if (r == 0)
		return 0;
	if (r < 0) {
		fprintf(stderr, "posternctl: cannot end %s's sessions: %s\n", user, error);
		free(error);
		return -1;
	}
	int result = strncmp(admin_reply_last_line(reply), "ok", 2) == 0 ? 0 : -1;
	if (result == 0)
		printf("%s: open sessions are being ended\n", user);
	else
		fprintf(stderr, "posternctl: %s", reply);
	free(reply);
	return result;
}
