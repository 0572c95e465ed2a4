#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <poll.h>

#include "store/store.h"
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
	int fd = store_watch_fd(store, &error);
	assert_true(fd >= 0);
	/* our own delivery: the event comes from the store, and handling the
	 * inotify wake-up afterwards finds nothing new */
	test_append(store, "INBOX", "Subject: own\r\n\r\n", NULL, 0, 0);
	assert_int_equal(s.appends, 1);
	assert_int_equal(store_watch_handle(store, &error), 1);
	assert_int_equal(s.appends, 1);

	/* another program delivers into Sent/new */
	char *path = NULL;
	assert_true(asprintf(&path, "%s/.Sent/new/999.other.host", store_path(store)) > 0);
	FILE *fp = fopen(path, "w");
	fputs("Subject: dropped\r\n\r\nhi\r\n", fp);
	fclose(fp);
	free(path);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(store_watch_handle(store, &error), 1);
	assert_int_equal(s.appends, 2);
	assert_string_equal(s.folder, "Sent");
	struct store_folder *f;
	assert_int_equal(store_folder_open(store, "Sent", &f, &error), 1);
	assert_int_equal(store_folder_count(f), 1);
	uint32_t uid = store_folder_message(f, 0)->uid;

	/* our own flag change: one event, and the wake-up adds none */
	assert_int_equal(store_flags_update(f, uid, STORE_FLAG_FLAGGED, 0, &error), 1);
	assert_int_equal(s.flags, 1);
	assert_int_equal(store_watch_handle(store, &error), 1);
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
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(store_watch_handle(store, &error), 1);
	assert_int_equal(s.flags, 2);
	assert_int_equal(store_folder_refresh(f, &error), 1);
	assert_int_equal(store_folder_message(f, 0)->flags, STORE_FLAG_FLAGGED | STORE_FLAG_SEEN);
	free(cur);
	free(from);
	free(to);
	store_folder_close(&f);
	store_close(&store);
}

/* Changes made by another process (here: a second store handle on the same
 * files, as the lmtp service has) are reported through the watch too. */
static void test_other_process(void **state)
{
	struct store *mine = test_open("n3", 0);
	struct seen s = {0};
	store_subscribe(mine, on_event, &s);
	char *error = NULL;
	int fd = store_watch_fd(mine, &error);
	assert_true(fd >= 0);
	struct store *other = test_open("n3", 0);
	uint32_t uid = test_append(other, "INBOX", "Subject: from lmtp\r\n\r\nhi\r\n", NULL, 0, 0);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(store_watch_handle(mine, &error), 1);
	assert_int_equal(s.appends, 1);
	assert_int_equal(s.last_uid, uid);

	struct store_folder *f;
	assert_int_equal(store_folder_open(other, "INBOX", &f, &error), 1);
	assert_int_equal(store_flags_update(f, uid, STORE_FLAG_SEEN, 0, &error), 1);
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(store_watch_handle(mine, &error), 1);
	assert_int_equal(s.flags, 1);
	assert_int_equal(s.appends, 1);

	assert_int_equal(store_expunge(f, &uid, 1, &error), 1);
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(store_watch_handle(mine, &error), 1);
	assert_int_equal(s.expunges, 1);
	assert_int_equal(s.last_uid, uid);
	store_folder_close(&f);
	store_close(&other);
	store_close(&mine);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_events, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_inotify, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_other_process, test_setup, test_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
