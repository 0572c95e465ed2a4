#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "directory/settings_db.h"
#include "lib/settings.h"
#include "lib/xalloc.h"

/* `posternctl service ...`: acts on the running master through its control
 * socket; `service set` persists the startup type in settings.db. */

#define EXIT_NOT_RUNNING 3


static const char *status_get(char *line_copy, size_t len, const char *key)
{
	size_t klen = strlen(key);
	for (char *p = line_copy; p < line_copy + len; p += strlen(p) + 1)
		if (strncmp(p, key, klen) == 0 && p[klen] == '=')
			return p + klen + 1;
	return "";
}

static void service_usage(FILE *out)
{
	fprintf(out, "usage: posternctl service list\n"
		     "       posternctl service status [NAME...]\n"
		     "       posternctl service start|stop|restart NAME...\n"
		     "       posternctl service set NAME startup=automatic|manual|disabled\n");
}

static int service_check_names(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (!settings_service_known(argv[i])) {
			fprintf(stderr, "posternctl: unknown service '%s' (services:", argv[i]);
			for (const char *const *s = settings_services; *s != NULL; s++)
				fprintf(stderr, " %s", *s);
			fprintf(stderr, ")\n");
			return -1;
		}
	}
	return 0;
}

/* list and status; offline (no master) shows the persisted startup types */
static int service_show(const char *datadir, int argc, char **argv, bool detailed)
{
	if (service_check_names(argc, argv) < 0)
		return 1;
	char *request = xstrdup("status");
	for (int i = 0; i < argc; i++) {
		char *next = xasprintf("%s %s", request, argv[i]);
		free(request);
		request = next;
	}
	char *reply = NULL, *error = NULL;
	int r = admin_control_request(datadir, request, &reply, &error);
	free(request);
	if (r < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		return 1;
	}
	if (r == 0) {
		struct settings_db *db;
		if (settings_db_open(datadir, true, &db, &error) < 0) {
			fprintf(stderr, "posternctl: %s\n", error);
			free(error);
			return 1;
		}
		printf("%-14s %-10s %s\n", "SERVICE", "STARTUP", "STATE");
		for (const char *const *s = settings_services; *s != NULL; s++) {
			bool named = argc == 0;
			for (int i = 0; i < argc; i++)
				named = named || strcmp(argv[i], *s) == 0;
			if (!named)
				continue;
			char *startup = NULL;
			if (settings_db_get(db, *s, "startup", &startup, &error) < 0) {
				free(error);
				error = NULL;
			}
			printf("%-14s %-10s %s\n", *s, startup != NULL ? startup : "?", "stopped");
			free(startup);
		}
		settings_db_close(&db);
		fprintf(stderr, "posternctl: posternd is not running on %s\n", datadir);
		return detailed || argc > 0 ? EXIT_NOT_RUNNING : 0;
	}

	int result = 0;
	if (!detailed)
		printf("%-14s %-10s %-12s %s\n", "SERVICE", "STARTUP", "STATE", "LISTENERS");
	char *save = NULL;
	for (char *line = strtok_r(reply, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "error ", 6) == 0) {
			fprintf(stderr, "posternctl: %s\n", line + 6);
			result = 1;
			continue;
		}
		if (strncmp(line, "service=", 8) != 0)
			continue;
		size_t len = strlen(line);
		for (char *p = line; *p != '\0'; p++)
			if (*p == '\t')
				*p = '\0';
		const char *name = status_get(line, len, "service");
		const char *state = status_get(line, len, "state");
		const char *listeners = status_get(line, len, "listeners");
		const char *err = status_get(line, len, "error");
		if (!detailed) {
			bool available = strcmp(status_get(line, len, "available"), "no") != 0;
			printf("%-14s %-10s %-12s %s\n", name, status_get(line, len, "startup"), state,
			       !available  ? "- (not in this build)"
			       : *listeners ? listeners
					    : "-");
		} else {
			printf("%s\n", name);
			printf("  state:       %s\n", state);
			printf("  startup:     %s\n", status_get(line, len, "startup"));
			printf("  pids:        %s\n", *status_get(line, len, "pids")
							  ? status_get(line, len, "pids")
							  : "-");
			printf("  uptime:      %s s\n", status_get(line, len, "uptime"));
			printf("  connections: %s\n", status_get(line, len, "connections"));
			printf("  restarts:    %s\n", status_get(line, len, "restarts"));
			printf("  listeners:   %s\n", *listeners ? listeners : "-");
			if (*err)
				printf("  error:       %s\n", err);
			if (strcmp(status_get(line, len, "available"), "no") == 0)
				printf("  note:        this build has no %s protocol yet\n", name);
		}
		if (argc > 0 && strcmp(state, "running") != 0)
			result = EXIT_NOT_RUNNING;
	}
	free(reply);
	return result;
}

static int service_action(const char *datadir, const char *action, int argc, char **argv)
{
	if (argc == 0) {
		service_usage(stderr);
		return 2;
	}
	if (service_check_names(argc, argv) < 0)
		return 1;
	int result = 0;
	for (int i = 0; i < argc; i++) {
		char *request = xasprintf("%s %s", action, argv[i]);
		char *reply = NULL, *error = NULL;
		int r = admin_control_request(datadir, request, &reply, &error);
		free(request);
		if (r == 0) {
			fprintf(stderr, "posternctl: posternd is not running on %s (start it with "
					"`posternd -d %s`)\n",
				datadir, datadir);
			return EXIT_NOT_RUNNING;
		}
		if (r < 0) {
			fprintf(stderr, "posternctl: %s\n", error);
			free(error);
			return 1;
		}
		bool ok = false;
		char *save = NULL;
		for (char *l = strtok_r(reply, "\n", &save); l != NULL;
		     l = strtok_r(NULL, "\n", &save)) {
			if (strcmp(l, "ok") == 0)
				ok = true;
			else if (strncmp(l, "error ", 6) == 0 || strncmp(l, "warning ", 8) == 0)
				fprintf(stderr, "posternctl: %s\n", strchr(l, ' ') + 1);
		}
		free(reply);
		if (ok)
			printf("%s: %s\n", argv[i],
			       strcmp(action, "stop") == 0 ? "stopped" : "running");
		else
			result = 1;
	}
	return result;
}

static int service_set(const char *datadir, int argc, char **argv)
{
	if (argc < 2) {
		service_usage(stderr);
		return 2;
	}
	if (service_check_names(1, argv) < 0)
		return 1;
	const char **keys = xcalloc((size_t)argc, sizeof(*keys));
	const char **values = xcalloc((size_t)argc, sizeof(*values));
	char **copies = xcalloc((size_t)argc, sizeof(*copies));
	size_t n = 0;
	int result = 1;
	for (int i = 1; i < argc; i++) {
		copies[n] = xstrdup(argv[i]);
		char *eq = strchr(copies[n], '=');
		if (eq == NULL || strncmp(copies[n], "startup=", 8) != 0) {
			fprintf(stderr, "posternctl: expected startup=automatic|manual|disabled, "
					"got '%s'\n",
				argv[i]);
			n++;
			goto out;
		}
		*eq = '\0';
		keys[n] = copies[n];
		values[n] = eq + 1;
		n++;
	}
	struct settings_db *db;
	char *error = NULL;
	if (settings_db_open(datadir, false, &db, &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		goto out;
	}
	if (settings_db_set(db, argv[0], n, keys, values, &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		settings_db_close(&db);
		goto out;
	}
	settings_db_close(&db);
	printf("%s: startup=%s\n", argv[0], values[n - 1]);
	admin_notify_reload(datadir);
	result = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(copies[i]);
	free(copies);
	free(keys);
	free(values);
	return result;
}

int admin_service_main(const char *datadir, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		service_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *action = argv[1];
	int rest = argc - 2;
	char **rest_argv = argv + 2;
	if (strcmp(action, "list") == 0)
		return service_show(datadir, rest, rest_argv, false);
	if (strcmp(action, "status") == 0)
		return service_show(datadir, rest, rest_argv, true);
	if (strcmp(action, "start") == 0 || strcmp(action, "stop") == 0 ||
	    strcmp(action, "restart") == 0)
		return service_action(datadir, action, rest, rest_argv);
	if (strcmp(action, "set") == 0)
		return service_set(datadir, rest, rest_argv);
	fprintf(stderr, "posternctl: unknown service action '%s'\n", action);
	service_usage(stderr);
	return 2;
}
