#ifndef POSTERN_IPC_H
#define POSTERN_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Typed messages between postern's processes (master, authd, workers).
 *
 * A channel is one end of an AF_UNIX SOCK_SEQPACKET socket pair, so every
 * recvmsg() returns exactly one message, optionally carrying one file
 * descriptor (SCM_RIGHTS). A message is a fixed header (magic, protocol
 * version, type, field count) followed by "key=value" fields, each ending in
 * NUL. A receiver that gets a short, oversized or malformed message treats
 * its peer as broken and closes the channel: the sender never gets to
 * confuse the receiver's state.
 */

#define IPC_PROTOCOL_VERSION 1
#define IPC_MAX_MESSAGE 65536
#define IPC_MAX_FIELDS 256

enum ipc_type {
	/* master -> worker */
	IPC_SETTINGS = 1,	  /* fields: the service's effective settings */
	IPC_LISTENERS_RESET,	  /* drop every listener (new ones follow) */
	IPC_LISTENER,		  /* fd: a listening socket; fields: addr=, tls=yes|no */
	IPC_SHUTDOWN,		  /* finish sessions politely and exit */
	IPC_AUTHD_CHANNEL,	  /* fd: a channel to authd for this worker */
	IPC_KICK,		  /* fields: user=: end that user's sessions now */
	/* worker -> master */
	IPC_READY = 32,		  /* fields: pid= */
	IPC_STATUS,		  /* fields: connections= */
	/* worker <-> authd */
	IPC_AUTH_REQUEST = 64,	  /* fields: id=, service=, user=, password=, peer=, tls= */
	IPC_AUTH_REPLY,		  /* fields: id=, result=ok|fail|refused|tempfail, reason=, ... */
	IPC_USER_LOOKUP,	  /* fields: id=, user= */
	IPC_USER_REPLY,		  /* fields: id=, result=, ... */
	IPC_TICKET_VERIFY,	  /* fields: id=, user=, peer=, expiry=, mac= (reply: IPC_USER_REPLY) */
	IPC_SCRAM_FIRST,	  /* SCRAM-SHA-256: id=, message= (client-first), and the
				   * request fields of IPC_AUTH_REQUEST; reply: IPC_AUTH_REPLY */
	IPC_SCRAM_FINAL,	  /* id=, exchange=, message= (client-final), ... */
	IPC_SCRAM_CONFIRM,	  /* id=, exchange=, ...: the client took the server signature */
	/* master -> authd */
	IPC_AUTHD_CLIENT,	  /* fd: a channel to a newly started worker; fields: service= */
};

struct ipc_field {
	const char *key;
	const char *value;
};

/* A received message. Field strings point into the message's own buffer and
 * live as long as the message. */
struct ipc_msg {
	enum ipc_type type;
	int fd; /* -1 when the message carried no descriptor; the receiver owns it */
	size_t nfields;
	struct ipc_field fields[IPC_MAX_FIELDS];
	char buf[IPC_MAX_MESSAGE];
};

/* Make a connected SOCK_SEQPACKET pair, both ends close-on-exec. */
int ipc_pair(int fds_r[2]);

/* Send one message, passing fd_to_pass (or -1). Waits at most timeout_ms for
 * room in the socket buffer. Returns 0 or -1 with errno set. */
int ipc_send(int channel, enum ipc_type type, int fd_to_pass, const struct ipc_field *fields,
	     size_t nfields, int timeout_ms);

/* Receive one message. Returns 1 with *msg filled, 0 if nothing is waiting
 * (EAGAIN on a non-blocking channel), -1 on EOF or on a malformed message
 * (error text in *error_r; the caller closes the channel). */
int ipc_recv(int channel, struct ipc_msg *msg, const char **error_r);

/* Value of a field or NULL. */
const char *ipc_msg_get(const struct ipc_msg *msg, const char *key);

#endif
