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
	/* master -> worker, authd: sent first; fd: the shared metrics region
	 * (lib/metrics.h); fields: slot= */
	IPC_METRICS = 16,
	/* master -> workers of services that observe the others (http) */
	IPC_SERVICE_INFO = 17,	  /* fields: service=, state=, then that service's settings */
	IPC_CONTROL_REPLY = 18,	  /* fields: id=, reply= (the control socket's answer text) */
	/* worker -> master */
	IPC_READY = 32,		  /* fields: pid= */
	IPC_STATUS,		  /* fields: connections= */
	/* worker -> master, from services that observe the others (http) */
	IPC_CONTROL_REQUEST = 48, /* fields: id=, command= (a control socket request line) */
	IPC_SETTINGS_CHANGE = 49, /* fields: id=, service=, then KEY=VALUE (reply: IPC_CONTROL_REPLY) */
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
	/* http worker <-> authd (src/authd/authd.h) */
	IPC_SESSION_CHECK = 96,	  /* fields: id=, session= */
	IPC_SESSION_REPLY = 97,	  /* fields: id=, result=, domain=, hostname=, user=, ... */
	IPC_SESSION_END = 98,	  /* fields: id=, session= (reply: IPC_SESSION_REPLY) */
	IPC_USER_LIST = 99,	  /* fields: id=, session=, query=, exact=, limit= */
	IPC_USER_LIST_REPLY = 100, /* fields: id=, result=, total=, user=... */
	IPC_USER_SET = 101,	  /* fields: id=, session=, user=, pop3|imap4|smtp= (reply: IPC_USER_REPLY) */
	/* worker <-> authd: copies in Sent (authd_ticket.h); replies are IPC_USER_REPLY */
	IPC_SENT_AUTHORISE = 112, /* submission: id=, user=, digest= (reply: mac=) */
	IPC_SENT_VERIFY = 113,	  /* lmtp: id=, user=, digest=, mac= */
	/* master -> authd */
	IPC_AUTHD_CLIENT = 128,	  /* fd: a channel to a newly started worker; fields: service= */
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
