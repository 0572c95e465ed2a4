/* Diagnostics for bench/imap_bench.py --postern-nodelay: an LD_PRELOAD
 * object that sets TCP_NODELAY on every TCP socket a process creates or
 * accepts, to show what postern's latency would be without Nagle's
 * algorithm (see bench/README.md). NODELAY_ONLY=WORD limits it to the
 * processes whose command line holds WORD (e.g. "worker imap4 ").
 *   cc -shared -fPIC -O2 -o nodelay_shim.so nodelay_shim.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NODELAY_ONLY=WORD: only in processes whose command line holds WORD */
static int enabled = -1;
static int on(void)
{
	if (enabled < 0) {
		const char *only = getenv("NODELAY_ONLY");
		enabled = 1;
		if (only && *only) {
			char buf[4096] = {0};
			FILE *f = fopen("/proc/self/cmdline", "r");
			size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
			if (f)
				fclose(f);
			for (size_t i = 0; i < n; i++)
				if (buf[i] == 0)
					buf[i] = ' ';
			enabled = strstr(buf, only) != NULL;
		}
	}
	return enabled;
}

static void nodelay(int fd)
{
	if (!on())
		return;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int socket(int domain, int type, int protocol)
{
	static int (*real)(int, int, int);
	if (!real)
		real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
	int fd = real(domain, type, protocol);
	if (fd >= 0 && (domain == AF_INET || domain == AF_INET6) && (type & 0xf) == SOCK_STREAM)
		nodelay(fd);
	return fd;
}

int accept4(int s, struct sockaddr *a, socklen_t *l, int flags)
{
	static int (*real)(int, struct sockaddr *, socklen_t *, int);
	if (!real)
		real =
		    (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
	int fd = real(s, a, l, flags);
	if (fd >= 0)
		nodelay(fd);
	return fd;
}

int accept(int s, struct sockaddr *a, socklen_t *l)
{
	return accept4(s, a, l, 0);
}
