#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/settings.h"

/* value must be accepted and normalised to expected */
static void accept(const char *service, const char *key, const char *value, const char *expected)
{
	char *norm = NULL, *error = NULL;
	int ret = settings_validate(service, key, value, &norm, &error);
	if (ret != 0)
		fail_msg("%s %s='%s' refused: %s", service, key, value, error);
	assert_non_null(norm);
	if (strcmp(norm, expected) != 0)
		fail_msg("%s %s='%s' normalised to '%s', expected '%s'", service, key, value, norm,
			 expected);
	free(norm);
}

/* value must be refused with an error that names the service, the key and
 * contains want (when not NULL) */
static void refuse(const char *service, const char *key, const char *value, const char *want)
{
	char *norm = NULL, *error = NULL;
	int ret = settings_validate(service, key, value, &norm, &error);
	if (ret != -1)
		fail_msg("%s %s='%s' accepted as '%s'", service, key, value, norm);
	assert_null(norm);
	assert_non_null(error);
	if (settings_service_known(service) && settings_key_known(service, key)) {
		char prefix[128];
		snprintf(prefix, sizeof(prefix), "%s: %s: ", service, key);
		if (strncmp(error, prefix, strlen(prefix)) != 0)
			fail_msg("error '%s' does not start with '%s'", error, prefix);
	}
	if (want != NULL && strstr(error, want) == NULL)
		fail_msg("error '%s' lacks '%s'", error, want);
	free(error);
}

static void test_services(void **state)
{
	(void)state;
	const char *expected[] = {"imap4",	"imap4-backend", "pop3", "pop3-backend",
				  "submission", "lmtp",		 "http"};
	size_t n = 0;
	for (; settings_services[n] != NULL; n++)
		assert_string_equal(settings_services[n], expected[n]);
	assert_int_equal(n, 7);
	assert_true(settings_service_known("pop3"));
	assert_false(settings_service_known("POP3"));
	assert_false(settings_service_known("smtp"));
	assert_false(settings_service_known(""));
	refuse("smtp", "workers", "1", "unknown service 'smtp'");
	refuse("pop3", "no-such-key", "1", "pop3: unknown setting 'no-such-key'");
	/* a key of another service is unknown here */
	refuse("http", "banner", "hello", "unknown setting");
	refuse("imap4", "session-timeout", "60", "unknown setting");
	refuse("lmtp", "ssl-bindings", "[::]:24", "unknown setting");
	refuse("imap4", "unix-socket", "x.sock", "unknown setting");
}

static void count_key(void *ctx, const char *key, const char *help)
{
	assert_non_null(key);
	assert_non_null(help);
	(*(int *)ctx)++;
}

static void test_defaults(void **state)
{
	(void)state;
	assert_string_equal(settings_default("pop3", "startup"), "manual");
	assert_string_equal(settings_default("pop3-backend", "startup"), "manual");
	assert_string_equal(settings_default("imap4", "startup"), "manual");
	assert_string_equal(settings_default("imap4-backend", "startup"), "manual");
	assert_string_equal(settings_default("submission", "startup"), "automatic");
	assert_string_equal(settings_default("lmtp", "startup"), "automatic");
	assert_string_equal(settings_default("http", "startup"), "automatic");
	assert_string_equal(settings_default("imap4", "ssl-bindings"), "[::]:993, 0.0.0.0:993");
	assert_string_equal(settings_default("imap4", "unencrypted-or-tls-bindings"),
			    "[::]:143, 0.0.0.0:143");
	assert_string_equal(settings_default("pop3", "ssl-bindings"), "[::]:995, 0.0.0.0:995");
	assert_string_equal(settings_default("pop3", "unencrypted-or-tls-bindings"),
			    "[::]:110, 0.0.0.0:110");
	assert_string_equal(settings_default("imap4-backend", "ssl-bindings"),
			    "[::]:1993, 0.0.0.0:1993");
	assert_string_equal(settings_default("pop3-backend", "unencrypted-or-tls-bindings"),
			    "[::]:1110, 0.0.0.0:1110");
	assert_string_equal(settings_default("submission", "ssl-bindings"),
			    "[::]:465, 0.0.0.0:465");
	assert_string_equal(settings_default("submission", "unencrypted-or-tls-bindings"),
			    "[::]:587, 0.0.0.0:587");
	assert_string_equal(settings_default("http", "unencrypted-or-tls-bindings"),
			    "[::]:8080, 0.0.0.0:8080");
	assert_string_equal(settings_default("lmtp", "unencrypted-or-tls-bindings"), "");
	assert_string_equal(settings_default("lmtp", "unix-socket"), "lmtp.sock");
	assert_string_equal(settings_default("imap4", "max-command-size"), "10240");
	assert_string_equal(settings_default("pop3", "max-command-size"), "512");
	assert_string_equal(settings_default("submission", "max-command-size"), "4096");
	assert_string_equal(settings_default("imap4", "login-type"), "secure-login");
	assert_string_equal(settings_default("pop3", "max-connections"), "unlimited");
	assert_string_equal(settings_default("pop3", "max-connections-per-user"), "16");
	assert_string_equal(settings_default("pop3", "max-connections-from-single-ip"),
			    "unlimited");
	assert_string_equal(settings_default("pop3", "pre-authenticated-connection-timeout"), "60");
	assert_string_equal(settings_default("pop3", "authenticated-connection-timeout"), "1800");
	assert_string_equal(settings_default("pop3", "protocol-log-enabled"), "false");
	assert_string_equal(settings_default("pop3", "banner"), "postern POP3 service ready.");
	assert_string_equal(settings_default("imap4", "banner"), "postern IMAP4 service ready.");
	assert_string_equal(settings_default("imap4", "certificate-file"), "tls/server.crt");
	assert_string_equal(settings_default("imap4", "certificate-key-file"), "tls/server.key");
	assert_string_equal(settings_default("imap4", "authentication-failure-delay"), "2");
	assert_string_equal(settings_default("imap4", "external-connection-settings"), "");
	assert_null(settings_default("imap4", "nope"));
	assert_null(settings_default("nope", "workers"));
	assert_null(settings_default("imap4-backend", "login-type"));

	/* every default of every service validates to itself */
	for (size_t i = 0; settings_services[i] != NULL; i++) {
		int n = 0;
		settings_foreach_key(settings_services[i], count_key, &n);
		assert_true(n > 5);
	}
	static const char *const keys[] = {"startup",
					   "workers",
					   "ssl-bindings",
					   "unencrypted-or-tls-bindings",
					   "unix-socket",
					   "external-connection-settings",
					   "internal-connection-settings",
					   "x509-certificate-name",
					   "certificate-file",
					   "certificate-key-file",
					   "login-type",
					   "max-connections",
					   "max-connections-per-user",
					   "max-connections-from-single-ip",
					   "pre-authenticated-connection-timeout",
					   "authenticated-connection-timeout",
					   "max-command-size",
					   "max-message-size",
					   "banner",
					   "protocol-log-enabled",
					   "proxy-protocol-trusted",
					   "trusted-networks",
					   "authentication-failure-delay",
					   NULL};
	for (size_t i = 0; settings_services[i] != NULL; i++) {
		for (size_t k = 0; keys[k] != NULL; k++) {
			const char *def = settings_default(settings_services[i], keys[k]);
			if (def == NULL) {
				assert_false(settings_key_known(settings_services[i], keys[k]));
				continue;
			}
			assert_non_null(settings_help(settings_services[i], keys[k]));
			accept(settings_services[i], keys[k], def, def);
		}
	}
}

struct order_ctx {
	int n;
	const char *first, *last;
};

static void order_cb(void *ctx, const char *key, const char *help)
{
	struct order_ctx *o = ctx;
	if (o->n++ == 0)
		o->first = key;
	o->last = key;
}

static void test_foreach(void **state)
{
	(void)state;
	struct order_ctx o = {0};
	settings_foreach_key("pop3", order_cb, &o);
	assert_string_equal(o.first, "startup");
	assert_string_equal(o.last, "sasl-scram-sha-256");
	assert_int_equal(o.n, 22);
	o = (struct order_ctx){0};
	settings_foreach_key("lmtp", order_cb, &o);
	assert_int_equal(o.n, 12);
	o = (struct order_ctx){0};
	settings_foreach_key("unknown", order_cb, &o);
	assert_int_equal(o.n, 0);
}

static void test_choice(void **state)
{
	(void)state;
	accept("pop3", "startup", "automatic", "automatic");
	accept("pop3", "startup", "Manual", "manual");
	accept("pop3", "startup", " DISABLED ", "disabled");
	refuse("pop3", "startup", "auto",
	       "must be one of automatic, manual or disabled (got 'auto')");
	refuse("pop3", "startup", "", "got ''");
	accept("imap4", "login-type", "secure-login", "secure-login");
	accept("imap4", "login-type", "SecureLogin", "secure-login");
	accept("imap4", "login-type", "PlainTextLogin", "plain-text-login");
	accept("imap4", "login-type", "plain_text_authentication", "plain-text-authentication");
	refuse("pop3", "login-type", "foo",
	       "pop3: login-type: must be one of plain-text-login, plain-text-authentication or "
	       "secure-login (got 'foo')");
	refuse("pop3", "login-type",
	       "secure-login-plus-a-very-long-tail-that-does-not-fit-anywhere", NULL);
}

static void test_number(void **state)
{
	(void)state;
	accept("pop3", "max-command-size", "40", "40");
	accept("pop3", "max-command-size", "1024", "1024");
	accept("pop3", "max-command-size", "0512", "512");
	refuse("pop3", "max-command-size", "39", "must be a number from 40 to 1024 (got '39')");
	refuse("pop3", "max-command-size", "1025", NULL);
	refuse("pop3", "max-command-size", "5", NULL);
	refuse("pop3", "max-command-size", "abc",
	       "pop3: max-command-size: must be a number from 40 to 1024 (got 'abc')");
	refuse("pop3", "max-command-size", "-1", NULL);
	refuse("pop3", "max-command-size", "1e3", NULL);
	refuse("pop3", "max-command-size", "99999999999999999999999", NULL);
	refuse("pop3", "max-command-size", "", NULL);
	accept("imap4", "max-command-size", "1024", "1024");
	accept("imap4", "max-command-size", "16384", "16384");
	refuse("imap4", "max-command-size", "1023", "from 1024 to 16384");
	refuse("imap4", "max-command-size", "16385", NULL);
	accept("submission", "max-command-size", "512", "512");
	refuse("lmtp", "max-command-size", "511", "from 512 to 16384");
	/* max-message-size: lmtp and submission only, 1 KiB to 2 GiB */
	assert_string_equal(settings_default("lmtp", "max-message-size"), "36700160");
	assert_string_equal(settings_default("submission", "max-message-size"), "36700160");
	assert_null(settings_default("imap4", "max-message-size"));
	assert_string_equal(settings_default("lmtp", "pre-authenticated-connection-timeout"), "300");
	accept("lmtp", "max-message-size", "1024", "1024");
	accept("lmtp", "max-message-size", "2147483648", "2147483648");
	accept("submission", "max-message-size", "52428800", "52428800");
	refuse("lmtp", "max-message-size", "1023", "from 1024 to 2147483648");
	refuse("lmtp", "max-message-size", "2147483649", NULL);
	refuse("lmtp", "max-message-size", "35M", NULL);
	refuse("pop3", "max-message-size", "1024", "unknown setting");
	/* submission: recipients, local domains, the smarthost and the queue */
	assert_string_equal(settings_default("submission", "max-recipients"), "100");
	accept("submission", "max-recipients", "1", "1");
	refuse("submission", "max-recipients", "0", "from 1 to 10000");
	refuse("lmtp", "max-recipients", "5", "unknown setting");
	accept("submission", "local-domains", "Example.COM, example.org", "example.com, example.org");
	accept("submission", "local-domains", "", "");
	refuse("submission", "local-domains", "a..b", "not a valid DNS name");
	refuse("submission", "local-domains", "a.b, A.b", "listed twice");
	assert_string_equal(settings_default("submission", "smarthost"), "");
	accept("submission", "smarthost", "Relay.Example.com:587", "relay.example.com:587");
	accept("submission", "smarthost", "127.0.0.1:2525", "127.0.0.1:2525");
	accept("submission", "smarthost", "[::1]:25", "[::1]:25");
	accept("submission", "smarthost", "relay.example.com", "relay.example.com");
	accept("submission", "smarthost", "", "");
	refuse("submission", "smarthost", "relay:0", NULL);
	refuse("submission", "smarthost", "relay:65536", NULL);
	refuse("submission", "smarthost", "[nonsense]:25", NULL);
	refuse("submission", "smarthost", "bad_host:25", "host[:port]");
	accept("submission", "smarthost-tls", "Required", "required");
	refuse("submission", "smarthost-tls", "maybe", NULL);
	accept("submission", "smarthost-auth-file", "", "");
	accept("submission", "smarthost-auth-file", "relay.auth", "relay.auth");
	assert_string_equal(settings_default("submission", "queue-lifetime"), "432000");
	accept("submission", "queue-lifetime", "1h", "3600");
	refuse("submission", "queue-lifetime", "30", NULL);
	accept("submission", "queue-retry-interval", "1", "1");
	accept("submission", "queue-max-retry-interval", "24h", "86400");
	refuse("submission", "queue-retry-interval", "0", NULL);
	accept("http", "login-type", "PlainTextLogin", "plain-text-login");
	accept("http", "session-timeout", "5m", "300");
	refuse("http", "session-timeout", "59", NULL);
	accept("http", "session-lifetime", "8h", "28800");
	accept("http", "keep-alive-timeout", "15", "15");
	refuse("http", "keep-alive-timeout", "301", NULL);
	accept("http", "workers", "1", "1");
	accept("http", "workers", "64", "64");
	refuse("http", "workers", "0", "from 1 to 64");
	refuse("http", "workers", "65", NULL);
	refuse("http", "workers", "4 4", NULL);
}

static void test_seconds(void **state)
{
	(void)state;
	unsigned s;
	assert_int_equal(settings_parse_seconds("60", &s), 0);
	assert_int_equal(s, 60);
	assert_int_equal(settings_parse_seconds("60s", &s), 0);
	assert_int_equal(s, 60);
	assert_int_equal(settings_parse_seconds("5m", &s), 0);
	assert_int_equal(s, 300);
	assert_int_equal(settings_parse_seconds("1h", &s), 0);
	assert_int_equal(s, 3600);
	assert_int_equal(settings_parse_seconds("00:01:00", &s), 0);
	assert_int_equal(s, 60);
	assert_int_equal(settings_parse_seconds("1:00:30", &s), 0);
	assert_int_equal(s, 3630);
	assert_int_equal(settings_parse_seconds("0", &s), 0);
	assert_int_equal(s, 0);
	assert_int_equal(settings_parse_seconds("", &s), -1);
	assert_int_equal(settings_parse_seconds("s", &s), -1);
	assert_int_equal(settings_parse_seconds("5x", &s), -1);
	assert_int_equal(settings_parse_seconds("5 m", &s), -1);
	assert_int_equal(settings_parse_seconds("-5", &s), -1);
	assert_int_equal(settings_parse_seconds("00:60:00", &s), -1);
	assert_int_equal(settings_parse_seconds("00:00:60", &s), -1);
	assert_int_equal(settings_parse_seconds("00:1:00", &s), -1);
	assert_int_equal(settings_parse_seconds("1:00", &s), -1);
	assert_int_equal(settings_parse_seconds("::", &s), -1);
	assert_int_equal(settings_parse_seconds("1:00:00:00", &s), -1);
	assert_int_equal(settings_parse_seconds("9999999999h", &s), -1);

	accept("pop3", "pre-authenticated-connection-timeout", "30", "30");
	accept("pop3", "pre-authenticated-connection-timeout", "1h", "3600");
	accept("pop3", "pre-authenticated-connection-timeout", "00:01:00", "60");
	accept("pop3", "authenticated-connection-timeout", "30m", "1800");
	refuse("pop3", "pre-authenticated-connection-timeout", "29",
	       "must be a duration from 30 seconds to 1 hour");
	refuse("pop3", "pre-authenticated-connection-timeout", "3601", NULL);
	refuse("pop3", "authenticated-connection-timeout", "61m", NULL);
	refuse("pop3", "authenticated-connection-timeout", "soon", "(got 'soon')");
	accept("imap4", "authentication-failure-delay", "0", "0");
	accept("imap4", "authentication-failure-delay", "10s", "10");
	refuse("imap4", "authentication-failure-delay", "11", "from 0 seconds to 10 seconds");
}

static void test_count(void **state)
{
	(void)state;
	unsigned long long n;
	assert_int_equal(settings_parse_count("unlimited", &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(settings_parse_count("Unlimited", &n), 0);
	assert_int_equal(settings_parse_count("16", &n), 0);
	assert_int_equal(n, 16);
	assert_int_equal(settings_parse_count("", &n), -1);
	assert_int_equal(settings_parse_count("x", &n), -1);
	assert_int_equal(settings_parse_count("-1", &n), -1);

	accept("imap4", "max-connections", "unlimited", "unlimited");
	accept("imap4", "max-connections", "UNLIMITED", "unlimited");
	accept("imap4", "max-connections", "1", "1");
	accept("imap4", "max-connections", "1000000", "1000000");
	refuse("imap4", "max-connections", "0", "a number from 1 to 1000000 or 'unlimited'");
	refuse("imap4", "max-connections", "1000001", NULL);
	refuse("imap4", "max-connections-per-user", "none", NULL);
	refuse("imap4", "max-connections-from-single-ip", "-3", NULL);
}

static void test_bool(void **state)
{
	(void)state;
	bool b;
	assert_int_equal(settings_parse_bool("true", &b), 0);
	assert_true(b);
	assert_int_equal(settings_parse_bool("OFF", &b), 0);
	assert_false(b);
	assert_int_equal(settings_parse_bool("maybe", &b), -1);
	assert_int_equal(settings_parse_bool("", &b), -1);
	accept("pop3", "protocol-log-enabled", "yes", "true");
	accept("pop3", "protocol-log-enabled", "On", "true");
	accept("pop3", "protocol-log-enabled", "1", "true");
	accept("pop3", "protocol-log-enabled", "FALSE", "false");
	accept("pop3", "protocol-log-enabled", "0", "false");
	refuse("pop3", "protocol-log-enabled", "2", "must be true or false (got '2')");
	refuse("pop3", "protocol-log-enabled", "", NULL);
}

static void test_bindings(void **state)
{
	(void)state;
	accept("imap4", "ssl-bindings", "[::]:993, 0.0.0.0:993", "[::]:993, 0.0.0.0:993");
	accept("imap4", "ssl-bindings", "127.0.0.1:10993", "127.0.0.1:10993");
	accept("imap4", "ssl-bindings", "[::1]:993,127.0.0.1:993", "[::1]:993, 127.0.0.1:993");
	accept("imap4", "ssl-bindings", "[0::0]:993", "[::]:993");
	accept("imap4", "ssl-bindings", "", "");
	accept("imap4", "unencrypted-or-tls-bindings", "  ", "");
	refuse("imap4", "ssl-bindings", "1.2.3.4", "imap4: ssl-bindings: '1.2.3.4': expected");
	refuse("imap4", "ssl-bindings", "1.2.3.4:0", "port must be");
	refuse("imap4", "ssl-bindings", "1.2.3.4:65536", NULL);
	refuse("imap4", "ssl-bindings", "1.2.3.256:993", "bad IPv4");
	refuse("imap4", "ssl-bindings", "::1:993", NULL);
	refuse("imap4", "ssl-bindings", "[::1]993", NULL);
	refuse("imap4", "ssl-bindings", "mail.example.com:993", NULL);
	refuse("imap4", "ssl-bindings", "0.0.0.0:993, 0.0.0.0:993", "listed twice");
	refuse("imap4", "ssl-bindings", "unix:/run/imap.sock", "back ends only");
	accept("imap4-backend", "unencrypted-or-tls-bindings", "unix:/run/postern/imap.sock",
	       "unix:/run/postern/imap.sock");
	refuse("imap4-backend", "unencrypted-or-tls-bindings", "unix:relative.sock", "absolute");
	accept("lmtp", "unencrypted-or-tls-bindings", "127.0.0.1:24", "127.0.0.1:24");
	accept("pop3-backend", "ssl-bindings", "[::1]:1995", "[::1]:1995");
}

static void test_connections(void **state)
{
	(void)state;
	accept("imap4", "external-connection-settings", "", "");
	accept("imap4", "external-connection-settings", "Mail.Example.COM:993:ssl",
	       "mail.example.com:993:SSL");
	accept("imap4", "internal-connection-settings", "mx:993:SSL, mx:143:tls",
	       "mx:993:SSL, mx:143:TLS");
	accept("pop3", "external-connection-settings", "pop.example.com:110:None",
	       "pop.example.com:110:none");
	accept("pop3", "external-connection-settings", "pop.example.com:110",
	       "pop.example.com:110:none");
	accept("pop3", "external-connection-settings",
	       "pop.example.com:110:", "pop.example.com:110:none");
	refuse("pop3", "external-connection-settings", "pop.example.com",
	       "expected host:port:SSL|TLS|none");
	refuse("pop3", "external-connection-settings", "pop.example.com:0:SSL", "port must be");
	refuse("pop3", "external-connection-settings", "pop.example.com:65536:SSL", NULL);
	refuse("pop3", "external-connection-settings", "pop.example.com:995:STARTTLS",
	       "encryption must be SSL, TLS or none");
	refuse("pop3", "external-connection-settings", "-bad.example:995:SSL", "not a valid host");
	refuse("pop3", "external-connection-settings", "a..b:995:SSL", NULL);
	refuse("pop3", "external-connection-settings", "a_b:995:SSL", NULL);
	refuse("pop3", "external-connection-settings", "a:1:SSL:x", NULL);
	refuse("pop3", "external-connection-settings", ":995:SSL", NULL);
}

static void test_names_paths_text(void **state)
{
	(void)state;
	assert_true(settings_dns_name_valid("localhost"));
	assert_true(settings_dns_name_valid("a-b.example.com"));
	assert_true(settings_dns_name_valid("1.2.3.4"));
	assert_false(settings_dns_name_valid(""));
	assert_false(settings_dns_name_valid("a."));
	assert_false(settings_dns_name_valid(".a"));
	assert_false(settings_dns_name_valid("a-.b"));
	assert_false(settings_dns_name_valid("a b"));
	char label[70];
	memset(label, 'a', 63);
	label[63] = '\0';
	assert_true(settings_dns_name_valid(label));
	memset(label, 'a', 64);
	label[64] = '\0';
	assert_false(settings_dns_name_valid(label));

	accept("imap4", "x509-certificate-name", "", "");
	accept("imap4", "x509-certificate-name", "Mail.Example.com", "mail.example.com");
	accept("imap4", "x509-certificate-name", "*.example.com", "*.example.com");
	refuse("imap4", "x509-certificate-name", "mail example", "must be a DNS host name");
	refuse("imap4", "x509-certificate-name", "a.*.example", NULL);

	accept("imap4", "certificate-file", "/etc/ssl/mail.pem", "/etc/ssl/mail.pem");
	accept("imap4", "certificate-key-file", "tls/other.key", "tls/other.key");
	refuse("imap4", "certificate-file", "", "a file path");
	refuse("imap4", "certificate-file", "a\nb", "got 'a\\x0ab'");

	accept("lmtp", "unix-socket", "lmtp.sock", "lmtp.sock");
	accept("lmtp", "unix-socket", "/run/postern/lmtp.sock", "/run/postern/lmtp.sock");
	accept("lmtp", "unix-socket", "sock/..x", "sock/..x");
	refuse("lmtp", "unix-socket", "../lmtp.sock", "'..'");
	refuse("lmtp", "unix-socket", "a/../b", NULL);
	refuse("lmtp", "unix-socket", "a/..", NULL);
	refuse("lmtp", "unix-socket", "", NULL);
	refuse("lmtp", "unix-socket", "a\tb", NULL);
	char longpath[200] = "/";
	memset(longpath + 1, 'x', 120);
	longpath[121] = '\0';
	refuse("lmtp", "unix-socket", longpath, "at most 107");

	accept("pop3", "banner", "Hello there.", "Hello there.");
	accept("pop3", "banner", "  padded  ", "padded");
	refuse("pop3", "banner", "", "1 to 200 printable ASCII");
	refuse("pop3", "banner", "line\r\nbreak", NULL);
	refuse("pop3", "banner", "caf\xc3\xa9", "got 'caf\\xc3\\xa9'");
	char banner[260];
	memset(banner, 'b', 200);
	banner[200] = '\0';
	accept("pop3", "banner", banner, banner);
	banner[200] = 'b';
	banner[201] = '\0';
	refuse("pop3", "banner", banner, "...");
}

static void test_networks(void **state)
{
	(void)state;
	accept("imap4", "trusted-networks", "", "");
	accept("imap4", "trusted-networks", "10.0.0.0/8", "10.0.0.0/8");
	accept("imap4", "trusted-networks", "192.0.2.7", "192.0.2.7/32");
	accept("imap4", "trusted-networks", "fd00::/8, ::1", "fd00::/8, ::1/128");
	accept("imap4", "trusted-networks", "[2001:db8::]/32", "2001:db8::/32");
	accept("imap4", "proxy-protocol-trusted", "0.0.0.0/0", "0.0.0.0/0");
	accept("imap4", "proxy-protocol-trusted", "10.1.2.0/23", "10.1.2.0/23");
	refuse("imap4", "proxy-protocol-trusted", "10.1.3.0/23", "did you mean 10.1.2.0/23?");
	refuse("imap4", "trusted-networks", "10.0.0.1/8", "did you mean 10.0.0.0/8?");
	refuse("imap4", "trusted-networks", "10.0.0.0/33", "prefix length must be 0 to 32");
	refuse("imap4", "trusted-networks", "::/129", "0 to 128");
	refuse("imap4", "trusted-networks", "10.0.0.0/", NULL);
	refuse("imap4", "trusted-networks", "example.com", "not an IP address");
	refuse("imap4", "trusted-networks", "/8", NULL);
}

static void test_list_split(void **state)
{
	(void)state;
	unsigned n;
	char **l = settings_list_split("a, b,c", &n);
	assert_int_equal(n, 3);
	assert_string_equal(l[0], "a");
	assert_string_equal(l[2], "c");
	assert_null(l[3]);
	settings_list_free(&l);
	assert_null(l);
	l = settings_list_split("", &n);
	assert_int_equal(n, 0);
	assert_null(l[0]);
	settings_list_free(&l);
	settings_list_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_services),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_foreach),
	    cmocka_unit_test(test_choice),
	    cmocka_unit_test(test_number),
	    cmocka_unit_test(test_seconds),
	    cmocka_unit_test(test_count),
	    cmocka_unit_test(test_bool),
	    cmocka_unit_test(test_bindings),
	    cmocka_unit_test(test_connections),
	    cmocka_unit_test(test_names_paths_text),
	    cmocka_unit_test(test_networks),
	    cmocka_unit_test(test_list_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
