#include "lib/settings.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "lib/net_addr.h"
#include "lib/xalloc.h"

enum settings_service_id {
	SVC_IMAP4,
	SVC_IMAP4_BACKEND,
	SVC_POP3,
	SVC_POP3_BACKEND,
	SVC_SUBMISSION,
	SVC_LMTP,
	SVC_HTTP,
	SVC_COUNT
};

const char *const settings_services[] = {
    "imap4", "imap4-backend", "pop3", "pop3-backend", "submission", "lmtp", "http", NULL,
};

enum settings_type {
	ST_CHOICE,  /* one of choices[], matched ignoring case, '-' and '_' */
	ST_NUMBER,  /* integer min..max */
	ST_SECONDS, /* duration min..max seconds */
	ST_COUNT,   /* 1..max or "unlimited" */
	ST_BOOL,
	ST_BINDINGS,	/* list of listen addresses */
	ST_CONNECTIONS, /* list of host:port:SSL|TLS|none */
	ST_CERT_NAME,	/* DNS name (optionally "*." first) or empty */
	ST_PATH,	/* file path, relative to the data dir unless absolute */
	ST_SOCKET_PATH, /* unix socket path, relative to the data dir unless absolute */
	ST_TEXT,	/* printable ASCII, 1..max bytes */
	ST_NETWORKS,	/* list of CIDR networks */
	ST_RELAY_HOST,	/* empty, or host[:port] with host a DNS name, IPv4 or [IPv6] */
	ST_DOMAINS,	/* list of DNS names */
	ST_OPT_PATH,	/* empty, or an ST_PATH */
	ST_RESOLVERS,	/* list of IPv4 or [IPv6] addresses with an optional :port */
};

struct settings_def {
	const char *key;
	enum settings_type type;
	const char *help;
	long long min, max;
	const char *const *choices;
	/* default per service; NULL where the key does not apply */
	const char *defaults[SVC_COUNT];
};

static const char *const startup_choices[] = {"automatic", "manual", "disabled", NULL};
static const char *const login_type_choices[] = {"plain-text-login", "plain-text-authentication",
						 "secure-login", NULL};
static const char *const relay_tls_choices[] = {"required", "opportunistic", "none", NULL};

#define ALL_SERVICES(v)                                                                            \
	{                                                                                          \
		[SVC_IMAP4] = (v), [SVC_IMAP4_BACKEND] = (v), [SVC_POP3] = (v),                    \
		[SVC_POP3_BACKEND] = (v), [SVC_SUBMISSION] = (v), [SVC_LMTP] = (v),                \
		[SVC_HTTP] = (v)                                                                   \
	}
#define TLS_SERVICES(v)                                                                            \
	{                                                                                          \
		[SVC_IMAP4] = (v), [SVC_IMAP4_BACKEND] = (v), [SVC_POP3] = (v),                    \
		[SVC_POP3_BACKEND] = (v), [SVC_SUBMISSION] = (v), [SVC_HTTP] = (v)                 \
	}
#define SESSION_SERVICES(v)                                                                        \
	{                                                                                          \
		[SVC_IMAP4] = (v), [SVC_IMAP4_BACKEND] = (v), [SVC_POP3] = (v),                    \
		[SVC_POP3_BACKEND] = (v), [SVC_SUBMISSION] = (v)                                   \
	}
#define PROTOCOL_SERVICES(v)                                                                       \
	{                                                                                          \
		[SVC_IMAP4] = (v), [SVC_IMAP4_BACKEND] = (v), [SVC_POP3] = (v),                    \
		[SVC_POP3_BACKEND] = (v), [SVC_SUBMISSION] = (v), [SVC_LMTP] = (v)                 \
	}
#define CLIENT_SERVICES(v)                                                                         \
	{                                                                                          \
		[SVC_IMAP4] = (v), [SVC_POP3] = (v), [SVC_SUBMISSION] = (v)                        \
	}
/* the services that take logins from clients: the client services and http */
#define LOGIN_SERVICES(v)                                                                          \
	{                                                                                          \
		[SVC_IMAP4] = (v), [SVC_POP3] = (v), [SVC_SUBMISSION] = (v), [SVC_HTTP] = (v)      \
	}

static const char *const socket_mode_choices[] = {"0600", "0660", "0666", NULL};
static const char *const literal_choices[] = {"literal-plus", "literal-minus", NULL};

static const struct settings_def settings_defs[] = {
    {
	.key = "startup",
	.type = ST_CHOICE,
	.choices = startup_choices,
	.help = "whether the master starts the service: automatic, manual or disabled",
	.defaults =
	    {
		[SVC_IMAP4] = "manual",
		[SVC_IMAP4_BACKEND] = "manual",
		[SVC_POP3] = "manual",
		[SVC_POP3_BACKEND] = "manual",
		[SVC_SUBMISSION] = "automatic",
		[SVC_LMTP] = "automatic",
		[SVC_HTTP] = "automatic",
	    },
    },
    {
	.key = "workers",
	.type = ST_NUMBER,
	.min = 1,
	.max = 64,
	.help = "number of worker processes of the service (1 to 64)",
	.defaults = ALL_SERVICES("1"),
    },
    {
	.key = "ssl-bindings",
	.type = ST_BINDINGS,
	.help = "implicit-TLS listeners: addr:port list such as '[::]:993, 0.0.0.0:993'",
	.defaults =
	    {
		[SVC_IMAP4] = "[::]:993, 0.0.0.0:993",
		[SVC_IMAP4_BACKEND] = "[::]:1993, 0.0.0.0:1993",
		[SVC_POP3] = "[::]:995, 0.0.0.0:995",
		[SVC_POP3_BACKEND] = "[::]:1995, 0.0.0.0:1995",
		[SVC_SUBMISSION] = "[::]:465, 0.0.0.0:465",
		[SVC_HTTP] = "[::]:8443, 0.0.0.0:8443",
	    },
    },
    {
	.key = "unencrypted-or-tls-bindings",
	.type = ST_BINDINGS,
	.help = "plain listeners that offer STARTTLS: addr:port list such as "
		"'[::]:143, 0.0.0.0:143'",
	.defaults =
	    {
		[SVC_IMAP4] = "[::]:143, 0.0.0.0:143",
		[SVC_IMAP4_BACKEND] = "[::]:1143, 0.0.0.0:1143",
		[SVC_POP3] = "[::]:110, 0.0.0.0:110",
		[SVC_POP3_BACKEND] = "[::]:1110, 0.0.0.0:1110",
		[SVC_SUBMISSION] = "[::]:587, 0.0.0.0:587",
		[SVC_LMTP] = "",
		[SVC_HTTP] = "[::]:8080, 0.0.0.0:8080",
	    },
    },
    {
	.key = "unix-socket",
	.type = ST_SOCKET_PATH,
	.help = "unix socket for local delivery, relative to the data dir unless absolute",
	.defaults = {[SVC_LMTP] = "lmtp.sock"},
    },
    {
	.key = "unix-socket-mode",
	.type = ST_CHOICE,
	.choices = socket_mode_choices,
	.help = "who may connect to the unix socket: 0600 (posternd's user), 0660 (and "
		"unix-socket-group: the submission service's postern-front, or postfix), 0666 "
		"(every local user)",
	.defaults = {[SVC_LMTP] = "0660"},
    },
    {
	.key = "unix-socket-group",
	.type = ST_TEXT,
	.max = 32,
	.help = "group that owns the unix socket (a system group such as postfix), or '-' to "
		"leave it as it is; postern-front lets the submission service deliver",
	.defaults = {[SVC_LMTP] = "postern-front"},
    },
    {
	.key = "external-connection-settings",
	.type = ST_CONNECTIONS,
	.help = "what users outside are told to connect to: host:port:SSL|TLS|none list",
	.defaults = CLIENT_SERVICES(""),
    },
    {
	.key = "internal-connection-settings",
	.type = ST_CONNECTIONS,
	.help = "what users inside are told to connect to: host:port:SSL|TLS|none list",
	.defaults = CLIENT_SERVICES(""),
    },
    {
	.key = "x509-certificate-name",
	.type = ST_CERT_NAME,
	.help = "host name that selects the certificate (a DNS name, or empty)",
	.defaults = TLS_SERVICES(""),
    },
    {
	.key = "certificate-file",
	.type = ST_PATH,
	.help = "PEM certificate chain, relative to the data dir unless absolute",
	.defaults = TLS_SERVICES("tls/server.crt"),
    },
    {
	.key = "certificate-key-file",
	.type = ST_PATH,
	.help = "PEM private key, relative to the data dir unless absolute",
	.defaults = TLS_SERVICES("tls/server.key"),
    },
    {
	.key = "login-type",
	.type = ST_CHOICE,
	.choices = login_type_choices,
	.help = "plain-text-login (clear text allowed), plain-text-authentication "
		"(plaintext SASL only on TLS) or secure-login (credentials only after TLS)",
	.defaults = LOGIN_SERVICES("secure-login"),
    },
    {
	.key = "max-connections",
	.type = ST_COUNT,
	.min = 1,
	.max = 1000000,
	.help = "connections to the whole service: a number or 'unlimited'",
	.defaults = ALL_SERVICES("unlimited"),
    },
    {
	.key = "max-connections-per-user",
	.type = ST_COUNT,
	.min = 1,
	.max = 1000000,
	.help = "sessions of one user: a number or 'unlimited'",
	.defaults = SESSION_SERVICES("16"),
    },
    {
	.key = "max-connections-from-single-ip",
	.type = ST_COUNT,
	.min = 1,
	.max = 1000000,
	.help = "connections from one client address: a number or 'unlimited'",
	.defaults =
	    {
		[SVC_IMAP4] = "unlimited",
		[SVC_POP3] = "unlimited",
		[SVC_SUBMISSION] = "unlimited",
		[SVC_HTTP] = "unlimited",
	    },
    },
    {
	.key = "pre-authenticated-connection-timeout",
	.type = ST_SECONDS,
	.min = 30,
	.max = 3600,
	.help = "idle time allowed before login (lmtp: between commands), 30 seconds to "
		"1 hour",
	.defaults =
	    {
		[SVC_IMAP4] = "60",
		[SVC_IMAP4_BACKEND] = "60",
		[SVC_POP3] = "60",
		[SVC_POP3_BACKEND] = "60",
		[SVC_SUBMISSION] = "60",
		[SVC_LMTP] = "300",
	    },
    },
    {
	.key = "authenticated-connection-timeout",
	.type = ST_SECONDS,
	.min = 30,
	.max = 3600,
	.help = "idle time allowed after login, 30 seconds to 1 hour",
	.defaults = SESSION_SERVICES("1800"),
    },
    {
	.key = "max-command-size",
	.type = ST_NUMBER,
	.min = 1024,
	.max = 16384,
	.help = "bytes in one command line, 1024 to 16384",
	.defaults = {[SVC_IMAP4] = "10240", [SVC_IMAP4_BACKEND] = "10240"},
    },
    {
	.key = "max-command-size",
	.type = ST_NUMBER,
	.min = 40,
	.max = 1024,
	.help = "bytes in one command line, 40 to 1024",
	.defaults = {[SVC_POP3] = "512", [SVC_POP3_BACKEND] = "512"},
    },
    {
	.key = "max-command-size",
	.type = ST_NUMBER,
	.min = 512,
	.max = 16384,
	.help = "bytes in one command line, 512 to 16384",
	.defaults = {[SVC_SUBMISSION] = "4096", [SVC_LMTP] = "4096"},
    },
    {
	.key = "max-message-size",
	.type = ST_NUMBER,
	.min = 1024,
	.max = 2147483648LL,
	.help = "bytes in one message (advertised as SIZE; for IMAP4 as APPENDLIMIT), 1024 to "
		"2147483648",
	.defaults = {[SVC_IMAP4_BACKEND] = "36700160", [SVC_SUBMISSION] = "36700160",
		     [SVC_LMTP] = "36700160"},
    },
    {
	.key = "banner",
	.type = ST_TEXT,
	.max = 200,
	.help = "greeting text, 1 to 200 printable ASCII characters",
	.defaults =
	    {
		[SVC_IMAP4] = "postern IMAP4 service ready.",
		[SVC_IMAP4_BACKEND] = "postern IMAP4 back end ready.",
		[SVC_POP3] = "postern POP3 service ready.",
		[SVC_POP3_BACKEND] = "postern POP3 back end ready.",
		[SVC_SUBMISSION] = "postern ESMTP submission service ready",
		[SVC_LMTP] = "postern LMTP service ready",
	    },
    },
    {
	.key = "protocol-log-enabled",
	.type = ST_BOOL,
	.help = "write per-session protocol logs under logs/: true or false",
	.defaults = PROTOCOL_SERVICES("false"),
    },
    {
	.key = "non-synchronizing-literals",
	.type = ST_CHOICE,
	.choices = literal_choices,
	.help = "IMAP non-synchronizing literals (RFC 7888): literal-plus (any size) or "
		"literal-minus (at most 4096 bytes)",
	.defaults = {[SVC_IMAP4] = "literal-plus", [SVC_IMAP4_BACKEND] = "literal-plus"},
    },
    {
	.key = "direct-admin-login",
	.type = ST_BOOL,
	.help = "let administrators log in to this back end directly as any user, for "
		"debugging (USER alice*admin, admin's password): true or false",
	.defaults = {[SVC_IMAP4_BACKEND] = "false", [SVC_POP3_BACKEND] = "false"},
    },
    {
	.key = "proxy-protocol-trusted",
	.type = ST_NETWORKS,
	.help = "networks allowed to send a PROXY v2 header: CIDR list such as "
		"'10.0.0.0/8, fd00::/8'",
	.defaults = LOGIN_SERVICES(""),
    },
    {
	.key = "trusted-networks",
	.type = ST_NETWORKS,
	.help = "networks exempt from the authentication failure tarpit: CIDR list",
	.defaults = LOGIN_SERVICES(""),
    },
    {
	.key = "metrics-networks",
	.type = ST_NETWORKS,
	.help = "networks that may read /metrics without signing in: CIDR list (empty: nobody)",
	.defaults = {[SVC_HTTP] = "127.0.0.0/8, ::1/128"},
    },
    {
	.key = "max-recipients",
	.type = ST_NUMBER,
	.min = 1,
	.max = 10000,
	.help = "recipients of one message (more get 452 4.5.3), 1 to 10000",
	.defaults = {[SVC_SUBMISSION] = "100"},
    },
    {
	.key = "local-domains",
	.type = ST_DOMAINS,
	.help = "mail domains delivered into this instance's mailboxes besides the "
		"instance's domain: list of DNS names, or empty",
	.defaults = {[SVC_SUBMISSION] = ""},
    },
    {
	.key = "smarthost",
	.type = ST_RELAY_HOST,
	.help = "relay host for mail to other domains: host[:port] (port 25 when not "
		"given), or empty to deliver to each domain's MX hosts",
	.defaults = {[SVC_SUBMISSION] = ""},
    },
    {
	.key = "smarthost-tls",
	.type = ST_CHOICE,
	.choices = relay_tls_choices,
	.help = "STARTTLS towards the smarthost: required, opportunistic or none",
	.defaults = {[SVC_SUBMISSION] = "opportunistic"},
    },
    {
	.key = "smarthost-auth-file",
	.type = ST_OPT_PATH,
	.help = "file holding 'user:password' for AUTH PLAIN at the smarthost (sent only "
		"over TLS), relative to the data dir unless absolute, or empty for none",
	.defaults = {[SVC_SUBMISSION] = ""},
    },
    {
	.key = "queue-retry-interval",
	.type = ST_SECONDS,
	.min = 1,
	.max = 3600,
	.help = "first wait before a deferred message is tried again (doubling after "
		"each try), 1 second to 1 hour",
	.defaults = {[SVC_SUBMISSION] = "60"},
    },
    {
	.key = "queue-max-retry-interval",
	.type = ST_SECONDS,
	.min = 1,
	.max = 86400,
	.help = "longest wait between two tries of a deferred message, 1 second to 1 day",
	.defaults = {[SVC_SUBMISSION] = "3600"},
    },
    {
	.key = "queue-lifetime",
	.type = ST_SECONDS,
	.min = 60,
	.max = 2592000,
	.help = "time a message may stay deferred before it bounces, 1 minute to 30 days",
	.defaults = {[SVC_SUBMISSION] = "432000"},
    },
    {
	.key = "save-sent",
	.type = ST_BOOL,
	.help = "save a copy of each submitted message in the sender's Sent folder, for "
		"users whose own save-sent is 'default': true or false",
	.defaults = {[SVC_SUBMISSION] = "false"},
    },
    {
	.key = "dns-resolvers",
	.type = ST_RESOLVERS,
	.help = "DNS servers for MX and address lookups: list of IPv4 or [IPv6] addresses "
		"with an optional :port, or empty for the nameservers of /etc/resolv.conf",
	.defaults = {[SVC_SUBMISSION] = ""},
    },
    {
	.key = "mx-port",
	.type = ST_NUMBER,
	.min = 1,
	.max = 65535,
	.help = "TCP port of the MX hosts mail to other domains is delivered to (25; "
		"another port only for tests or a private network), 1 to 65535",
	.defaults = {[SVC_SUBMISSION] = "25"},
    },
    {
	.key = "authentication-failure-delay",
	.type = ST_SECONDS,
	.min = 0,
	.max = 10,
	.help = "delay before a failed login is answered, 0 to 10 seconds",
	.defaults = LOGIN_SERVICES("2"),
    },
    {
	.key = "keep-alive-timeout",
	.type = ST_SECONDS,
	.min = 1,
	.max = 300,
	.help = "idle time a connection may wait for its next request, 1 second to 5 minutes",
	.defaults = {[SVC_HTTP] = "15"},
    },
    {
	.key = "session-timeout",
	.type = ST_SECONDS,
	.min = 60,
	.max = 86400,
	.help = "idle time after which a signed-in web session ends, 1 minute to 1 day",
	.defaults = {[SVC_HTTP] = "1800"},
    },
    {
	.key = "session-lifetime",
	.type = ST_SECONDS,
	.min = 300,
	.max = 604800,
	.help = "time after which a web session ends however active it is, 5 minutes to 7 days",
	.defaults = {[SVC_HTTP] = "28800"},
    },
    {
	.key = "sasl-scram-sha-256",
	.type = ST_BOOL,
	.help = "offer the SCRAM-SHA-256 mechanism where PLAIN is offered (off while users "
		"imported with password hashes have no SCRAM keys yet: they get them at their "
		"next PLAIN or LOGIN login): true or false",
	.defaults = CLIENT_SERVICES("true"),
    },
};

#define SETTINGS_DEF_COUNT (sizeof(settings_defs) / sizeof(settings_defs[0]))

static int settings_service_id(const char *service)
{
	if (service == NULL)
		return -1;
	for (int i = 0; settings_services[i] != NULL; i++)
		if (strcmp(settings_services[i], service) == 0)
			return i;
	return -1;
}

bool settings_service_known(const char *service)
{
	return settings_service_id(service) >= 0;
}

static const struct settings_def *settings_find(int svc, const char *key)
{
	if (svc < 0 || key == NULL)
		return NULL;
	for (size_t i = 0; i < SETTINGS_DEF_COUNT; i++)
		if (settings_defs[i].defaults[svc] != NULL &&
		    strcmp(settings_defs[i].key, key) == 0)
			return &settings_defs[i];
	return NULL;
}

bool settings_key_known(const char *service, const char *key)
{
	return settings_find(settings_service_id(service), key) != NULL;
}

const char *settings_default(const char *service, const char *key)
{
	int svc = settings_service_id(service);
	const struct settings_def *def = settings_find(svc, key);
	return def == NULL ? NULL : def->defaults[svc];
}

const char *settings_help(const char *service, const char *key)
{
	const struct settings_def *def = settings_find(settings_service_id(service), key);
	return def == NULL ? NULL : def->help;
}

void settings_foreach_key(const char *service,
			  void (*cb)(void *ctx, const char *key, const char *help), void *ctx)
{
	int svc = settings_service_id(service);
	if (svc < 0)
		return;
	for (size_t i = 0; i < SETTINGS_DEF_COUNT; i++)
		if (settings_defs[i].defaults[svc] != NULL)
			cb(ctx, settings_defs[i].key, settings_defs[i].help);
}

/* parsers */

/* decimal digits only, at most max_digits of them, no overflow of 64 bits */
static int settings_parse_digits(const char *s, size_t len, unsigned long long *value_r)
{
	if (len == 0 || len > 19)
		return -1;
	unsigned long long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	*value_r = v;
	return 0;
}

int settings_parse_seconds(const char *value, unsigned *seconds_r)
{
	size_t len = strlen(value);
	unsigned long long total = 0;
	if (strchr(value, ':') != NULL) {
		/* h:mm:ss, as Exchange writes time spans */
		unsigned long long part[3];
		const char *p = value;
		for (int i = 0; i < 3; i++) {
			const char *end = i < 2 ? strchr(p, ':') : p + strlen(p);
			if (end == NULL ||
			    settings_parse_digits(p, (size_t)(end - p), &part[i]) < 0)
				return -1;
			if (i > 0 && (end - p != 2 || part[i] > 59))
				return -1;
			p = i < 2 ? end + 1 : end;
		}
		if (part[0] > 1000000)
			return -1;
		total = part[0] * 3600 + part[1] * 60 + part[2];
	} else {
		unsigned long long mult = 1;
		if (len > 0 && !isdigit((unsigned char)value[len - 1])) {
			switch (value[len - 1]) {
			case 's':
				mult = 1;
				break;
			case 'm':
				mult = 60;
				break;
			case 'h':
				mult = 3600;
				break;
			default:
				return -1;
			}
			len--;
		}
		unsigned long long n;
		if (settings_parse_digits(value, len, &n) < 0 || len > 9)
			return -1;
		total = n * mult;
	}
	if (total > UINT32_MAX)
		return -1;
	*seconds_r = (unsigned)total;
	return 0;
}

int settings_parse_count(const char *value, unsigned long long *count_r)
{
	if (strcasecmp(value, "unlimited") == 0) {
		*count_r = 0;
		return 0;
	}
	return settings_parse_digits(value, strlen(value), count_r);
}

int settings_parse_bool(const char *value, bool *bool_r)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*bool_r = true;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*bool_r = false;
			return 0;
		}
	}
	return -1;
}

char **settings_list_split(const char *value, unsigned *count_r)
{
	char *copy = xstrdup(value);
	char **list = xcalloc(1, sizeof(*list));
	unsigned count = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", \t", &save); tok != NULL;
	     tok = strtok_r(NULL, ", \t", &save)) {
		list = xrealloc(list, (count + 2) * sizeof(*list));
		list[count++] = xstrdup(tok);
		list[count] = NULL;
	}
	free(copy);
	if (count_r != NULL)
		*count_r = count;
	return list;
}

void settings_list_free(char ***list)
{
	if (*list == NULL)
		return;
	for (char **p = *list; *p != NULL; p++)
		free(*p);
	free(*list);
	*list = NULL;
}

bool settings_dns_name_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 253)
		return false;
	const char *label = name;
	for (;;) {
		const char *dot = strchr(label, '.');
		size_t n = dot == NULL ? strlen(label) : (size_t)(dot - label);
		if (n == 0 || n > 63 || label[0] == '-' || label[n - 1] == '-')
			return false;
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)label[i]) && label[i] != '-')
				return false;
		if (dot == NULL)
			return true;
		label = dot + 1;
	}
}

/* validation */

/* A short, printable rendering of a refused value for error messages:
 * control and non-ASCII bytes as \xNN, cut after 80 bytes. */
static char *settings_quote(const char *value)
{
	size_t len = strlen(value);
	size_t shown = len > 80 ? 80 : len;
	char *out = xmalloc(shown * 4 + 4);
	size_t o = 0;
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c < 0x20 || c >= 0x7f)
			o += (size_t)sprintf(out + o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	if (shown < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static void settings_seconds_text(long long s, char *buf, size_t size)
{
	if (s >= 3600 && s % 3600 == 0)
		snprintf(buf, size, "%lld hour%s", s / 3600, s == 3600 ? "" : "s");
	else if (s >= 60 && s % 60 == 0)
		snprintf(buf, size, "%lld minute%s", s / 60, s == 60 ? "" : "s");
	else
		snprintf(buf, size, "%lld second%s", s, s == 1 ? "" : "s");
}

/* What the key accepts, as the tail of "must be ..." in error messages. */
static char *settings_accepted_form(const struct settings_def *def, int svc)
{
	switch (def->type) {
	case ST_CHOICE: {
		size_t n = 0;
		while (def->choices[n] != NULL)
			n++;
		char *s = xstrdup("one of ");
		for (size_t i = 0; i < n; i++) {
			char *t = xasprintf("%s%s%s", s, def->choices[i],
					    i + 2 == n	 ? " or "
					    : i + 1 == n ? ""
							 : ", ");
			free(s);
			s = t;
		}
		return s;
	}
	case ST_NUMBER:
		return xasprintf("a number from %lld to %lld", def->min, def->max);
	case ST_SECONDS: {
		char lo[32], hi[32];
		settings_seconds_text(def->min, lo, sizeof(lo));
		settings_seconds_text(def->max, hi, sizeof(hi));
		return xasprintf("a duration from %s to %s (e.g. 90, 90s, 5m, 1h or 00:01:30)", lo,
				 hi);
	}
	case ST_COUNT:
		return xasprintf("a number from %lld to %lld or 'unlimited'", def->min, def->max);
	case ST_BOOL:
		return xstrdup("true or false");
	case ST_BINDINGS:
		if (svc == SVC_IMAP4_BACKEND || svc == SVC_POP3_BACKEND || svc == SVC_LMTP)
			return xstrdup("a list of addr:port (IPv4 '0.0.0.0:993', IPv6 "
				       "'[::]:993') or unix:/absolute/path, separated by ', '");
		return xstrdup("a list of addr:port (IPv4 '0.0.0.0:993', IPv6 '[::]:993'), "
			       "separated by ', '");
	case ST_CONNECTIONS:
		return xstrdup("a list of host:port:SSL|TLS|none (e.g. 'mail.example.com:993:SSL, "
			       "mail.example.com:143:TLS'), or empty");
	case ST_CERT_NAME:
		return xstrdup("a DNS host name (letters, digits, '-' and '.'), or empty");
	case ST_PATH:
		return xstrdup("a file path of 1 to 4096 bytes without control characters");
	case ST_SOCKET_PATH:
		return xstrdup("a socket path without control characters or '..', relative to "
			       "the data dir or absolute (at most 107 bytes)");
	case ST_TEXT:
		return xasprintf("1 to %lld printable ASCII characters", def->max);
	case ST_NETWORKS:
		return xstrdup("a list of networks such as '10.0.0.0/8, 192.0.2.7, fd00::/8', or "
			       "empty");
	case ST_RELAY_HOST:
		return xstrdup("host[:port] with a DNS name, an IPv4 address or an [IPv6] "
			       "address (e.g. 'relay.example.com:587', '[::1]:25'), or empty");
	case ST_DOMAINS:
		return xstrdup("a list of DNS names such as 'example.com, example.org', or empty");
	case ST_RESOLVERS:
		return xstrdup("a list of IPv4 or [IPv6] addresses with an optional :port such as "
			       "'192.0.2.53, [2001:db8::53]:5353', or empty");
	case ST_OPT_PATH:
		return xstrdup("a file path of 1 to 4096 bytes without control characters, or "
			       "empty");
	}
	return xstrdup("?");
}

/* Fold a choice for comparison: lower case, without '-', '_' and blanks,
 * so that "SecureLogin", "secure_login" and "secure-login" all match. */
static void settings_fold(const char *in, char *out, size_t size)
{
	size_t o = 0;
	for (; *in != '\0' && o + 1 < size; in++) {
		if (*in == '-' || *in == '_' || *in == ' ')
			continue;
		out[o++] = (char)tolower((unsigned char)*in);
	}
	out[o] = '\0';
}

static bool settings_has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return true;
	return false;
}

static void settings_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Append item to the normalised list in *out ("a, b"). */
static void settings_list_append(char **out, const char *item)
{
	char *s = xasprintf("%s%s%s", *out, **out == '\0' ? "" : ", ", item);
	free(*out);
	*out = s;
}

static bool settings_list_contains(const char *list, const char *item)
{
	unsigned n;
	char **items = settings_list_split(list, &n);
	bool found = false;
	for (unsigned i = 0; i < n && !found; i++)
		found = strcmp(items[i], item) == 0;
	settings_list_free(&items);
	return found;
}

/* Each list validator returns 0 with *out, or -1 with *detail_r (malloc'ed)
 * describing the offending item. */

static int settings_check_bindings(int svc, const char *value, char **out, char **detail_r)
{
	bool unix_ok = svc == SVC_IMAP4_BACKEND || svc == SVC_POP3_BACKEND || svc == SVC_LMTP;
	unsigned n;
	char **items = settings_list_split(value, &n);
	int ret = 0;
	for (unsigned i = 0; i < n && ret == 0; i++) {
		struct net_addr addr;
		const char *error;
		char buf[160];
		if (net_addr_parse(items[i], &addr, &error) < 0) {
			*detail_r = xasprintf("'%s': %s", items[i], error);
			ret = -1;
		} else if (addr.ss.ss_family == AF_UNIX && !unix_ok) {
			*detail_r =
			    xasprintf("'%s': unix sockets are for back ends only", items[i]);
			ret = -1;
		} else {
			net_addr_format(&addr, buf, sizeof(buf));
			if (settings_list_contains(*out, buf)) {
				*detail_r = xasprintf("'%s' is listed twice", buf);
				ret = -1;
			} else {
				settings_list_append(out, buf);
			}
		}
	}
	settings_list_free(&items);
	return ret;
}

static int settings_check_connections(const char *value, char **out, char **detail_r)
{
	unsigned n;
	char **items = settings_list_split(value, &n);
	int ret = 0;
	for (unsigned i = 0; i < n && ret == 0; i++) {
		char *item = items[i];
		char *c1 = strchr(item, ':');
		char *c2 = c1 == NULL ? NULL : strchr(c1 + 1, ':');
		if (c1 == NULL || (c2 != NULL && strchr(c2 + 1, ':') != NULL)) {
			*detail_r = xasprintf("'%s': expected host:port:SSL|TLS|none", item);
			ret = -1;
			break;
		}
		*c1 = '\0';
		if (c2 != NULL)
			*c2 = '\0';
		const char *host = item, *port_text = c1 + 1, *enc = c2 == NULL ? "" : c2 + 1;
		unsigned long long port;
		const char *enc_norm = NULL;
		if (strcasecmp(enc, "ssl") == 0)
			enc_norm = "SSL";
		else if (strcasecmp(enc, "tls") == 0)
			enc_norm = "TLS";
		else if (strcasecmp(enc, "none") == 0 || enc[0] == '\0')
			enc_norm = "none";
		if (!settings_dns_name_valid(host)) {
			*detail_r = xasprintf("'%s': not a valid host name", host);
			ret = -1;
		} else if (settings_parse_digits(port_text, strlen(port_text), &port) < 0 ||
			   port == 0 || port > 65535) {
			*detail_r =
			    xasprintf("'%s': port must be a number from 1 to 65535", port_text);
			ret = -1;
		} else if (enc_norm == NULL) {
			*detail_r = xasprintf("'%s': encryption must be SSL, TLS or none", enc);
			ret = -1;
		} else {
			/* host names are case-insensitive: keep them lower case */
			settings_lower(item);
			char *norm = xasprintf("%s:%llu:%s", host, port, enc_norm);
			settings_list_append(out, norm);
			free(norm);
		}
	}
	settings_list_free(&items);
	return ret;
}

/* One network: "a.b.c.d[/n]" or "v6[/n]" (brackets allowed around v6).
 * Host bits beyond the prefix are refused: they are almost always a typo. */
static int settings_check_network(const char *item, char **norm_r, char **detail_r)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *slash = strchr(item, '/');
	size_t hl = slash == NULL ? strlen(item) : (size_t)(slash - item);
	const char *h = item;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host)) {
		*detail_r = xasprintf("'%s': not an IP address", item);
		return -1;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	unsigned char bytes[16];
	int family, maxbits;
	if (inet_pton(AF_INET, host, bytes) == 1) {
		family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, bytes) == 1) {
		family = AF_INET6;
		maxbits = 128;
	} else {
		*detail_r = xasprintf("'%s': not an IP address", item);
		return -1;
	}
	unsigned long long bits = (unsigned long long)maxbits;
	if (slash != NULL && (settings_parse_digits(slash + 1, strlen(slash + 1), &bits) < 0 ||
			      bits > (unsigned long long)maxbits)) {
		*detail_r = xasprintf("'%s': prefix length must be 0 to %d", item, maxbits);
		return -1;
	}
	unsigned char net[16];
	memcpy(net, bytes, (size_t)maxbits / 8);
	for (int i = 0; i < maxbits / 8; i++) {
		int keep = (int)bits - i * 8;
		unsigned char mask = keep >= 8	 ? 0xff
				     : keep <= 0 ? 0
						 : (unsigned char)(0xff << (8 - keep));
		net[i] = bytes[i] & mask;
	}
	char text[INET6_ADDRSTRLEN];
	inet_ntop(family, net, text, sizeof(text));
	if (memcmp(net, bytes, (size_t)maxbits / 8) != 0) {
		*detail_r = xasprintf("'%s': address has bits set beyond the prefix (did you mean "
				      "%s/%llu?)",
				      item, text, bits);
		return -1;
	}
	*norm_r = xasprintf("%s/%llu", text, bits);
	return 0;
}

static int settings_check_networks(const char *value, char **out, char **detail_r)
{
	unsigned n;
	char **items = settings_list_split(value, &n);
	int ret = 0;
	for (unsigned i = 0; i < n && ret == 0; i++) {
		char *norm;
		ret = settings_check_network(items[i], &norm, detail_r);
		if (ret == 0) {
			settings_list_append(out, norm);
			free(norm);
		}
	}
	settings_list_free(&items);
	return ret;
}

static bool settings_socket_path_ok(const char *path)
{
	if (path[0] == '\0' || settings_has_control(path))
		return false;
	if (path[0] == '/' && strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return false;
	/* no ".." component anywhere */
	const char *p = path;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash == NULL ? strlen(p) : (size_t)(slash - p);
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return false;
		if (slash == NULL)
			return true;
		p = slash + 1;
	}
}

/* host[:port]: a DNS name, an IPv4 address or a bracketed IPv6 address,
 * normalised to lower case with the port only when given. */
static int settings_check_relay_host(const char *value, char **norm_r)
{
	char host[256];
	const char *port = NULL;
	if (value[0] == '[') {
		const char *close = strchr(value, ']');
		unsigned char bytes[16];
		if (close == NULL || (size_t)(close - value - 1) >= sizeof(host))
			return -1;
		memcpy(host, value + 1, (size_t)(close - value - 1));
		host[close - value - 1] = '\0';
		if (inet_pton(AF_INET6, host, bytes) != 1)
			return -1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return -1;
	} else {
		const char *colon = strchr(value, ':');
		size_t n = colon == NULL ? strlen(value) : (size_t)(colon - value);
		if (n == 0 || n >= sizeof(host))
			return -1;
		memcpy(host, value, n);
		host[n] = '\0';
		unsigned char bytes[4];
		if (inet_pton(AF_INET, host, bytes) != 1 && !settings_dns_name_valid(host))
			return -1;
		if (colon != NULL)
			port = colon + 1;
	}
	unsigned long long p = 0;
	if (port != NULL &&
	    (settings_parse_digits(port, strlen(port), &p) < 0 || p == 0 || p > 65535))
		return -1;
	settings_lower(host);
	bool v6 = value[0] == '[';
	if (port != NULL)
		*norm_r = xasprintf("%s%s%s:%llu", v6 ? "[" : "", host, v6 ? "]" : "", p);
	else
		*norm_r = xasprintf("%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "");
	return 0;
}

static int settings_check_domains(const char *value, char **out, char **detail_r)
{
	unsigned n;
	char **items = settings_list_split(value, &n);
	int ret = 0;
	for (unsigned i = 0; i < n && ret == 0; i++) {
		settings_lower(items[i]);
		if (!settings_dns_name_valid(items[i])) {
			*detail_r = xasprintf("'%s': not a valid DNS name", items[i]);
			ret = -1;
		} else if (settings_list_contains(*out, items[i])) {
			*detail_r = xasprintf("'%s' is listed twice", items[i]);
			ret = -1;
		} else {
			settings_list_append(out, items[i]);
		}
	}
	settings_list_free(&items);
	return ret;
}

/* Validate value (already trimmed) for def; 0 with *norm_r or -1 with an
 * optional *detail_r. */
static int settings_check(const struct settings_def *def, int svc, const char *value, char **norm_r,
			  char **detail_r)
{
	*detail_r = NULL;
	switch (def->type) {
	case ST_CHOICE: {
		char folded[64], choice[64];
		settings_fold(value, folded, sizeof(folded));
		for (size_t i = 0; def->choices[i] != NULL; i++) {
			settings_fold(def->choices[i], choice, sizeof(choice));
			if (strlen(value) < sizeof(folded) && strcmp(folded, choice) == 0) {
				*norm_r = xstrdup(def->choices[i]);
				return 0;
			}
		}
		return -1;
	}
	case ST_NUMBER: {
		unsigned long long n;
		if (settings_parse_digits(value, strlen(value), &n) < 0 ||
		    n < (unsigned long long)def->min || n > (unsigned long long)def->max)
			return -1;
		*norm_r = xasprintf("%llu", n);
		return 0;
	}
	case ST_SECONDS: {
		unsigned s;
		if (settings_parse_seconds(value, &s) < 0 || s < def->min || s > def->max)
			return -1;
		*norm_r = xasprintf("%u", s);
		return 0;
	}
	case ST_COUNT: {
		unsigned long long n;
		if (settings_parse_count(value, &n) < 0)
			return -1;
		if (n == 0 && strcasecmp(value, "unlimited") != 0)
			return -1;
		if (n == 0) {
			*norm_r = xstrdup("unlimited");
			return 0;
		}
		if (n < (unsigned long long)def->min || n > (unsigned long long)def->max)
			return -1;
		*norm_r = xasprintf("%llu", n);
		return 0;
	}
	case ST_BOOL: {
		bool b;
		if (settings_parse_bool(value, &b) < 0)
			return -1;
		*norm_r = xstrdup(b ? "true" : "false");
		return 0;
	}
	case ST_BINDINGS:
	case ST_CONNECTIONS:
	case ST_NETWORKS: {
		char *out = xstrdup("");
		int ret = def->type == ST_BINDINGS
			      ? settings_check_bindings(svc, value, &out, detail_r)
			  : def->type == ST_CONNECTIONS
			      ? settings_check_connections(value, &out, detail_r)
			      : settings_check_networks(value, &out, detail_r);
		if (ret < 0) {
			free(out);
			return -1;
		}
		*norm_r = out;
		return 0;
	}
	case ST_CERT_NAME: {
		if (value[0] == '\0') {
			*norm_r = xstrdup("");
			return 0;
		}
		const char *name = strncmp(value, "*.", 2) == 0 ? value + 2 : value;
		if (!settings_dns_name_valid(name))
			return -1;
		char *norm = xstrdup(value);
		settings_lower(norm);
		*norm_r = norm;
		return 0;
	}
	case ST_OPT_PATH:
	case ST_PATH:
		if (value[0] == '\0' && def->type == ST_OPT_PATH) {
			*norm_r = xstrdup("");
			return 0;
		}
		if (value[0] == '\0' || strlen(value) > 4096 || settings_has_control(value))
			return -1;
		*norm_r = xstrdup(value);
		return 0;
	case ST_RELAY_HOST:
		if (value[0] == '\0') {
			*norm_r = xstrdup("");
			return 0;
		}
		return settings_check_relay_host(value, norm_r);
	case ST_RESOLVERS: {
		unsigned n;
		char **items = settings_list_split(value, &n);
		char *out = xstrdup("");
		int ret = 0;
		for (unsigned i = 0; i < n && ret == 0; i++) {
			char *one = NULL;
			unsigned char bytes[16];
			char host[64];
			snprintf(host, sizeof(host), "%s", items[i]);
			host[strcspn(host, ":")] = '\0';
			if (settings_check_relay_host(items[i], &one) < 0 ||
			    (items[i][0] != '[' && inet_pton(AF_INET, host, bytes) != 1)) {
				*detail_r = xasprintf("'%s': not an IP address with an optional "
						      "port",
						      items[i]);
				ret = -1;
			} else if (settings_list_contains(out, one)) {
				*detail_r = xasprintf("'%s' is listed twice", one);
				ret = -1;
			} else {
				settings_list_append(&out, one);
			}
			free(one);
		}
		settings_list_free(&items);
		if (ret < 0) {
			free(out);
			return -1;
		}
		*norm_r = out;
		return 0;
	}
	case ST_DOMAINS: {
		char *out = xstrdup("");
		if (settings_check_domains(value, &out, detail_r) < 0) {
			free(out);
			return -1;
		}
		*norm_r = out;
		return 0;
	}
	case ST_SOCKET_PATH:
		if (!settings_socket_path_ok(value))
			return -1;
		*norm_r = xstrdup(value);
		return 0;
	case ST_TEXT:
		if (value[0] == '\0' || strlen(value) > (size_t)def->max)
			return -1;
		for (const char *p = value; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				return -1;
		*norm_r = xstrdup(value);
		return 0;
	}
	return -1;
}

int settings_validate(const char *service, const char *key, const char *value, char **normalised_r,
		      char **error_r)
{
	*normalised_r = NULL;
	int svc = settings_service_id(service);
	if (svc < 0) {
		char *q = settings_quote(service == NULL ? "" : service);
		*error_r = xasprintf("unknown service '%s' (services: imap4, imap4-backend, pop3, "
				     "pop3-backend, submission, lmtp, http)",
				     q);
		free(q);
		return -1;
	}
	const struct settings_def *def = settings_find(svc, key);
	if (def == NULL) {
		char *q = settings_quote(key == NULL ? "" : key);
		*error_r = xasprintf("%s: unknown setting '%s' (see 'posternctl settings get %s' "
				     "for the keys)",
				     service, q, service);
		free(q);
		return -1;
	}
	/* blanks around the value are not part of it */
	while (*value == ' ' || *value == '\t')
		value++;
	size_t len = strlen(value);
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	char *trimmed = xstrndup(value, len);
	char *detail = NULL;
	int ret = settings_check(def, svc, trimmed, normalised_r, &detail);
	if (ret < 0) {
		char *form = settings_accepted_form(def, svc);
		char *q = settings_quote(trimmed);
		if (detail != NULL)
			*error_r = xasprintf("%s: %s: %s; must be %s (got '%s')", service, key,
					     detail, form, q);
		else
			*error_r =
			    xasprintf("%s: %s: must be %s (got '%s')", service, key, form, q);
		free(q);
		free(form);
		free(detail);
		*normalised_r = NULL;
	}
	free(trimmed);
	return ret;
}
