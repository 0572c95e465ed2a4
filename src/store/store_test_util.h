#ifndef POSTERN_STORE_TEST_UTIL_H
#define POSTERN_STORE_TEST_UTIL_H

/* Helpers shared by the store's unit tests (header-only, test code). */

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

static char test_root[64];

static inline int test_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static inline int test_setup(void **state)
{
	strcpy(test_root, "/tmp/postern-store-test-XXXXXX");
	return mkdtemp(test_root) == NULL ? -1 : 0;
}

static inline int test_teardown(void **state)
{
	nftw(test_root, test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static inline struct store *test_open(const char *user, uint64_t quota)
{
	struct store *store = NULL;
	char *error = NULL;
	char *root = NULL;
	if (asprintf(&root, "%s/mail", test_root) < 0)
		abort();
	if (store_open(root, user, quota, &store, &error) != 1)
		fail_msg("store_open: %s", error);
	free(root);
	return store;
}

static inline uint32_t test_append(struct store *store, const char *folder, const char *msg,
				   const char *const *flags, size_t nflags, time_t date)
{
	struct store_append *a;
	bool oq;
	char *error = NULL;
	if (store_append_begin(store, folder, strlen(msg), &a, &oq, &error) != 1)
		fail_msg("append_begin: %s", error);
	size_t len = strlen(msg);
	/* in uneven pieces, as a network delivers them */
	for (size_t i = 0; i < len; i += 7)
		if (store_append_write(a, msg + i, len - i < 7 ? len - i : 7, &error) != 1)
			fail_msg("append_write: %s", error);
	uint32_t uid = 0;
	if (store_append_commit(&a, flags, nflags, date, &uid, &oq, &error) != 1)
		fail_msg("append_commit: %s", error);
	return uid;
}

static inline char *test_read(struct store_folder *f, uint32_t uid)
{
	int fd;
	char *error = NULL;
	if (store_message_open(f, uid, &fd, &error) != 1)
		fail_msg("message_open %u: %s", uid, error);
	struct stat st;
	fstat(fd, &st);
	char *buf = malloc((size_t)st.st_size + 1);
	ssize_t n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

#endif
