#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "lib/xalloc.h"

/* `posternctl metrics`: the running instance's counters in the Prometheus
 * text format, fetched from the master (which holds the shared region)
 * through the control socket. With --output FILE the text is written to
 * FILE.tmp and renamed over FILE, as node-exporter's textfile collector
 * needs (it must never read a half-written file). */

#define EXIT_NOT_RUNNING 3

static void metrics_usage(FILE *out)
{
	fprintf(out,
		"usage: posternctl metrics [--output FILE]\n"
		"  print the counters of the running instance in the Prometheus text format\n"
		"  --output FILE  write them to FILE instead, atomically (for node-exporter's\n"
		"                 textfile collector: FILE should end in .prom)\n");
}

static int metrics_write_file(const char *path, const char *text, size_t len)
{
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL) {
		fprintf(stderr, "posternctl: %s: %s\n", tmp, strerror(errno));
		free(tmp);
		return 1;
	}
	bool ok = fwrite(text, 1, len, f) == len;
	ok = fflush(f) == 0 && ok;
	ok = fsync(fileno(f)) == 0 && ok;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		fprintf(stderr, "posternctl: cannot write %s: %s\n", path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return 1;
	}
	free(tmp);
	return 0;
}

int admin_metrics_main(const char *datadir, int argc, char **argv)
{
	const char *output = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			metrics_usage(stdout);
			return 0;
		}
		if ((strcmp(argv[i], "--output") == 0 || strcmp(argv[i], "-o") == 0) &&
		    i + 1 < argc) {
			output = argv[++i];
			continue;
		}
		metrics_usage(stderr);
		return 2;
	}
	char *reply = NULL, *error = NULL;
	int r = admin_control_request(datadir, "metrics", &reply, &error);
	if (r < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		return 1;
	}
	if (r == 0) {
		fprintf(stderr, "posternctl: posternd is not running on %s\n", datadir);
		return EXIT_NOT_RUNNING;
	}
	/* the reply is the text, then one line "ok" (or "error TEXT") */
	size_t len = strlen(reply);
	while (len > 0 && reply[len - 1] == '\n')
		len--;
	size_t last = len;
	while (last > 0 && reply[last - 1] != '\n')
		last--;
	int result = 0;
	if (strncmp(reply + last, "ok", 2) != 0 || last + 2 != len) {
		fprintf(stderr, "posternctl: %.*s\n", (int)(len - last), reply + last);
		result = 1;
	} else if (output != NULL) {
		result = metrics_write_file(output, reply, last);
	} else if (fwrite(reply, 1, last, stdout) != last || fflush(stdout) != 0) {
		result = 1;
	}
	free(reply);
	return result;
}
