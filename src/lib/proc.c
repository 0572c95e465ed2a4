#include "lib/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/xalloc.h"

pid_t proc_spawn(char *const argv[], int channel_fd, char **error_r)
{
	pid_t pid = fork();
	if (pid < 0) {
		*error_r = xasprintf("fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0)
		return pid;

	/* child: only async-signal-safe calls until exec */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	if (channel_fd != 3) {
		if (dup2(channel_fd, 3) < 0)
			_exit(127);
	} else {
		/* dup2 onto itself would keep close-on-exec set */
		int flags = fcntl(3, F_GETFD);
		fcntl(3, F_SETFD, flags & ~FD_CLOEXEC);
	}
	syscall(SYS_close_range, 4U, ~0U, 0U);
	execv(argv[0], argv);
	_exit(127);
}

int proc_drop_privileges(const char *user, char **error_r)
{
	if (geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		*error_r = xasprintf("system user '%s' does not exist (create it, or run as an "
				     "ordinary user)",
				     user);
		return -1;
	}
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		*error_r = xasprintf("cannot switch to user '%s': %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		*error_r = xstrdup("privileges could be regained after dropping them");
		return -1;
	}
	return 0;
}

char *proc_self_exe(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return xstrdup(buf);
}

long long proc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
