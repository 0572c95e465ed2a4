#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "directory/settings_db.h"
#include "lib/settings.h"
#include "lib/xalloc.h"

/* `posternctl settings ...`: per-service settings in settings.db. A set
 * validates every pair before it writes any; a running master is told to
 * reload after a change. */

static void admin_settings_usage(FILE *out)
{
	fprintf(out,
		"usage: posternctl settings get SERVICE [KEY...]\n"
		"       posternctl settings set SERVICE KEY=VALUE [KEY=VALUE...]\n"
		"       posternctl settings reset SERVICE KEY...\n"
		"       posternctl settings help SERVICE [KEY...]\n"
		"  services: imap4, imap4-backend, pop3, pop3-backend, submission, lmtp, http\n");
}

/* Print the schema's unknown-service or unknown-key error; false then. */
static bool admin_settings_known(const char *service, const char *key)
{
	if (settings_service_known(service) && (key == NULL || settings_key_known(service, key)))
		return true;
	char *norm = NULL, *error = NULL;
	if (settings_validate(service, key == NULL ? "startup" : key, "", &norm, &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
	}
	free(norm);
	return false;
}

struct admin_settings_rows {
	size_t n;
	char **keys;
	char **values;
};

static void admin_settings_rows_add(void *ctx, const char *key, const char *value)
{
	struct admin_settings_rows *rows = ctx;
	rows->keys = xrealloc(rows->keys, (rows->n + 1) * sizeof(*rows->keys));
	rows->values = xrealloc(rows->values, (rows->n + 1) * sizeof(*rows->values));
	rows->keys[rows->n] = xstrdup(key);
	rows->values[rows->n] = xstrdup(value);
	rows->n++;
}

/* Print the rows aligned (when print) and free them. */
static void admin_settings_rows_print_free(struct admin_settings_rows *rows, bool print)
{
	int width = 0;
	for (size_t i = 0; i < rows->n; i++) {
		int n = (int)strlen(rows->keys[i]);
		width = n > width ? n : width;
	}
	for (size_t i = 0; i < rows->n; i++) {
		if (print)
			printf("%-*s = %s\n", width, rows->keys[i], rows->values[i]);
		free(rows->keys[i]);
		free(rows->values[i]);
	}
	free(rows->keys);
	free(rows->values);
}

static int admin_settings_get(const char *datadir, int argc, char **argv)
{
	if (argc < 2) {
		admin_settings_usage(stderr);
		return 2;
	}
	const char *service = argv[1];
	for (int i = 2; i < argc; i++)
		if (!admin_settings_known(service, argv[i]))
			return 1;
	if (!admin_settings_known(service, NULL))
		return 1;
	struct settings_db *db;
	char *error = NULL;
	if (settings_db_open(datadir, true, &db, &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		return 1;
	}
	struct admin_settings_rows rows = {0};
	int ret = 0;
	if (argc == 2) {
		ret = settings_db_foreach(db, service, admin_settings_rows_add, &rows, &error);
	} else {
		for (int i = 2; i < argc && ret == 0; i++) {
			char *value;
			ret = settings_db_get(db, service, argv[i], &value, &error);
			if (ret == 0) {
				admin_settings_rows_add(&rows, argv[i], value);
				free(value);
			}
		}
	}
	settings_db_close(&db);
	if (ret < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
	}
	admin_settings_rows_print_free(&rows, ret == 0);
	return ret < 0 ? 1 : 0;
}

static int admin_settings_set(const char *datadir, int argc, char **argv)
{
	if (argc < 3) {
		admin_settings_usage(stderr);
		return 2;
	}
	const char *service = argv[1];
	if (!admin_settings_known(service, NULL))
		return 1;
	size_t n = (size_t)argc - 2;
	char **copies = xcalloc(n, sizeof(*copies));
	const char **keys = xcalloc(n, sizeof(*keys));
	const char **values = xcalloc(n, sizeof(*values));
	int result = 1;
	for (size_t i = 0; i < n; i++) {
		copies[i] = xstrdup(argv[i + 2]);
		char *eq = strchr(copies[i], '=');
		if (eq == NULL) {
			fprintf(stderr, "posternctl: settings set: '%s': expected KEY=VALUE\n",
				argv[i + 2]);
			goto out;
		}
		*eq = '\0';
		keys[i] = copies[i];
		values[i] = eq + 1;
	}
	struct settings_db *db;
	char *error = NULL;
	if (settings_db_open(datadir, false, &db, &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		goto out;
	}
	if (settings_db_set(db, service, n, keys, values, &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		settings_db_close(&db);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char *value = NULL;
		if (settings_db_get(db, service, keys[i], &value, &error) == 0)
			printf("%s: %s = %s\n", service, keys[i], value);
		else
			free(error);
		free(value);
	}
	settings_db_close(&db);
	result = admin_notify_reload(datadir) < 0 ? 1 : 0;
out:
	for (size_t i = 0; i < n; i++)
		free(copies[i]);
	free(copies);
	free(keys);
	free(values);
	return result;
}

static int admin_settings_reset(const char *datadir, int argc, char **argv)
{
	if (argc < 3) {
		admin_settings_usage(stderr);
		return 2;
	}
	const char *service = argv[1];
	for (int i = 2; i < argc; i++)
		if (!admin_settings_known(service, argv[i]))
			return 1;
	struct settings_db *db;
	char *error = NULL;
	if (settings_db_open(datadir, false, &db, &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		return 1;
	}
	size_t n = (size_t)argc - 2;
	if (settings_db_reset(db, service, n, (const char *const *)(argv + 2), &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		settings_db_close(&db);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		char *value = NULL;
		if (settings_db_get(db, service, argv[i + 2], &value, &error) == 0)
			printf("%s: %s = %s (default)\n", service, argv[i + 2], value);
		else
			free(error);
		free(value);
	}
	settings_db_close(&db);
	return admin_notify_reload(datadir) < 0 ? 1 : 0;
}

static void admin_settings_help_cb(void *ctx, const char *key, const char *help)
{
	const char *service = ctx;
	printf("%s\n    %s (default: '%s')\n", key, help, settings_default(service, key));
}

static int admin_settings_help(int argc, char **argv)
{
	if (argc < 2) {
		admin_settings_usage(stderr);
		return 2;
	}
	const char *service = argv[1];
	if (!admin_settings_known(service, NULL))
		return 1;
	for (int i = 2; i < argc; i++)
		if (!admin_settings_known(service, argv[i]))
			return 1;
	if (argc == 2)
		settings_foreach_key(service, admin_settings_help_cb, (void *)service);
	for (int i = 2; i < argc; i++)
		admin_settings_help_cb((void *)service, argv[i], settings_help(service, argv[i]));
	return 0;
}

int admin_settings_main(const char *datadir, int argc, char **argv)
{
	if (argc < 2) {
		admin_settings_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		admin_settings_usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "get") == 0)
		return admin_settings_get(datadir, argc - 1, argv + 1);
	if (strcmp(argv[1], "set") == 0)
		return admin_settings_set(datadir, argc - 1, argv + 1);
	if (strcmp(argv[1], "reset") == 0)
		return admin_settings_reset(datadir, argc - 1, argv + 1);
	if (strcmp(argv[1], "help") == 0)
		return admin_settings_help(argc - 1, argv + 1);
	fprintf(stderr, "posternctl: settings: unknown command '%s'\n", argv[1]);
	admin_settings_usage(stderr);
	return 2;
}
