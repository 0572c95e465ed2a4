/* libFuzzer target: whole pre-login sessions of the pop3 and imap4 front
 * ends over a socket pair, the way a client drives them. The first input
 * byte picks the protocol and the login-type variant; the rest is what the
 * client sends. The worker runtime is replaced by the small stand-ins below
 * (settings from a table, authd answering each login in turn with every
 * verdict), so the front end's own
 * code runs unchanged: the line and literal handling, SASL, STARTTLS, the
 * policy checks and the limits. */

#include <event2/event.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/worker.h"
#include "net/test_cert.h"

static struct event_base *fuzz_base;
static void *fuzz_context;
static char *fuzz_datadir;
static const char *fuzz_login_type = "secure-login";
static const char *fuzz_service = "imap4";

struct worker {
	int unused;
};
static struct worker fuzz_worker;

struct event_base *worker_event_base(struct worker *w)
{
	(void)w;
	return fuzz_base;
}

const char *worker_service(struct worker *w)
{
	(void)w;
	return fuzz_service;
}

const char *worker_datadir(struct worker *w)
{
	(void)w;
	return fuzz_datadir;
}

const char *worker_setting(struct worker *w, const char *key)
{
	(void)w;
	if (strcmp(key, "login-type") == 0)
		return fuzz_login_type;
	if (strcmp(key, "max-command-size") == 0)
		return strcmp(fuzz_service, "pop3") == 0 ? "512" : "10240";
	if (strcmp(key, "banner") == 0)
		return "fuzz";
	if (strcmp(key, "max-connections-per-user") == 0)
		return "16";
	return NULL;
}

long long worker_setting_int(struct worker *w, const char *key, long long def)
{
	const char *v = worker_setting(w, key);
	return v != NULL ? strtoll(v, NULL, 10) : def;
}

char *worker_setting_path(struct worker *w, const char *key, const char *def)
{
	(void)key;
	char *path = NULL;
	if (asprintf(&path, "%s/%s", worker_datadir(w), def) < 0)
		abort();
	return path;
}

bool worker_setting_bool(struct worker *w, const char *key, bool def)
{
	(void)w;
	(void)key;
	return def;
}

/* requests "sent to authd", answered from the loop below */
static char fuzz_pending_ids[16][16];
static int fuzz_pending_types[16];
static unsigned fuzz_npending;
static unsigned fuzz_answer_kind;

int worker_authd_send(struct worker *w, int type, const void *fields, unsigned nfields)
{
	(void)w;
	const struct ipc_field *f = fields;
	if (fuzz_npending == 16)
		return -1; /* authd unreachable: the temporary-failure path */
	for (unsigned i = 0; i < nfields; i++)
		if (strcmp(f[i].key, "id") == 0) {
			fuzz_pending_types[fuzz_npending] = type;
			snprintf(fuzz_pending_ids[fuzz_npending++], sizeof(fuzz_pending_ids[0]), "%s",
				 f[i].value);
		}
	return 0;
}

/* authd's verdicts, in turn: every answer path of the protocols; a SCRAM
 * step is also answered with the next server message ("continue") */
static void fuzz_answer_authd(const struct worker_service_ops *ops)
{
	static const char *const results[] = {"fail", "refused", "tempfail", "ok", "continue"};
	static struct ipc_msg msg;
	while (fuzz_npending > 0) {
		fuzz_npending--;
		const char *id = fuzz_pending_ids[fuzz_npending];
		int type = fuzz_pending_types[fuzz_npending];
		bool scram = type == IPC_SCRAM_FIRST || type == IPC_SCRAM_FINAL;
		const char *result = results[fuzz_answer_kind++ % (scram ? 5 : 4)];
		memset(&msg, 0, sizeof(msg));
		msg.type = IPC_AUTH_REPLY;
		msg.fd = -1;
		msg.fields[0] = (struct ipc_field){"id", id};
		msg.fields[1] = (struct ipc_field){"result", result};
		msg.fields[2] = (struct ipc_field){"reason", "fuzz"};
		/* "ok" without a back-end address: the back end is unavailable */
		msg.fields[3] = (struct ipc_field){"user", "fuzz"};
		msg.fields[4] = (struct ipc_field){"exchange", "1.00ff"};
		msg.fields[5] = (struct ipc_field){
		    "challenge", type == IPC_SCRAM_FIRST
				     ? "r=abcdef,s=QSXCR+Q6sek8bf92,i=4096"
				     : "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="};
		msg.nfields = 6;
		ops->authd_reply(&fuzz_worker, &msg);
	}
}

void worker_set_context(struct worker *w, void *ctx)
{
	(void)w;
	fuzz_context = ctx;
}

void *worker_context(struct worker *w)
{
	(void)w;
	return fuzz_context;
}

void worker_shutdown_done(struct worker *w)
{
	(void)w;
	abort(); /* never asked to shut down here */
}

static const struct worker_service_ops *fuzz_ops[2];
static bool fuzz_ready[2];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LEVEL_ERROR);
	fuzz_base = event_base_new();
	fuzz_datadir = test_tmpdir();
	char cert[512], key[512], tls[512];
	snprintf(tls, sizeof(tls), "%s/tls", fuzz_datadir);
	mkdir(tls, 0700);
	snprintf(cert, sizeof(cert), "%s/server.crt", tls);
	snprintf(key, sizeof(key), "%s/server.key", tls);
	if (test_cert_write(cert, key, "fuzz.example.test") < 0)
		abort();
	fuzz_ops[0] = &pop3_frontend_ops;
	fuzz_ops[1] = &imap4_frontend_ops;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned which = data[0] & 1;
	fuzz_login_type = (data[0] & 2) != 0 ? "plain-text-login" : "secure-login";
	fuzz_service = which == 0 ? "pop3" : "imap4";
	data++;
	size--;
	/* one front end per protocol for the whole run, like a worker */
	static void *contexts[2];
	fuzz_context = contexts[which];
	if (!fuzz_ready[which]) {
		char *error = NULL;
		if (fuzz_ops[which]->init(&fuzz_worker, &error) < 0)
			abort();
		contexts[which] = fuzz_context;
		fuzz_ready[which] = true;
	}
	/* the login type is re-read only when it changes, as in a worker */
	static const char *applied[2];
	if (applied[which] != fuzz_login_type) {
		fuzz_ops[which]->settings_changed(&fuzz_worker);
		applied[which] = fuzz_login_type;
	}

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	struct sockaddr_storage peer;
	memset(&peer, 0, sizeof(peer));
	peer.ss_family = AF_UNIX;
	fuzz_ops[which]->accepted(&fuzz_worker, sv[0], (struct sockaddr *)&peer, sizeof(sa_family_t),
				  false, "fuzz");
	/* the client writes everything, then reads whatever comes back until
	 * the server has closed or went quiet */
	size_t sent = 0;
	char sink[65536];
	for (int round = 0; round < 2000; round++) {
		if (sent < size) {
			ssize_t n = write(sv[1], data + sent, size - sent);
			if (n > 0)
				sent += (size_t)n;
			if (sent == size)
				shutdown(sv[1], SHUT_WR);
		} else if (size == 0 && round == 0) {
			shutdown(sv[1], SHUT_WR);
		}
		event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
		fuzz_answer_authd(fuzz_ops[which]);
		ssize_t got = read(sv[1], sink, sizeof(sink));
		if (got == 0)
			break;
		if (fuzz_ops[which]->connection_count(&fuzz_worker) == 0)
			break;
	}
	close(sv[1]);
	/* let the server notice the close and free the session */
	for (int round = 0; round < 100 && fuzz_ops[which]->connection_count(&fuzz_worker) > 0;
	     round++) {
		event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
		fuzz_answer_authd(fuzz_ops[which]);
	}
	fuzz_npending = 0;
	return 0;
}
