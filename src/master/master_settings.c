#include "master/master.h"

#include <stdlib.h>
#include <string.h>

#include "directory/settings_db.h"
#include "lib/log.h"
#include "lib/xalloc.h"

struct settings_collect {
	struct master_setting *items;
	size_t n;
};

static void master_settings_collect_cb(void *ctx, const char *key, const char *value)
{
	struct settings_collect *c = ctx;
	c->items = xrealloc(c->items, (c->n + 1) * sizeof(*c->items));
	c->items[c->n].key = xstrdup(key);
	c->items[c->n].value = xstrdup(value);
	c->n++;
}

static void master_settings_free(struct master_setting *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(items[i].key);
		free(items[i].value);
	}
	free(items);
}

static bool master_settings_equal(const struct master_setting *a, size_t na,
				  const struct master_setting *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].key, b[i].key) != 0 || strcmp(a[i].value, b[i].value) != 0)
			return false;
	return true;
}

int master_settings_load(struct master *m, bool *changed_r, char **error_r)
{
	struct settings_db *db;
	if (settings_db_open(m->datadir, true, &db, error_r) < 0)
		return -1;
	/* read everything first, so a failure half-way changes nothing */
	struct settings_collect *all = xcalloc(m->nservices, sizeof(*all));
	for (size_t i = 0; i < m->nservices; i++) {
		if (settings_db_foreach(db, m->services[i].def->name, master_settings_collect_cb,
					&all[i], error_r) < 0) {
			for (size_t j = 0; j <= i; j++)
				master_settings_free(all[j].items, all[j].n);
			free(all);
			settings_db_close(&db);
			return -1;
		}
	}
	settings_db_close(&db);
	bool any = false;
	for (size_t i = 0; i < m->nservices; i++) {
		struct master_service *svc = &m->services[i];
		bool changed = !master_settings_equal(svc->settings, svc->nsettings, all[i].items,
						      all[i].n);
		if (changed_r != NULL)
			changed_r[i] = changed;
		any = any || changed;
		master_settings_free(svc->settings, svc->nsettings);
		svc->settings = all[i].items;
		svc->nsettings = all[i].n;
	}
	free(all);
	if (any)
		master_service_info_send(m, NULL);
	return 0;
}

void master_settings_change(struct master *m, struct master_service *svc, pid_t pid, const char *id,
			    const char *service, size_t n, const char *const *keys,
			    const char *const *values)
{
	struct settings_db *db = NULL;
	char *error = NULL;
	/* the same validation and the same writing as `posternctl settings set` */
	if (service == NULL || n == 0) {
		error = xstrdup("name a service and at least one setting");
	} else if (settings_db_open(m->datadir, false, &db, &error) == 0) {
		settings_db_set(db, service, n, keys, values, &error);
		settings_db_close(&db);
	}
	if (error != NULL) {
		char *reply = xasprintf("error %s\n", error);
		master_control_worker_reply(svc, pid, id, reply);
		free(reply);
		free(error);
		return;
	}
	for (size_t i = 0; i < n; i++)
		log_info("%s: %s set to '%s' through the %s service", service, keys[i], values[i],
			 svc->def->name);
	master_control_worker_request(m, svc, pid, id, "reload");
}

const char *master_setting(const struct master_service *svc, const char *key)
{
	for (size_t i = 0; i < svc->nsettings; i++)
		if (strcmp(svc->settings[i].key, key) == 0)
			return svc->settings[i].value;
	return NULL;
}
