#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/ipc.h"

static void test_roundtrip_with_fd(void **state)
{
	(void)state;
	int ch[2], extra[2];
	assert_int_equal(ipc_pair(ch), 0);
	assert_int_equal(pipe(extra), 0);
	struct ipc_field f[] = {{"addr", "127.0.0.1:143"}, {"tls", "no"}, {"empty", ""}};
	assert_int_equal(ipc_send(ch[0], IPC_LISTENER, extra[1], f, 3, 100), 0);
	struct ipc_msg *msg = malloc(sizeof(*msg));
	const char *error = NULL;
	assert_int_equal(ipc_recv(ch[1], msg, &error), 1);
	assert_int_equal(msg->type, IPC_LISTENER);
	assert_int_equal(msg->nfields, 3);
	assert_string_equal(ipc_msg_get(msg, "addr"), "127.0.0.1:143");
	assert_string_equal(ipc_msg_get(msg, "empty"), "");
	assert_null(ipc_msg_get(msg, "missing"));
	assert_true(msg->fd >= 0);
	/* the passed descriptor is the pipe's write end */
	assert_int_equal(write(msg->fd, "x", 1), 1);
	char c;
	assert_int_equal(read(extra[0], &c, 1), 1);
	close(msg->fd);
	/* nothing more waiting */
	assert_int_equal(ipc_recv(ch[1], msg, &error), 0);
	free(msg);
	close(ch[0]);
	close(ch[1]);
	close(extra[0]);
	close(extra[1]);
}

static void test_malformed_messages_refused(void **state)
{
	(void)state;
	int ch[2];
	assert_int_equal(ipc_pair(ch), 0);
	struct ipc_msg *msg = malloc(sizeof(*msg));
	const char *error = NULL;
	/* short */
	assert_int_equal(send(ch[0], "abc", 3, 0), 3);
	assert_int_equal(ipc_recv(ch[1], msg, &error), -1);
	/* right size, wrong magic */
	char junk[12] = {0};
	assert_int_equal(send(ch[0], junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	assert_int_equal(ipc_recv(ch[1], msg, &error), -1);
	/* header promising a field that is not there */
	struct ipc_field f = {"k", "v"};
	assert_int_equal(ipc_send(ch[0], IPC_SETTINGS, -1, &f, 1, 100), 0);
	char buf[64];
	ssize_t n = recv(ch[1], buf, sizeof(buf), 0);
	assert_true(n > 12);
	buf[8] = 2; /* nfields */
	assert_int_equal(send(ch[0], buf, (size_t)n, 0), n);
	assert_int_equal(ipc_recv(ch[1], msg, &error), -1);
	/* a key holding '=' cannot be sent */
	struct ipc_field bad = {"a=b", "v"};
	assert_int_equal(ipc_send(ch[0], IPC_SETTINGS, -1, &bad, 1, 100), -1);
	/* peer closed */
	close(ch[0]);
	assert_int_equal(ipc_recv(ch[1], msg, &error), -1);
	free(msg);
	close(ch[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_with_fd),
		cmocka_unit_test(test_malformed_messages_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
