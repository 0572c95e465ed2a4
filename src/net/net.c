#include "net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/xalloc.h"

int net_set_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	int fdfl = fcntl(fd, F_GETFD);
	if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

static int net_socket(int family)
{
	return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static char *net_error(const struct net_addr *addr, const char *what, int err)
{
	char text[160];
	net_addr_format(addr, text, sizeof(text));
	return xasprintf("%s: %s: %s", text, what, strerror(err));
}

/* a socket file may be removed only when no process accepts on it */
static int net_unix_clear_stale(const struct net_addr *addr, char **error_r)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)(const void *)&addr->ss;
	struct stat st;

	if (lstat(sun->sun_path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = net_error(addr, "stat", errno);
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		*error_r = net_error(addr, "exists and is not a socket", EEXIST);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = net_error(addr, "socket", errno);
		return -1;
	}
	int ret = connect(fd, (const struct sockaddr *)&addr->ss, addr->len);
	int err = errno;
	close(fd);
	if (ret == 0) {
		*error_r = net_error(addr, "already in use by a running process", EADDRINUSE);
		return -1;
	}
	if (err != ECONNREFUSED) {
		*error_r = net_error(addr, "cannot tell whether the socket is in use", err);
		return -1;
	}
	if (unlink(sun->sun_path) < 0 && errno != ENOENT) {
		*error_r = net_error(addr, "removing stale socket", errno);
		return -1;
	}
	return 0;
}

int net_listen_mode(const struct net_addr *addr, int backlog, mode_t unix_mode, char **error_r)
{
	int family = addr->ss.ss_family;
	int fd = net_socket(family);
	if (fd < 0) {
		*error_r = net_error(addr, "socket", errno);
		return -1;
	}
	int one = 1;
	if (family == AF_INET || family == AF_INET6) {
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
			*error_r = net_error(addr, "SO_REUSEADDR", errno);
			close(fd);
			return -1;
		}
	}
	if (family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) {
		*error_r = net_error(addr, "IPV6_V6ONLY", errno);
		close(fd);
		return -1;
	}
	if (family == AF_UNIX) {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)(const void *)&addr->ss;
		if (net_unix_clear_stale(addr, error_r) < 0) {
			close(fd);
			return -1;
		}
		/* bind under a strict umask so the file never exists with a
		 * wider mode, then set the mode asked for */
		mode_t old = umask(0177);
		int ret = bind(fd, (const struct sockaddr *)&addr->ss, addr->len);
		int err = errno;
		umask(old);
		if (ret < 0) {
			*error_r = net_error(addr, "bind", err);
			close(fd);
			return -1;
		}
		if (chmod(sun->sun_path, unix_mode) < 0) {
			*error_r = net_error(addr, "chmod", errno);
			close(fd);
			return -1;
		}
	} else if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0) {
		*error_r = net_error(addr, "bind", errno);
		close(fd);
		return -1;
	}
	if (listen(fd, backlog) < 0) {
		*error_r = net_error(addr, "listen", errno);
		close(fd);
		return -1;
	}
	return fd;
}

int net_listen(const struct net_addr *addr, int backlog, char **error_r)
{
	return net_listen_mode(addr, backlog, NET_UNIX_DEFAULT_MODE, error_r);
}

int net_connect_nonblock(const struct net_addr *addr, int *fd_r, char **error_r)
{
	int fd = net_socket(addr->ss.ss_family);
	*fd_r = -1;
	if (fd < 0) {
		*error_r = net_error(addr, "socket", errno);
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) == 0) {
		*fd_r = fd;
		return 1;
	}
	if (errno == EINPROGRESS || errno == EINTR) {
		*fd_r = fd;
		return 0;
	}
	/* a unix socket with a full backlog says EAGAIN: an error here */
	*error_r = net_error(addr, "connect", errno);
	close(fd);
	return -1;
}

int net_connect_finish(int fd, char **error_r)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		*error_r = xasprintf("connect: %s", strerror(err));
		return -1;
	}
	return 1;
}
