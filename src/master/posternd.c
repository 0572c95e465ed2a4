#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authd/authd.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/proc.h"
#include "lib/worker.h"
#include "lib/xalloc.h"
#include "master/master.h"

/* posternd: the master process, and (when started by the master with
 * --worker or --authd) one of its role processes. */

static void usage(FILE *out)
{
	fprintf(out, "usage: posternd [-d DIR] [--syslog] [--debug]\n"
		     "  -d, --datadir DIR  the instance's data dir (default $POSTERN_DIR or "
		     "./postern-data)\n"
		     "  --syslog           log to syslog (facility mail) instead of stderr\n"
		     "  --debug            log debug lines too\n");
}

static void master_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct master *m = arg;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		master_shutdown(m);
		break;
	case SIGHUP: {
		char *error = NULL;
		bool *changed = xcalloc(m->nservices, sizeof(*changed));
		if (master_settings_load(m, changed, &error) < 0) {
			log_error("reload: %s", error);
			free(error);
		} else {
			for (size_t i = 0; i < m->nservices; i++) {
				if (changed[i] &&
				    master_service_apply_settings(&m->services[i], &error) < 0) {
					log_warn("%s", error);
					free(error);
				}
			}
		}
		free(changed);
		break;
	}
	case SIGCHLD:
		master_reap_children(m);
		break;
	default:
		break;
	}
}

/* Started as root, the roles run as their own users: give each the part of
 * the data dir it works in, and say so when the path to the data dir is not
 * searchable by them. */
static void master_prepare_permissions(const char *datadir)
{
	if (geteuid() != 0)
		return;
	/* getpwnam() returns one static buffer: copy what is needed at once */
	struct passwd *pw = getpwnam("postern-mail");
	bool have_mail = pw != NULL;
	uid_t mail_uid = have_mail ? pw->pw_uid : 0;
	gid_t mail_gid = have_mail ? pw->pw_gid : 0;
	pw = getpwnam("postern-front");
	bool have_front = pw != NULL;
	uid_t front_uid = have_front ? pw->pw_uid : 0;
	gid_t front_gid = have_front ? pw->pw_gid : 0;
	char *path = xasprintf("%s/mail", datadir);
	if (have_mail && chown(path, mail_uid, mail_gid) == 0)
		chmod(path, 0700);
	else
		log_warn("cannot give %s to postern-mail: %s", path,
			 !have_mail ? "no such user" : strerror(errno));
	free(path);
	/* the submission service's outbound queue */
	static const char *const queue_dirs[] = {"queue", "queue/tmp"};
	for (size_t i = 0; i < 2 && have_front; i++) {
		path = xasprintf("%s/%s", datadir, queue_dirs[i]);
		if ((mkdir(path, 0700) == 0 || errno == EEXIST) &&
		    chown(path, front_uid, front_gid) == 0)
			chmod(path, 0700);
		else
			log_warn("cannot give %s to postern-front: %s", path, strerror(errno));
		free(path);
	}
	if (have_front) {
		static const struct {
			const char *name;
			mode_t mode;
		} tls_files[] = {{"tls", 0750}, {"tls/server.crt", 0644}, {"tls/server.key", 0640}};
		for (size_t i = 0; i < sizeof(tls_files) / sizeof(tls_files[0]); i++) {
			path = xasprintf("%s/%s", datadir, tls_files[i].name);
			if (chown(path, 0, front_gid) == 0)
				chmod(path, tls_files[i].mode);
			free(path);
		}
	}
	/* each service writes its protocol logs into its own folder; the role
	 * users may pass through logs/ but not list it */
	path = xasprintf("%s/logs", datadir);
	chmod(path, 0711);
	free(path);
	for (const struct service_def *d = service_defs; d->name != NULL; d++) {
		pw = getpwnam(d->role_user);
		if (pw == NULL)
			continue;
		uid_t uid = pw->pw_uid;
		gid_t gid = pw->pw_gid;
		path = xasprintf("%s/logs/%s", datadir, d->name);
		mkdir(path, 0750);
		if (chown(path, uid, gid) < 0)
			log_warn("cannot give %s to %s: %s", path, d->role_user, strerror(errno));
		free(path);
	}
	/* every directory on the way must be searchable by the role users */
	char *copy = xstrdup(datadir);
	for (char *slash = copy; slash != NULL; slash = strchr(slash + 1, '/')) {
		char saved = slash[1];
		slash[1] = '\0';
		struct stat st;
		if (stat(copy, &st) == 0 && (st.st_mode & S_IXOTH) == 0)
			log_warn("%s is not searchable by others: the postern-* role users cannot "
				 "reach the data dir (chmod o+x it)",
				 copy);
		slash[1] = saved;
		if (saved == '\0')
			break;
	}
	struct stat st;
	if (stat(datadir, &st) == 0 && (st.st_mode & S_IXOTH) == 0)
		log_warn("%s is not searchable by others: the postern-* role users cannot use it "
			 "(chmod o+x it)",
			 datadir);
	free(copy);
}

static int master_write_pidfile(const char *datadir, char **error_r)
{
	char *path = xasprintf("%s/posternd.pid", datadir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	dprintf(fd, "%ld\n", (long)getpid());
	close(fd);
	free(path);
	return 0;
}

/* Raise the soft limit of open descriptors to the hard limit before any
 * role process starts (they inherit it): a worker holds two or three
 * descriptors per connection, and the usual soft limit of 1024 would
 * refuse connections long before the host runs out. */
static void master_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return;
	}
	rlim_t want = rl.rlim_max;
	if (want == RLIM_INFINITY) {
		/* the kernel refuses an infinite descriptor limit: its ceiling */
		unsigned long long nr_open = 1048576;
		FILE *fp = fopen("/proc/sys/fs/nr_open", "re");
		if (fp != NULL) {
			if (fscanf(fp, "%llu", &nr_open) != 1)
				nr_open = 1048576;
			fclose(fp);
		}
		want = (rlim_t)nr_open;
		rl.rlim_max = want;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want) {
		log_debug("open descriptors: limit %llu", (unsigned long long)rl.rlim_cur);
		return;
	}
	rlim_t old = rl.rlim_cur;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("cannot raise the limit of open descriptors from %llu to %llu: %s",
			 (unsigned long long)old, (unsigned long long)want, strerror(errno));
		return;
	}
	log_info("open descriptors: limit raised from %llu to %llu (the hard limit)",
		 (unsigned long long)old, (unsigned long long)want);
}

static int master_run(const char *datadir)
{
	struct master m = {0};
	m.datadir = xstrdup(datadir);
	m.control_fd = -1;
	m.metrics_fd = -1;
	m.exe = proc_self_exe();
	if (m.exe == NULL) {
		log_error("cannot find the posternd executable (/proc/self/exe)");
		free(m.datadir);
		return 1;
	}
	struct stat st;
	if (stat(datadir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_error("data dir %s: %s", datadir,
			  errno != 0 ? strerror(errno) : "not a directory");
		master_free(&m);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	master_raise_nofile();
	char *metrics_error = NULL;
	m.metrics_fd = metrics_create(&metrics_error);
	if (m.metrics_fd < 0) {
		log_warn("metrics are not counted: %s", metrics_error);
		free(metrics_error);
	}
	m.base = event_base_new();
	master_services_init(&m);
	char *error = NULL;
	if (master_settings_load(&m, NULL, &error) < 0 || master_control_open(&m, &error) < 0 ||
	    master_write_pidfile(datadir, &error) < 0) {
		log_error("%s", error);
		free(error);
		master_control_close(&m);
		master_free(&m);
		return 1;
	}
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
	struct event *sig_evs[4];
	for (size_t i = 0; i < 4; i++) {
		sig_evs[i] = evsignal_new(m.base, sigs[i], master_signal_cb, &m);
		event_add(sig_evs[i], NULL);
	}
	if (master_authd_start(&m, &error) < 0) {
		log_error("cannot start authd: %s", error);
		free(error);
		master_control_close(&m);
		for (size_t i = 0; i < 4; i++)
			event_free(sig_evs[i]);
		master_free(&m);
		return 1;
	}
	master_prepare_permissions(datadir);
	log_info("posternd started on %s", datadir);
	for (size_t i = 0; i < m.nservices; i++) {
		struct master_service *svc = &m.services[i];
		const char *startup = master_setting(svc, "startup");
		if (startup == NULL || strcmp(startup, "automatic") != 0)
			continue;
		if (svc->def->ops == NULL) {
			log_info("%s: startup is automatic but this build has no %s protocol yet; "
				 "not started",
				 svc->def->name, svc->def->name);
			continue;
		}
		if (master_service_start(svc, &error) < 0) {
			log_error("%s", error);
			free(error);
		}
	}
	event_base_dispatch(m.base);
	master_control_close(&m);
	char *pidfile = xasprintf("%s/posternd.pid", datadir);
	unlink(pidfile);
	free(pidfile);
	for (size_t i = 0; i < 4; i++)
		event_free(sig_evs[i]);
	master_free(&m);
	log_info("posternd stopped");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"datadir", required_argument, NULL, 'd'},
		{"syslog", no_argument, NULL, 's'},
		{"debug", no_argument, NULL, 'D'},
		{"worker", required_argument, NULL, 'w'},
		{"authd", no_argument, NULL, 'a'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *datadir = getenv("POSTERN_DIR");
	const char *worker = NULL;
	bool authd = false;
	int c;
	while ((c = getopt_long(argc, argv, "d:h", options, NULL)) != -1) {
		switch (c) {
		case 'd':
			datadir = optarg;
			break;
		case 's':
			log_use_syslog(true);
			break;
		case 'D':
			log_set_level(LOG_LEVEL_DEBUG);
			break;
		case 'w':
			worker = optarg;
			break;
		case 'a':
			authd = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (datadir == NULL || *datadir == '\0')
		datadir = "./postern-data";
	char *abs = realpath(datadir, NULL);
	if (abs == NULL) {
		fprintf(stderr, "posternd: data dir %s: %s (create one with `posternctl -d %s init "
				"--domain example.org`)\n",
			datadir, strerror(errno), datadir);
		return 1;
	}
	if (authd) {
		log_set_process("authd");
		authd_main(abs, 3);
	}
	if (worker != NULL) {
		const struct service_def *def = service_def_find(worker);
		if (def == NULL || def->ops == NULL) {
			fprintf(stderr, "posternd: no such service: %s\n", worker);
			return 2;
		}
		log_set_process(def->name);
		worker_main(def->ops, abs, 3, def->role_user);
	}
	log_set_process("posternd");
	int r = master_run(abs);
	free(abs);
	return r;
}
