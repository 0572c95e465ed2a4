#include "lib/ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* wire header; host byte order, the peers are on one machine */
struct ipc_header {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t nfields;
};

#define IPC_MAGIC 0x70737472u /* "pstr" */

int ipc_pair(int fds_r[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds_r);
}

int ipc_send(int channel, enum ipc_type type, int fd_to_pass, const struct ipc_field *fields,
	     size_t nfields, int timeout_ms)
{
	static char buf[IPC_MAX_MESSAGE];
	if (nfields > IPC_MAX_FIELDS) {
		errno = EMSGSIZE;
		return -1;
	}
	struct ipc_header hdr = {IPC_MAGIC, IPC_PROTOCOL_VERSION, (uint16_t)type,
				 (uint32_t)nfields};
	size_t len = sizeof(hdr);
	memcpy(buf, &hdr, sizeof(hdr));
	for (size_t i = 0; i < nfields; i++) {
		size_t klen = strlen(fields[i].key);
		size_t vlen = fields[i].value == NULL ? 0 : strlen(fields[i].value);
		if (len + klen + vlen + 2 > sizeof(buf) || memchr(fields[i].key, '=', klen) != NULL) {
			errno = EMSGSIZE;
			return -1;
		}
		memcpy(buf + len, fields[i].key, klen);
		buf[len + klen] = '=';
		if (vlen > 0)
			memcpy(buf + len + klen + 1, fields[i].value, vlen);
		buf[len + klen + 1 + vlen] = '\0';
		len += klen + vlen + 2;
	}

	struct iovec iov = {buf, len};
	struct msghdr mh = {0};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} control;
	if (fd_to_pass >= 0) {
		memset(&control, 0, sizeof(control));
		mh.msg_control = control.space;
		mh.msg_controllen = sizeof(control.space);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd_to_pass, sizeof(int));
	}
	for (;;) {
		ssize_t n = sendmsg(channel, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		struct pollfd pfd = {channel, POLLOUT, 0};
		int r = poll(&pfd, 1, timeout_ms);
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

int ipc_recv(int channel, struct ipc_msg *msg, const char **error_r)
{
	struct iovec iov = {msg->buf, sizeof(msg->buf)};
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} control;
	struct msghdr mh = {0};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = control.space;
	mh.msg_controllen = sizeof(control.space);
	msg->fd = -1;
	msg->nfields = 0;

	ssize_t n;
	do {
		n = recvmsg(channel, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		/* the peer exited with messages unread: same as a close */
		*error_r = errno == ECONNRESET ? "channel closed" : strerror(errno);
		return -1;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)) && msg->fd < 0)
			memcpy(&msg->fd, CMSG_DATA(cm), sizeof(int));
	}
	if (n == 0) {
		*error_r = "channel closed";
		goto fail;
	}
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
		*error_r = "message truncated";
		goto fail;
	}
	struct ipc_header hdr;
	if ((size_t)n < sizeof(hdr)) {
		*error_r = "short message";
		goto fail;
	}
	memcpy(&hdr, msg->buf, sizeof(hdr));
	if (hdr.magic != IPC_MAGIC || hdr.version != IPC_PROTOCOL_VERSION) {
		*error_r = "bad magic or protocol version";
		goto fail;
	}
	if (hdr.nfields > IPC_MAX_FIELDS) {
		*error_r = "too many fields";
		goto fail;
	}
	msg->type = (enum ipc_type)hdr.type;
	size_t pos = sizeof(hdr);
	size_t len = (size_t)n;
	for (uint32_t i = 0; i < hdr.nfields; i++) {
		char *start = msg->buf + pos;
		char *end = memchr(start, '\0', len - pos);
		char *eq = end == NULL ? NULL : memchr(start, '=', (size_t)(end - start));
		if (end == NULL || eq == NULL || eq == start) {
			*error_r = "malformed field";
			goto fail;
		}
		*eq = '\0';
		msg->fields[i].key = start;
		msg->fields[i].value = eq + 1;
		pos = (size_t)(end - msg->buf) + 1;
	}
	if (pos != len) {
		*error_r = "trailing bytes after the last field";
		goto fail;
	}
	msg->nfields = hdr.nfields;
	return 1;
fail:
	if (msg->fd >= 0) {
		close(msg->fd);
		msg->fd = -1;
	}
	return -1;
}

const char *ipc_msg_get(const struct ipc_msg *msg, const char *key)
{
	for (size_t i = 0; i < msg->nfields; i++)
		if (strcmp(msg->fields[i].key, key) == 0)
			return msg->fields[i].value;
	return NULL;
}
