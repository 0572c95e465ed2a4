#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "lib/log.h"

/* posternctl: administration of a postern instance. */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: posternctl [-d DIR] COMMAND ...\n"
		"  -d DIR   the instance's data dir (default $POSTERN_DIR or ./postern-data)\n"
		"\n"
		"  init --domain D [--hostname H] [--bind ADDR] [--port-offset N] [--demo-user NAME]\n"
		"  user add|del|list|show|passwd|set ...\n"
		"  settings get|set|reset SERVICE ...\n"
		"  service list|status|start|stop|restart [NAME...]\n"
		"  service set NAME startup=automatic|manual|disabled\n"
		"  backend add|del|list ...\n"
		"  mailbox list|import|export|quota|reindex USER ...\n"
		"  test pop3|imap4 --user NAME [--light] [--connection plaintext|ssl|tls] ...\n"
		"  metrics [--output FILE]\n"
		"\n"
		"Run `posternctl COMMAND --help` for a command's options.\n");
}

static uid_t mail_owner_uid;
static gid_t mail_owner_gid;

static int give_to_mail_owner(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)flag;
	(void)ftw;
	if (st->st_uid == 0 && lchown(path, mail_owner_uid, mail_owner_gid) < 0)
		fprintf(stderr, "posternctl: cannot give %s to postern-mail\n", path);
	return 0;
}

/* Run as root, `mailbox` commands write into the store as root; the back
 * ends run as postern-mail and must own what they serve. */
static void mail_store_fix_owner(const char *datadir)
{
	if (geteuid() != 0)
		return;
	struct passwd *pw = getpwnam("postern-mail");
	if (pw == NULL)
		return;
	mail_owner_uid = pw->pw_uid;
	mail_owner_gid = pw->pw_gid;
	char path[4096];
	snprintf(path, sizeof(path), "%s/mail", datadir);
	nftw(path, give_to_mail_owner, 32, FTW_PHYS);
}

int main(int argc, char **argv)
{
	log_set_process("posternctl");
	const char *datadir = getenv("POSTERN_DIR");
	int i = 1;
	while (i < argc && argv[i][0] == '-') {
		if ((strcmp(argv[i], "-d") == 0 || strcmp(argv[i], "--datadir") == 0) &&
		    i + 1 < argc) {
			datadir = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (datadir == NULL || *datadir == '\0')
		datadir = "./postern-data";

	static const struct {
		const char *name;
		int (*run)(const char *datadir, int argc, char **argv);
	} groups[] = {
		{"init", admin_init_main},
		{"user", admin_user_main},
		{"settings", admin_settings_main},
		{"service", admin_service_main},
		{"mailbox", admin_mailbox_main},
		{"backend", admin_backend_main},
		{"test", admin_test_main},
		{"queue", admin_queue_main},
		{"metrics", admin_metrics_main},
	};
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		if (strcmp(argv[i], groups[g].name) != 0)
			continue;
		int r = groups[g].run(datadir, argc - i, argv + i);
		if (strcmp(argv[i], "mailbox") == 0)
			mail_store_fix_owner(datadir);
		return r;
	}
	fprintf(stderr, "posternctl: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return 2;
}
