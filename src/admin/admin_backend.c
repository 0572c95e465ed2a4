#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "directory/directory.h"
#include "lib/xalloc.h"

/* `posternctl backend ...`: the servers that hold mailboxes. Front ends
 * route each user to the back end the directory names for the user. */

static void backend_usage(FILE *out)
{
	fprintf(out, "usage: posternctl backend add NAME [imap4=ADDR] [pop3=ADDR] [lmtp=ADDR]\n"
		     "       posternctl backend del NAME\n"
		     "       posternctl backend list\n"
		     "  ADDR is where the back end's service listens: addr:port, [v6]:port or\n"
		     "  unix:/path. Users are placed with `user add --backend` or `user set NAME\n"
		     "  backend=NAME`.\n");
}

static int backend_add(struct directory *dir, int argc, char **argv)
{
	struct directory_backend b = {.name = argv[0]};
	for (int i = 1; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		char **slot = NULL;
		if (eq != NULL && strncmp(argv[i], "imap4=", 6) == 0)
			slot = &b.imap4_address;
		else if (eq != NULL && strncmp(argv[i], "pop3=", 5) == 0)
			slot = &b.pop3_address;
		else if (eq != NULL && strncmp(argv[i], "lmtp=", 5) == 0)
			slot = &b.lmtp_address;
		if (slot == NULL || *slot != NULL) {
			fprintf(stderr, "posternctl: backend add: '%s': expected imap4=ADDR, "
					"pop3=ADDR or lmtp=ADDR, each once\n",
				argv[i]);
			return 1;
		}
		*slot = eq + 1;
	}
	char *error = NULL;
	int r = directory_backend_add(dir, &b, &error);
	if (r <= 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		return 1;
	}
	printf("back end %s added\n", b.name);
	return 0;
}

static int backend_list(struct directory *dir)
{
	struct directory_backend *list = NULL;
	size_t n = 0;
	char *error = NULL;
	if (directory_backend_list(dir, &list, &n, &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		return 1;
	}
	printf("%-16s %-28s %-28s %s\n", "NAME", "IMAP4", "POP3", "LMTP");
	for (size_t i = 0; i < n; i++)
		printf("%-16s %-28s %-28s %s\n", list[i].name,
		       *list[i].imap4_address ? list[i].imap4_address : "-",
		       *list[i].pop3_address ? list[i].pop3_address : "-",
		       *list[i].lmtp_address ? list[i].lmtp_address : "-");
	directory_backend_list_free(&list, n);
	return 0;
}

int admin_backend_main(const char *datadir, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		backend_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *action = argv[1];
	bool list = strcmp(action, "list") == 0;
	if (!list && strcmp(action, "add") != 0 && strcmp(action, "del") != 0) {
		fprintf(stderr, "posternctl: unknown backend action '%s'\n", action);
		backend_usage(stderr);
		return 2;
	}
	if ((list && argc != 2) || (!list && argc < 3) || (strcmp(action, "del") == 0 && argc != 3)) {
		backend_usage(stderr);
		return 2;
	}
	struct directory *dir = NULL;
	char *error = NULL;
	if (directory_open(datadir, list, &dir, &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		return 1;
	}
	int result;
	if (list) {
		result = backend_list(dir);
	} else if (strcmp(action, "add") == 0) {
		result = backend_add(dir, argc - 2, argv + 2);
	} else {
		int r = directory_backend_del(dir, argv[2], &error);
		if (r <= 0) {
			fprintf(stderr, "posternctl: %s\n",
				r == 0 ? "no such back end" : error);
			free(error);
			result = 1;
		} else {
			printf("back end %s removed\n", argv[2]);
			result = 0;
		}
	}
	directory_close(&dir);
	return result;
}
