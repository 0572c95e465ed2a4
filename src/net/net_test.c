#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net.h"
#include "net/test_cert.h"

static struct net_addr loopback4(unsigned port)
{
	struct net_addr addr;
	memset(&addr, 0, sizeof(addr));
	struct sockaddr_in *sin = (struct sockaddr_in *)&addr.ss;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin->sin_port = htons((uint16_t)port);
	addr.len = sizeof(*sin);
	return addr;
}

static unsigned bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void assert_nonblock_cloexec(int fd)
{
	assert_true((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
	assert_true((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
}

static void test_listen_connect_tcp(void **state)
{
	struct net_addr addr = loopback4(0);
	char *error = NULL;
	int lfd = net_listen(&addr, 16, &error);
	assert_true(lfd >= 0);
	assert_nonblock_cloexec(lfd);
	unsigned port = bound_port(lfd);

	struct net_addr to = loopback4(port);
	int fd;
	int ret = net_connect_nonblock(&to, &fd, &error);
	assert_true(ret == 0 || ret == 1);
	assert_nonblock_cloexec(fd);
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	assert_int_equal(net_connect_finish(fd, &error), 1);
	int afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	close(afd);
	close(fd);
	close(lfd);

	/* nothing listens there any more: refused */
	ret = net_connect_nonblock(&to, &fd, &error);
	if (ret == 0) {
		pfd.fd = fd;
		assert_int_equal(poll(&pfd, 1, 2000), 1);
		assert_int_equal(net_connect_finish(fd, &error), -1);
		assert_non_null(strstr(error, "refused"));
		free(error);
		close(fd);
	} else {
		assert_int_equal(ret, -1);
		free(error);
	}
}

static void test_dual_stack_bind(void **state)
{
	struct net_addr any4 = loopback4(0);
	((struct sockaddr_in *)&any4.ss)->sin_addr.s_addr = htonl(INADDR_ANY);
	char *error = NULL;
	int fd4 = net_listen(&any4, 16, &error);
	assert_true(fd4 >= 0);
	unsigned port = bound_port(fd4);

	struct net_addr any6;
	memset(&any6, 0, sizeof(any6));
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&any6.ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr = in6addr_any;
	sin6->sin6_port = htons((uint16_t)port);
	any6.len = sizeof(*sin6);
	int fd6 = net_listen(&any6, 16, &error);
	if (fd6 < 0 && strstr(error, "Address family not supported") != NULL) {
		free(error);
		close(fd4);
		skip();
	}
	/* IPV6_V6ONLY lets "[::]:P" live beside "0.0.0.0:P" */
	assert_true(fd6 >= 0);
	int v6only = 0;
	socklen_t len = sizeof(v6only);
	getsockopt(fd6, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len);
	assert_int_equal(v6only, 1);
	close(fd6);

	/* the same address twice is an error naming the address */
	((struct sockaddr_in *)&any4.ss)->sin_port = htons((uint16_t)port);
	int again = net_listen(&any4, 16, &error);
	assert_int_equal(again, -1);
	assert_non_null(strstr(error, "bind"));
	free(error);
	close(fd4);
}

static void test_unix(void **state)
{
	char *dir = test_tmpdir();
	assert_non_null(dir);
	char *text = NULL;
	struct net_addr addr;
	const char *perror;
	char *error = NULL;
	if (asprintf(&text, "unix:%s/s.sock", dir) < 0)
		fail();
	assert_int_equal(net_addr_parse(text, &addr, &perror), 0);
	const char *path = text + 5;

	int fd = net_listen(&addr, 16, &error);
	assert_true(fd >= 0);
	assert_nonblock_cloexec(fd);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* a live socket is not taken over */
	assert_int_equal(net_listen(&addr, 16, &error), -1);
	assert_non_null(strstr(error, "in use"));
	free(error);

	int cfd;
	assert_int_equal(net_connect_nonblock(&addr, &cfd, &error), 1);
	close(cfd);

	/* a stale file (nobody accepts) is replaced, with the mode asked */
	close(fd);
	assert_int_equal(stat(path, &st), 0);
	fd = net_listen_mode(&addr, 16, 0660, &error);
	assert_true(fd >= 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	close(fd);

	/* a file that is not a socket is never removed */
	unlink(path);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(net_listen(&addr, 16, &error), -1);
	assert_non_null(strstr(error, "not a socket"));
	free(error);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));

	free(text);
	test_tmpdir_remove(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_listen_connect_tcp),
	    cmocka_unit_test(test_dual_stack_bind),
	    cmocka_unit_test(test_unix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
