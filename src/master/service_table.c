#include <string.h>

#include "frontend/frontend.h"
#include "http/http.h"
#include "imapd/imapd.h"
#include "lib/worker.h"
#include "lmtpd/lmtpd.h"
#include "master/master.h"
#include "pop3d/pop3d.h"
#include "submitd/submitd.h"

/* The services of this build. A service whose protocol code is not part of
 * the build has ops == NULL: it is listed and configurable, but cannot be
 * started. */
const struct service_def service_defs[] = {
	{"imap4", "IMAP4 front end (clients connect here)", &imap4_frontend_ops, "postern-front", false},
	{"imap4-backend", "IMAP4 back end on the mailbox store", &imap4_backend_ops,
	 "postern-mail", false},
	{"pop3", "POP3 front end (clients connect here)", &pop3_frontend_ops, "postern-front", false},
	{"pop3-backend", "POP3 back end on the mailbox store", &pop3_backend_ops,
	 "postern-mail", false},
	{"submission", "authenticated SMTP submission", &submission_service_ops,
	 "postern-front", false},
	{"lmtp", "delivery into the mailbox store", &lmtp_service_ops, "postern-mail", false},
	{"http", "settings page, autoconfiguration, admin centre", &http_service_ops, "postern-front",
	 .observes_services = true},
	{NULL, NULL, NULL, NULL, false},
};

const struct service_def *service_def_find(const char *name)
{
	for (const struct service_def *d = service_defs; d->name != NULL; d++)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}
