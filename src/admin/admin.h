#ifndef POSTERN_ADMIN_H
#define POSTERN_ADMIN_H

/* posternctl's command groups. Each takes the instance's data dir and the
 * arguments from the group name on (argv[0] is "user", "settings", ...), and
 * returns the process exit code: 0 success, 1 failure (a message on stderr
 * that says what was wrong and what is accepted), 2 usage error. */
int admin_init_main(const char *datadir, int argc, char **argv);
int admin_user_main(const char *datadir, int argc, char **argv);
int admin_settings_main(const char *datadir, int argc, char **argv);
int admin_service_main(const char *datadir, int argc, char **argv);
int admin_mailbox_main(const char *datadir, int argc, char **argv);
int admin_backend_main(const char *datadir, int argc, char **argv);
int admin_test_main(const char *datadir, int argc, char **argv);
int admin_queue_main(const char *datadir, int argc, char **argv);
int admin_metrics_main(const char *datadir, int argc, char **argv);

/* Send one command line to the running master's control socket
 * (DATADIR/control.sock) and read its reply.
 * Returns 1 with *reply_r (malloc'ed, may hold several lines; the first
 * word of the last line is "ok" or "error"), 0 when no master is running,
 * -1 with *error_r (malloc'ed) on any other failure. */
int admin_control_request(const char *datadir, const char *command, char **reply_r,
			  char **error_r);

/* Tell a running master that settings changed ("reload"). Prints what the
 * master reported (listeners rebound, bind errors) to stdout/stderr.
 * Returns 0 when the master applied it or none is running, -1 when it
 * reported an error. */
int admin_notify_reload(const char *datadir);

/* End every open session of user in the running master's services.
 * Prints how many were ended. Returns 0 (also when no master runs), -1
 * when the master could not be asked. */
int admin_kick_user(const char *datadir, const char *user);

#endif
