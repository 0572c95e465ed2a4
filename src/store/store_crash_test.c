/* Crash test of the store: a child process appends messages, changes
 * flags and expunges in a loop and is killed with SIGKILL at a random
 * moment; the parent then reopens the store (which reconciles) and checks
 * the child's journal against the folder:
 *   - every append that returned 1 is present exactly once, with its UID;
 *   - no message is present twice;
 *   - an expunge that returned 1 is gone;
 *   - flags are the last ones acknowledged (or the one in flight);
 *   - no UID is ever used for two different messages, and UIDNEXT stays
 *     above every UID seen.
 * Usage: store_crash_test [--rounds N] [--seed S] [--max-ms MS] [--dir DIR]
 * Exit 0 when every round checks out. */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define MAX_IDS 100000

struct expect {
	char id[32];
	uint32_t uid; /* 0: not acknowledged */
	bool expunge_pending, expunged;
	int flags, flags_pending; /* -1: none */
};

static struct expect *expects;
static size_t nexpects;
static uint32_t *uid_owner_round; /* uid -> index+1 into expects (whom it was given to) */
static char **uid_owner;	  /* uid -> crash id seen with it */
static size_t uid_cap;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void jwrite(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jwrite(int fd, const char *fmt, ...)
{
	char line[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(fd, line, (size_t)n) != n)
		_exit(3);
}

/* The X-Crash-Id of a message, from its first bytes. */
static bool message_id(struct store_folder *f, uint32_t uid, char *id, size_t idlen)
{
	char buf[256];
	size_t got;
	char *error = NULL;
	if (store_message_pread(f, uid, 0, buf, sizeof(buf) - 1, &got, &error) != 1) {
		free(error);
		return false;
	}
	buf[got] = '\0';
	const char *p = strstr(buf, "X-Crash-Id: ");
	if (p == NULL)
		return false;
	p += 12;
	size_t n = strcspn(p, "\r\n");
	if (n >= idlen)
		n = idlen - 1;
	memcpy(id, p, n);
	id[n] = '\0';
	return true;
}

static void child(const char *root, unsigned round, const char *journal, unsigned seed,
		  int ready_fd)
{
	srand(seed);
	int jfd = open(journal, O_WRONLY | O_APPEND | O_CREAT, 0600);
	struct store *store;
	char *error = NULL;
	if (jfd < 0 || store_open(root, "crash", 0, &store, &error) != 1) {
		fprintf(stderr, "child: %s\n", error != NULL ? error : "journal");
		_exit(2);
	}
	struct store_folder *f;
	if (store_folder_open(store, "INBOX", &f, &error) != 1)
		_exit(2);
	/* the kill timer starts now, so slow start-up (sanitizers) does not
	 * eat the round */
	if (write(ready_fd, "r", 1) != 1)
		_exit(2);
	close(ready_fd);
	static char body[40000];
	for (unsigned i = 0;; i++) {
		int op = rand() % 10;
		size_t count = store_folder_count(f);
		if (op < 6 || count == 0) {
			char id[32];
			snprintf(id, sizeof(id), "%u-%u", round, i);
			size_t fill = (size_t)(rand() % 30000);
			int n = snprintf(body, sizeof(body),
					 "X-Crash-Id: %s\r\nSubject: crash %s\r\n\r\n", id, id);
			for (size_t k = 0; k < fill; k++)
				body[n + (int)k] = (k % 64 == 63) ? '\n' : (char)('a' + k % 26);
			n += (int)fill;
			struct store_append *a;
			bool oq;
			if (store_append_begin(store, "INBOX", (uint64_t)n, &a, &oq, &error) != 1)
				_exit(4);
			for (int off = 0; off < n; off += 4096)
				store_append_write(a, body + off,
						   (size_t)(n - off < 4096 ? n - off : 4096),
						   &error);
			uint32_t uid;
			if (store_append_commit(&a, NULL, 0, 0, &uid, &oq, &error) != 1)
				_exit(5);
			jwrite(jfd, "A %s %u\n", id, uid);
		} else {
			const struct store_message *m =
			    store_folder_message(f, (size_t)rand() % count);
			uint32_t uid = m->uid;
			char id[32];
			if (!message_id(f, uid, id, sizeof(id)))
				continue;
			if (op < 9) {
				unsigned flags = (unsigned)rand() & STORE_FLAGS_SYSTEM;
				jwrite(jfd, "f %s %u\n", id, flags);
				int r = store_flags_change(f, uid, 0, flags, NULL, 0, NULL, &error);
				if (r < 0)
					_exit(6);
				if (r == 1)
					jwrite(jfd, "F %s %u\n", id, flags);
			} else {
				jwrite(jfd, "e %s\n", id);
				if (store_expunge(f, &uid, 1, &error) != 1)
					_exit(7);
				jwrite(jfd, "E %s\n", id);
			}
		}
		if (store_folder_refresh(f, &error) != 1)
			_exit(8);
	}
}

static struct expect *find(const char *id, bool create)
{
	for (size_t i = nexpects; i-- > 0;)
		if (strcmp(expects[i].id, id) == 0)
			return &expects[i];
	if (!create || nexpects >= MAX_IDS)
		return NULL;
	struct expect *e = &expects[nexpects++];
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->flags = 0;
	e->flags_pending = -1;
	return e;
}

static void read_journal(const char *journal)
{
	FILE *fp = fopen(journal, "r");
	if (fp == NULL)
		return;
	nexpects = 0;
	char line[128];
	while (fgets(line, sizeof(line), fp) != NULL) {
		char op, id[32];
		unsigned v = 0;
		if (strchr(line, '\n') == NULL)
			break; /* a torn last line: the child died while writing it */
		if (sscanf(line, "%c %31s %u", &op, id, &v) < 2)
			continue;
		struct expect *e = find(id, true);
		if (e == NULL)
			continue;
		switch (op) {
		case 'A':
			e->uid = v;
			break;
		case 'f':
			e->flags_pending = (int)v;
			break;
		case 'F':
			e->flags = (int)v;
			e->flags_pending = -1;
			break;
		case 'e':
			e->expunge_pending = true;
			break;
		case 'E':
			e->expunged = true;
			break;
		}
	}
	fclose(fp);
}

static void remember_uid(uint32_t uid, const char *id, unsigned *failures)
{
	if (uid >= uid_cap) {
		size_t ncap = uid * 2 + 1024;
		uid_owner = realloc(uid_owner, ncap * sizeof(*uid_owner));
		memset(uid_owner + uid_cap, 0, (ncap - uid_cap) * sizeof(*uid_owner));
		uid_cap = ncap;
	}
	if (uid_owner[uid] == NULL)
		uid_owner[uid] = strdup(id);
	else if (strcmp(uid_owner[uid], id) != 0) {
		fprintf(stderr, "FAIL: UID %u reused: was %s, now %s\n", uid, uid_owner[uid], id);
		(*failures)++;
	}
}

static unsigned check(const char *root, unsigned *present_r)
{
	unsigned failures = 0;
	struct store *store;
	char *error = NULL;
	if (store_open(root, "crash", 0, &store, &error) != 1) {
		fprintf(stderr, "FAIL: reopen: %s\n", error);
		return 1;
	}
	struct store_folder *f;
	if (store_folder_open(store, "INBOX", &f, &error) != 1) {
		fprintf(stderr, "FAIL: open INBOX: %s\n", error);
		return 1;
	}
	size_t count = store_folder_count(f);
	char(*ids)[32] = calloc(count + 1, sizeof(*ids));
	uint32_t max_uid = 0;
	for (size_t i = 0; i < count; i++) {
		const struct store_message *m = store_folder_message(f, i);
		if (!message_id(f, m->uid, ids[i], sizeof(ids[i]))) {
			fprintf(stderr, "FAIL: UID %u unreadable\n", m->uid);
			failures++;
			continue;
		}
		remember_uid(m->uid, ids[i], &failures);
		if (m->uid > max_uid)
			max_uid = m->uid;
		for (size_t k = 0; k < i; k++)
			if (strcmp(ids[k], ids[i]) == 0) {
				fprintf(stderr, "FAIL: %s present twice\n", ids[i]);
				failures++;
			}
	}
	for (size_t e = 0; e < nexpects; e++) {
		struct expect *x = &expects[e];
		if (x->uid != 0) {
			remember_uid(x->uid, x->id, &failures);
			if (x->uid > max_uid)
				max_uid = x->uid;
		}
		long at = -1;
		for (size_t i = 0; i < count; i++)
			if (strcmp(ids[i], x->id) == 0)
				at = (long)i;
		if (x->expunged && at >= 0) {
			fprintf(stderr, "FAIL: %s expunged but present\n", x->id);
			failures++;
		}
		if (x->uid != 0 && !x->expunge_pending && at < 0) {
			fprintf(stderr, "FAIL: accepted %s (UID %u) lost\n", x->id, x->uid);
			failures++;
		}
		if (at >= 0 && x->uid != 0 && store_folder_message(f, (size_t)at)->uid != x->uid) {
			fprintf(stderr, "FAIL: %s had UID %u, now %u\n", x->id, x->uid,
				store_folder_message(f, (size_t)at)->uid);
			failures++;
		}
		if (at >= 0) {
			int flags =
			    (int)(store_folder_message(f, (size_t)at)->flags & STORE_FLAGS_SYSTEM);
			if (flags != x->flags && flags != x->flags_pending) {
				fprintf(stderr, "FAIL: %s flags %d, want %d (or %d)\n", x->id,
					flags, x->flags, x->flags_pending);
				failures++;
			}
			/* the state after this check is what counts from now on */
			x->flags = flags;
			x->flags_pending = -1;
		}
	}
	if (store_folder_uidnext(f) <= max_uid) {
		fprintf(stderr, "FAIL: UIDNEXT %u not above UID %u\n", store_folder_uidnext(f),
			max_uid);
		failures++;
	}
	*present_r = (unsigned)count;
	free(ids);
	store_folder_close(&f);
	store_close(&store);
	return failures;
}

int main(int argc, char **argv)
{
	unsigned rounds = 20, seed = (unsigned)time(NULL) ^ (unsigned)getpid(), max_ms = 60;
	const char *dir = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--rounds") == 0)
			rounds = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--seed") == 0)
			seed = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--max-ms") == 0)
			max_ms = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--dir") == 0)
			dir = argv[i + 1];
	}
	char tmp[] = "/tmp/postern-crash-XXXXXX";
	bool own_dir = dir == NULL;
	if (own_dir) {
		if (mkdtemp(tmp) == NULL)
			return 2;
		dir = tmp;
	}
	char root[512], journal[512];
	snprintf(root, sizeof(root), "%s/mail", dir);
	snprintf(journal, sizeof(journal), "%s/journal", dir);
	expects = calloc(MAX_IDS, sizeof(*expects));
	srand(seed);
	printf("store_crash_test: seed %u, %u rounds\n", seed, rounds);
	unsigned failures = 0, present = 0, kills = 0;
	for (unsigned r = 0; r < rounds && failures == 0; r++) {
		unsigned child_seed = (unsigned)rand();
		unsigned ms = 1 + (unsigned)rand() % max_ms;
		fflush(stdout);
		int ready[2];
		if (pipe(ready) < 0)
			return 2;
		pid_t pid = fork();
		if (pid < 0)
			return 2;
		if (pid == 0) {
			close(ready[0]);
			child(root, r, journal, child_seed, ready[1]);
		}
		close(ready[1]);
		char c;
		if (read(ready[0], &c, 1) != 1) {
			fprintf(stderr, "FAIL: child did not start\n");
			failures++;
		}
		close(ready[0]);
		usleep(ms * 1000);
		if (kill(pid, SIGKILL) == 0)
			kills++;
		int status;
		waitpid(pid, &status, 0);
		if (!WIFSIGNALED(status)) {
			fprintf(stderr, "FAIL: child exited by itself (status %d)\n",
				WEXITSTATUS(status));
			failures++;
			break;
		}
		read_journal(journal);
		failures += check(root, &present);
	}
	size_t acked = 0;
	for (size_t i = 0; i < nexpects; i++)
		acked += expects[i].uid != 0;
	printf("store_crash_test: %u kills, %zu appends acknowledged, %u messages present, "
	       "%u failures\n",
	       kills, acked, present, failures);
	for (size_t i = 0; i < uid_cap; i++)
		free(uid_owner[i]);
	free(uid_owner);
	free(uid_owner_round);
	free(expects);
	if (own_dir && failures == 0)
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	else if (failures > 0)
		fprintf(stderr, "store left in %s\n", dir);
	return failures == 0 ? 0 : 1;
}
