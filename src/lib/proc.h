#ifndef POSTERN_PROC_H
#define POSTERN_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* Process plumbing for the master: starting role processes and dropping
 * privileges. */

/* Fork and exec argv[0] with argv. In the child, channel_fd becomes fd 3 and
 * every other descriptor above 2 is closed; the child starts with default
 * signal dispositions and an empty signal mask. Returns the child's pid, or
 * -1 with *error_r (malloc'ed). */
pid_t proc_spawn(char *const argv[], int channel_fd, char **error_r);

/* When running as root: switch to the named user and its primary group
 * (supplementary groups cleared). Not root: nothing to do. Returns 0 or -1
 * with *error_r (malloc'ed). */
int proc_drop_privileges(const char *user, char **error_r);

/* Path of the running executable (from /proc/self/exe), malloc'ed. */
char *proc_self_exe(void);

/* Monotonic clock in milliseconds. */
long long proc_now_ms(void);

#endif
