#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

/* posternctl queue: the submission service's outbound queue
 * (DATADIR/queue, see src/queue/queue.h). Changes take the entry's lock,
 * so they never race with a delivery in progress: they wait for it. */

static void admin_queue_usage(FILE *out)
{
	fprintf(out, "usage: posternctl queue list\n"
		     "       posternctl queue show ID\n"
		     "       posternctl queue flush [ID...]\n"
		     "       posternctl queue delete ID...\n"
		     "  list shows every queued message; flush makes the given messages (all\n"
		     "  when none is given) due for delivery now (the submission service\n"
		     "  tries them within a few seconds); delete removes messages without a\n"
		     "  report to their sender.\n");
}

static void admin_queue_time(long long t, char *buf, size_t size)
{
	if (t <= 0) {
		snprintf(buf, size, "now");
		return;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

/* Run as root, a rewritten envelope must stay the service's (the queue
 * dir's owner). */
static void admin_queue_fix_owner(const char *dir, const char *id)
{
	if (geteuid() != 0)
		return;
	struct stat st;
	if (stat(dir, &st) < 0)
		return;
	char *env = xasprintf("%s/%s.env", dir, id);
	if (chown(env, st.st_uid, st.st_gid) < 0)
		fprintf(stderr, "posternctl: cannot give %s back to the queue's owner\n", env);
	free(env);
}

static int admin_queue_list(const char *dir)
{
	char **ids = NULL;
	size_t n = 0;
	char *error = NULL;
	if (queue_list(dir, &ids, &n, &error) < 0) {
		fprintf(stderr, "posternctl: %s\n", error);
		free(error);
		return 1;
	}
	printf("%-24s  %-19s  %10s  %-8s  %s\n", "ID", "NEXT TRY", "SIZE", "PENDING", "SENDER");
	for (size_t i = 0; i < n; i++) {
		struct queue_entry *e = NULL;
		if (queue_entry_load(dir, ids[i], &e, &error) <= 0) {
			free(error);
			error = NULL;
			continue; /* delivered meanwhile */
		}
		size_t pending = 0;
		for (size_t k = 0; k < e->nrcpts; k++)
			pending += e->rcpts[k].state == QUEUE_RCPT_PENDING;
		char next[32], count[24];
		admin_queue_time(e->next_try, next, sizeof(next));
		snprintf(count, sizeof(count), "%zu/%zu", pending, e->nrcpts);
		printf("%-24s  %-19s  %10llu  %-8s  <%s>\n", e->id, next,
		       (unsigned long long)e->size, count, e->sender);
		queue_entry_free(&e);
	}
	printf("%zu message%s queued\n", n, n == 1 ? "" : "s");
	queue_ids_free(&ids, n);
	return 0;
}

static int admin_queue_show(const char *dir, const char *id)
{
	struct queue_entry *e = NULL;
	char *error = NULL;
	int r = queue_entry_load(dir, id, &e, &error);
	if (r <= 0) {
		fprintf(stderr, "posternctl: %s\n", r < 0 ? error : "no such queued message");
		free(error);
		return 1;
	}
	char created[32], next[32];
	admin_queue_time(e->created, created, sizeof(created));
	admin_queue_time(e->next_try, next, sizeof(next));
	printf("id: %s\nsender: <%s>\nuser: %s\nsize: %llu\ncreated: %s\nattempts: %u\n"
	       "next try: %s\n",
	       e->id, e->sender, e->user[0] != '\0' ? e->user : "-", (unsigned long long)e->size,
	       created, e->attempts, next);
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct queue_rcpt *rc = &e->rcpts[i];
		printf("recipient: <%s> %s %s%s%s\n", rc->address, queue_route_name(rc->route),
		       queue_rcpt_state_name(rc->state), rc->status[0] != '\0' ? ": " : "",
		       rc->status);
	}
	queue_entry_free(&e);
	return 0;
}

/* Apply to one entry under its lock: flush (next try now) or delete. */
static int admin_queue_change(const char *dir, const char *id, bool delete)
{
	int fd = -1;
	char *error = NULL;
	int r = queue_entry_lock(dir, id, true, &fd, &error);
	if (r <= 0) {
		fprintf(stderr, "posternctl: %s: %s\n", id,
			r < 0 ? error : "no such queued message");
		free(error);
		return 1;
	}
	if (delete) {
		r = queue_entry_remove(dir, id, &error);
	} else {
		struct queue_entry *e = NULL;
		r = queue_entry_load(dir, id, &e, &error);
		if (r > 0) {
			e->next_try = 0;
			r = queue_entry_save(dir, e, &error);
			admin_queue_fix_owner(dir, id);
		} else if (r == 0) {
			r = -1;
			error = xstrdup("no such queued message");
		}
		queue_entry_free(&e);
	}
	queue_entry_unlock(&fd);
	if (r < 0) {
		fprintf(stderr, "posternctl: %s: %s\n", id, error);
		free(error);
		return 1;
	}
	printf("%s %s\n", id, delete ? "deleted" : "flushed");
	return 0;
}

int admin_queue_main(const char *datadir, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		admin_queue_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	char *dir = xasprintf("%s/%s", datadir, QUEUE_DIR_NAME);
	const char *cmd = argv[1];
	int ret = 0;
	if (strcmp(cmd, "list") == 0 && argc == 2) {
		ret = admin_queue_list(dir);
	} else if (strcmp(cmd, "show") == 0 && argc == 3) {
		ret = admin_queue_show(dir, argv[2]);
	} else if (strcmp(cmd, "flush") == 0) {
		if (argc == 2) {
			char **ids = NULL;
			size_t n = 0;
			char *error = NULL;
			if (queue_list(dir, &ids, &n, &error) < 0) {
				fprintf(stderr, "posternctl: %s\n", error);
				free(error);
				ret = 1;
			}
			for (size_t i = 0; i < n; i++)
				admin_queue_change(dir, ids[i], false);
			queue_ids_free(&ids, n);
		}
		for (int i = 2; i < argc; i++)
			ret |= admin_queue_change(dir, argv[i], false);
	} else if (strcmp(cmd, "delete") == 0 && argc >= 3) {
		for (int i = 2; i < argc; i++)
			ret |= admin_queue_change(dir, argv[i], true);
	} else {
		admin_queue_usage(stderr);
		ret = 2;
	}
	free(dir);
	return ret;
}
