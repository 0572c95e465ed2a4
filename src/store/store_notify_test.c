#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>

#include "store/store.h"
#include "store/store_private.h"
#include "store/store_test_util.h"

struct seen {
	int appends, flags, expunges, folders;
	uint32_t last_uid;
	char folder[64];
};

static void on_event(void *ctx, const struct store_event *ev)
{
	struct seen *s = ctx;
	switch (ev->kind) {
	case STORE_EVENT_APPEND:
		s->appends++;
		break;
	case STORE_EVENT_FLAGS:
		s->flags++;
		break;
	case STORE_EVENT_EXPUNGE:
		s->expunges++;
		break;
	case STORE_EVENT_FOLDERS:
		s->folders++;
		break;
	}
	s->last_uid = ev->uid;
	snprintf(s->folder, sizeof(s->folder), "%s", ev->folder);
}

/* Wait until the watcher's descriptor is readable (the kernel queues a
 * change's events before the call that made it returns). */
static void wait_events(struct store_watcher *w)
{
	struct pollfd p = {.fd = store_watcher_fd(w), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 2000), 1);
}

static void handle(struct store_watcher *w)
{
	char *error = NULL;
	if (store_watcher_handle(w, &error) != 1)
		fail_msg("store_watcher_handle: %s", error);
}

static void poll_changes(struct store_watcher *w)
{
	char *error = NULL;
	if (store_watcher_poll(w, &error) != 1)
		fail_msg("store_watcher_poll: %s", error);
}

/* The kernel's own count of the instance's watches. */
static int kernel_watches(int fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	char line[512];
	int n = 0;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, "inotify wd:", 11) == 0)
			n++;
	fclose(fp);
	return n;
}

static struct store_watcher *watched(struct store *store, unsigned max_watches)
{
	struct store_watcher *w = store_watcher_new(max_watches);
	char *error = NULL;
	if (store_watch_attach(store, w, &error) != 1)
		fail_msg("store_watch_attach: %s", error);
	return w;
}

static void attach(struct store *store, struct store_watcher *w)
{
	char *error = NULL;
	if (store_watch_attach(store, w, &error) != 1)
		fail_msg("store_watch_attach: %s", error);
}

static void test_events(void **state)
{
	struct store *store = test_open("n1", 0);
	struct seen a = {0}, b = {0};
	unsigned ida = store_subscribe(store, on_event, &a);
	store_subscribe(store, on_event, &b);
	struct store_folder *f1, *f2;
	char *error = NULL;
	assert_int_equal(store_folder_open(store, "INBOX", &f1, &error), 1);
	assert_int_equal(store_folder_open(store, "INBOX", &f2, &error), 1);
	uint32_t uid = test_append(store, "INBOX", "Subject: x\r\n\r\nbody\r\n", NULL, 0, 0);
	assert_int_equal(a.appends, 1);
	assert_int_equal(b.appends, 1);
	assert_int_equal(a.last_uid, uid);
	assert_string_equal(a.folder, "INBOX");
	/* the other handle sees it after a refresh */
	assert_int_equal(store_folder_refresh(f2, &error), 1);
	assert_int_equal(store_folder_count(f2), 1);
	/* flag changes through one handle update the other's snapshot at once */
	assert_int_equal(store_flags_update(f1, uid, STORE_FLAG_FLAGGED, 0, &error), 1);
	assert_int_equal(a.flags, 1);
	assert_int_equal(store_folder_message(f2, 0)->flags, STORE_FLAG_FLAGGED);
	store_unsubscribe(store, ida);
	assert_int_equal(store_expunge(f2, &uid, 1, &error), 1);
	assert_int_equal(a.expunges, 0);
	assert_int_equal(b.expunges, 1);
	assert_int_equal(store_folder_create(store, "New", NULL, &error), 1);
	assert_int_equal(b.folders, 1);
	store_folder_close(&f1);
	store_folder_close(&f2);
	store_close(&store);
}

static void test_inotify(void **state)
{
	struct store *store = test_open("n2", 0);
	struct seen s = {0};
	store_subscribe(store, on_event, &s);
	char *error = NULL;
	struct store_watcher *w = watched(store, 1024);
	assert_true(store_watcher_fd(w) >= 0);
	assert_false(store_watcher_polling(w));
	assert_null(store_watcher_fallback(w));
	assert_true(store_watch_covers(store, "INBOX"));
	assert_true(store_watch_covers(store, "Sent"));
	assert_false(store_watch_covers(store, "No such folder"));
	/* our own delivery: the event comes from the store, and handling the
	 * inotify wake-up afterwards finds nothing new */
	test_append(store, "INBOX", "Subject: own\r\n\r\n", NULL, 0, 0);
	assert_int_equal(s.appends, 1);
	handle(w);
	assert_int_equal(s.appends, 1);

	/* another program delivers into Sent/new */
	char *path = NULL;
	assert_true(asprintf(&path, "%s/.Sent/new/999.other.host", store_path(store)) > 0);
	FILE *fp = fopen(path, "w");
	fputs("Subject: dropped\r\n\r\nhi\r\n", fp);
	fclose(fp);
	free(path);
	wait_events(w);
	handle(w);
	assert_int_equal(s.appends, 2);
	assert_string_equal(s.folder, "Sent");
	struct store_folder *f;
	assert_int_equal(store_folder_open(store, "Sent", &f, &error), 1);
	assert_int_equal(store_folder_count(f), 1);
	uint32_t uid = store_folder_message(f, 0)->uid;

	/* our own flag change: one event, and the wake-up adds none */
	assert_int_equal(store_flags_update(f, uid, STORE_FLAG_FLAGGED, 0, &error), 1);
	assert_int_equal(s.flags, 1);
	handle(w);
	assert_int_equal(s.flags, 1);

	/* another program marks it seen by renaming the file */
	char *cur = NULL;
	assert_true(asprintf(&cur, "%s/.Sent/cur", store_path(store)) > 0);
	DIR *d = opendir(cur);
	struct dirent *de;
	char *from = NULL, *to = NULL;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.') {
			assert_true(asprintf(&from, "%s/%s", cur, de->d_name) > 0);
			assert_true(asprintf(&to, "%sS", from) > 0);
		}
	closedir(d);
	assert_int_equal(rename(from, to), 0);
	wait_events(w);
	handle(w);
	assert_int_equal(s.flags, 2);
	assert_int_equal(store_folder_refresh(f, &error), 1);
	assert_int_equal(store_folder_message(f, 0)->flags, STORE_FLAG_FLAGGED | STORE_FLAG_SEEN);
	free(cur);
	free(from);
	free(to);
	/* a folder made later is watched too */
	assert_int_equal(store_folder_create(store, "Later", NULL, &error), 1);
	assert_true(store_watch_covers(store, "Later"));
	store_folder_close(&f);
	store_close(&store);
	store_watcher_free(&w);
}

/* Changes made by another process (here: a second store handle on the same
 * files, as the lmtp service has) are reported through the watch too. */
static void test_other_process(void **state)
{
	struct store *mine = test_open("n3", 0);
	struct seen s = {0};
	store_subscribe(mine, on_event, &s);
	char *error = NULL;
	struct store_watcher *w = watched(mine, 1024);
	struct store *other = test_open("n3", 0);
	uint32_t uid = test_append(other, "INBOX", "Subject: from lmtp\r\n\r\nhi\r\n", NULL, 0, 0);
	wait_events(w);
	handle(w);
	assert_int_equal(s.appends, 1);
	assert_int_equal(s.last_uid, uid);

	struct store_folder *f;
	assert_int_equal(store_folder_open(other, "INBOX", &f, &error), 1);
	assert_int_equal(store_flags_update(f, uid, STORE_FLAG_SEEN, 0, &error), 1);
	wait_events(w);
	handle(w);
	assert_int_equal(s.flags, 1);
	assert_int_equal(s.appends, 1);

	assert_int_equal(store_expunge(f, &uid, 1, &error), 1);
	wait_events(w);
	handle(w);
	assert_int_equal(s.expunges, 1);
	assert_int_equal(s.last_uid, uid);
	store_folder_close(&f);
	store_close(&other);
	store_close(&mine);
	store_watcher_free(&w);
}

/* Two users' stores on one watcher (one inotify instance) each get the
 * changes other processes make to their own Maildir, and only those. */
static void test_two_users_one_watcher(void **state)
{
	struct store *a = test_open("u1", 0), *b = test_open("u2", 0);
	struct seen sa = {0}, sb = {0};
	store_subscribe(a, on_event, &sa);
	store_subscribe(b, on_event, &sb);
	struct store_watcher *w = watched(a, 1024);
	attach(b, w);
	/* six folders each, new/ and cur/ */
	assert_int_equal(store_watcher_watches(w), 24);
	assert_int_equal(kernel_watches(store_watcher_fd(w)), 24);

	/* deliveries by other handles, as the lmtp service makes them */
	struct store *la = test_open("u1", 0), *lb = test_open("u2", 0);
	uint32_t ua = test_append(la, "INBOX", "Subject: to u1\r\n\r\nhi\r\n", NULL, 0, 0);
	uint32_t ub = test_append(lb, "Junk", "Subject: to u2\r\n\r\nhi\r\n", NULL, 0, 0);
	wait_events(w);
	handle(w);
	assert_int_equal(sa.appends, 1);
	assert_int_equal(sa.last_uid, ua);
	assert_string_equal(sa.folder, "INBOX");
	assert_int_equal(sb.appends, 1);
	assert_int_equal(sb.last_uid, ub);
	assert_string_equal(sb.folder, "Junk");

	/* flags and an expunge of one user reach only that user */
	char *error = NULL;
	struct store_folder *f;
	assert_int_equal(store_folder_open(lb, "Junk", &f, &error), 1);
	assert_int_equal(store_flags_update(f, ub, STORE_FLAG_SEEN, 0, &error), 1);
	wait_events(w);
	handle(w);
	assert_int_equal(sb.flags, 1);
	assert_int_equal(store_expunge(f, &ub, 1, &error), 1);
	store_folder_close(&f);
	wait_events(w);
	handle(w);
	assert_int_equal(sb.expunges, 1);
	assert_int_equal(sa.flags + sa.expunges, 0);

	/* a second store of u1 in this process: the kernel gives the same
	 * directories the same watch descriptors, and both stores get the
	 * events */
	struct store *a2 = test_open("u1", 0);
	struct seen sa2 = {0};
	store_subscribe(a2, on_event, &sa2);
	attach(a2, w);
	assert_int_equal(store_watcher_watches(w), 24);
	assert_true(store_watch_covers(a2, "INBOX"));
	ua = test_append(la, "INBOX", "Subject: again\r\n\r\n", NULL, 0, 0);
	wait_events(w);
	handle(w);
	assert_int_equal(sa.appends, 2);
	assert_int_equal(sa2.appends, 1);
	assert_int_equal(sa2.last_uid, ua);
	/* closing one keeps the other's watches */
	store_close(&a2);
	assert_int_equal(store_watcher_watches(w), 24);
	assert_int_equal(kernel_watches(store_watcher_fd(w)), 24);
	ua = test_append(la, "INBOX", "Subject: third\r\n\r\n", NULL, 0, 0);
	wait_events(w);
	handle(w);
	assert_int_equal(sa.appends, 3);
	assert_int_equal(sa.last_uid, ua);

	store_close(&la);
	store_close(&lb);
	store_close(&a);
	assert_int_equal(store_watcher_watches(w), 12);
	/* freeing the watcher detaches b */
	store_watcher_free(&w);
	assert_false(store_watch_covers(b, "INBOX"));
	store_close(&b);
}

/* A detached (or closed) store leaves no watch behind, gets no further
 * events, and a store attached later gets no stale ones. */
static void test_detach(void **state)
{
	struct store *a = test_open("d1", 0);
	struct seen sa = {0};
	store_subscribe(a, on_event, &sa);
	struct store_watcher *w = watched(a, 1024);
	int fd = store_watcher_fd(w);
	assert_int_equal(kernel_watches(fd), 12);
	struct store *la = test_open("d1", 0);
	test_append(la, "INBOX", "Subject: before\r\n\r\n", NULL, 0, 0);
	wait_events(w);
	store_watch_detach(a);
	assert_int_equal(store_watcher_watches(w), 0);
	assert_int_equal(kernel_watches(fd), 0);
	assert_false(store_watch_covers(a, "INBOX"));
	test_append(la, "INBOX", "Subject: after\r\n\r\n", NULL, 0, 0);
	handle(w);
	assert_int_equal(sa.appends, 0);

	/* attached again: only what happens from now on */
	attach(a, w);
	assert_int_equal(kernel_watches(fd), 12);
	uint32_t uid = test_append(la, "Sent", "Subject: now\r\n\r\n", NULL, 0, 0);
	wait_events(w);
	handle(w);
	assert_int_equal(sa.appends, 1);
	assert_int_equal(sa.last_uid, uid);
	store_close(&a);
	assert_int_equal(kernel_watches(fd), 0);

	/* another user's store on the same watcher */
	struct store *b = test_open("d2", 0);
	struct seen sb = {0};
	store_subscribe(b, on_event, &sb);
	attach(b, w);
	test_append(la, "INBOX", "Subject: to d1\r\n\r\n", NULL, 0, 0);
	struct store *lb = test_open("d2", 0);
	uid = test_append(lb, "INBOX", "Subject: to d2\r\n\r\n", NULL, 0, 0);
	wait_events(w);
	handle(w);
	assert_int_equal(sb.appends, 1);
	assert_int_equal(sb.last_uid, uid);
	store_close(&la);
	store_close(&lb);
	store_close(&b);
	assert_int_equal(store_watcher_watches(w), 0);
	store_watcher_free(&w);
}

/* A change by another process, and one by another program, reach a
 * polled store's subscribers through store_watcher_poll(). */
static void changes_by_polling(struct store_watcher *w, struct store *mine, struct seen *s,
			       const char *user, const char *folder)
{
	struct store *other = test_open(user, 0);
	int appends = s->appends, flags = s->flags, expunges = s->expunges;
	uint32_t uid = test_append(other, folder, "Subject: polled\r\n\r\nhi\r\n", NULL, 0, 0);
	poll_changes(w);
	assert_int_equal(s->appends, appends + 1);
	assert_int_equal(s->last_uid, uid);
	assert_string_equal(s->folder, folder);

	char *error = NULL;
	struct store_folder *f;
	assert_int_equal(store_folder_open(other, folder, &f, &error), 1);
	assert_int_equal(store_flags_update(f, uid, STORE_FLAG_FLAGGED, 0, &error), 1);
	poll_changes(w);
	assert_int_equal(s->flags, flags + 1);
	assert_int_equal(store_expunge(f, &uid, 1, &error), 1);
	poll_changes(w);
	assert_int_equal(s->expunges, expunges + 1);
	assert_int_equal(s->last_uid, uid);
	store_folder_close(&f);
	/* nothing new: nothing reported */
	poll_changes(w);
	assert_int_equal(s->appends, appends + 1);

	/* a file another program drops into new/ */
	char *dir = store_folder_path(mine, folder);
	char *path = NULL;
	assert_true(asprintf(&path, "%s/new/1.dropped.%s", dir, user) > 0);
	FILE *fp = fopen(path, "w");
	fputs("Subject: dropped\r\n\r\nhi\r\n", fp);
	fclose(fp);
	free(path);
	free(dir);
	poll_changes(w);
	assert_int_equal(s->appends, appends + 2);
	store_close(&other);
}

/* No inotify watch at all (a bound of 0): every folder is polled, and no
 * change is lost. */
static void test_fallback_no_watches(void **state)
{
	struct store *mine = test_open("p0", 0);
	struct seen s = {0};
	store_subscribe(mine, on_event, &s);
	struct store_watcher *w = watched(mine, 0);
	assert_int_equal(store_watcher_fd(w), -1);
	assert_true(store_watcher_polling(w));
	assert_non_null(store_watcher_fallback(w));
	assert_false(store_watch_covers(mine, "INBOX"));
	changes_by_polling(w, mine, &s, "p0", "INBOX");
	changes_by_polling(w, mine, &s, "p0", "Archive");
	/* the poll of one store alone */
	struct store *other = test_open("p0", 0);
	test_append(other, "Drafts", "Subject: d\r\n\r\n", NULL, 0, 0);
	char *error = NULL;
	assert_int_equal(store_watch_poll(mine, &error), 1);
	assert_int_equal(s.appends, 5);
	store_close(&other);
	/* a folder created later is polled too, and a deleted one no longer */
	assert_int_equal(store_folder_create(mine, "Later", NULL, &error), 1);
	changes_by_polling(w, mine, &s, "p0", "Later");
	assert_int_equal(store_folder_delete(mine, "Later", &error), 1);
	poll_changes(w);
	store_close(&mine);
	assert_false(store_watcher_polling(w));
	store_watcher_free(&w);
}

/* A bound of two watches: the first folder is watched, the others and a
 * second user's are polled; every change still arrives. When the first
 * user goes, a polled folder gets the watches. */
static void test_fallback_bound(void **state)
{
	struct store *mine = test_open("p2", 0);
	struct seen s = {0};
	store_subscribe(mine, on_event, &s);
	struct store_watcher *w = watched(mine, 2);
	assert_true(store_watcher_fd(w) >= 0);
	assert_int_equal(store_watcher_watches(w), 2);
	assert_int_equal(kernel_watches(store_watcher_fd(w)), 2);
	assert_true(store_watch_covers(mine, "INBOX"));
	assert_false(store_watch_covers(mine, "Sent"));
	assert_true(store_watcher_polling(w));
	assert_non_null(strstr(store_watcher_fallback(w), "bound of 2"));

	/* the watched folder through inotify */
	struct store *other = test_open("p2", 0);
	uint32_t uid = test_append(other, "INBOX", "Subject: w\r\n\r\n", NULL, 0, 0);
	wait_events(w);
	handle(w);
	assert_int_equal(s.appends, 1);
	assert_int_equal(s.last_uid, uid);
	store_close(&other);
	/* the others by polling */
	changes_by_polling(w, mine, &s, "p2", "Sent");
	changes_by_polling(w, mine, &s, "p2", "Trash");

	/* a second user: all polled */
	struct store *second = test_open("p3", 0);
	struct seen s2 = {0};
	store_subscribe(second, on_event, &s2);
	attach(second, w);
	assert_int_equal(store_watcher_watches(w), 2);
	assert_false(store_watch_covers(second, "INBOX"));
	changes_by_polling(w, second, &s2, "p3", "INBOX");

	/* room again: the next poll watches a folder of the second user */
	store_close(&mine);
	assert_int_equal(store_watcher_watches(w), 0);
	poll_changes(w);
	assert_int_equal(store_watcher_watches(w), 2);
	assert_int_equal(kernel_watches(store_watcher_fd(w)), 2);
	const char *names[] = {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"};
	int covered = 0;
	for (size_t i = 0; i < 6; i++)
		covered += store_watch_covers(second, names[i]);
	assert_int_equal(covered, 1);
	changes_by_polling(w, second, &s2, "p3", "Junk");
	store_close(&second);
	store_watcher_free(&w);
}

/* Events lost to a full queue (IN_Q_OVERFLOW): every watched folder is
 * looked at, and the change whose events were dropped is reported. */
static void test_overflow(void **state)
{
	long max_queued = 16384;
	FILE *fp = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
	if (fp != NULL) {
		if (fscanf(fp, "%ld", &max_queued) != 1)
			max_queued = 16384;
		fclose(fp);
	}
	if (max_queued > 200000)
		skip();
	struct store *mine = test_open("q1", 0);
	struct seen s = {0};
	store_subscribe(mine, on_event, &s);
	struct store_watcher *w = watched(mine, 1024);
	/* fill the queue: two events per file made and removed */
	char *dir = store_folder_path(mine, "Junk");
	for (long i = 0; i < max_queued / 2 + 16; i++) {
		char *path = NULL;
		assert_true(asprintf(&path, "%s/new/flood%ld", dir, i) > 0);
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		close(fd);
		unlink(path);
		free(path);
	}
	free(dir);
	/* its events are dropped */
	struct store *other = test_open("q1", 0);
	uint32_t uid = test_append(other, "Archive", "Subject: lost\r\n\r\n", NULL, 0, 0);
	store_close(&other);
	wait_events(w);
	handle(w);
	assert_int_equal(s.appends, 1);
	assert_int_equal(s.last_uid, uid);
	assert_string_equal(s.folder, "Archive");
	store_close(&mine);
	store_watcher_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_events, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_inotify, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_other_process, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_two_users_one_watcher, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_detach, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_fallback_no_watches, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_fallback_bound, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_overflow, test_setup, test_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
