#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/metrics.h"

static char *render(void)
{
	struct evbuffer *b = evbuffer_new();
	assert_int_equal(metrics_render_prometheus(b), 0);
	size_t n = evbuffer_get_length(b);
	char *text = malloc(n + 1);
	evbuffer_remove(b, text, n);
	text[n] = '\0';
	evbuffer_free(b);
	return text;
}

/* The value of the sample whose name and labels are exactly series
 * ("name{a=\"b\"}"), or NULL. */
static const char *value_of(const char *text, const char *series, char *buf, size_t size)
{
	size_t n = strlen(series);
	for (const char *line = text; *line != '\0';) {
		const char *end = strchr(line, '\n');
		size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
		if (len > n && strncmp(line, series, n) == 0 && line[n] == ' ') {
			snprintf(buf, size, "%.*s", (int)(len - n - 1), line + n + 1);
			return buf;
		}
		line += len + (end != NULL);
	}
	return NULL;
}

static void assert_value(const char *text, const char *series, const char *want)
{
	char buf[64];
	const char *got = value_of(text, series, buf, sizeof(buf));
	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("%s: want %s, got %s", series, want, got != NULL ? got : "(missing)");
}

static void fresh_region(const char *service, unsigned slot)
{
	metrics_detach();
	char *error = NULL;
	int fd = metrics_create(&error);
	assert_true(fd >= 0);
	if (service != NULL)
		assert_int_equal(metrics_attach(fd, service, slot, &error), 0);
	close(fd);
}

/* Every line is a HELP, a TYPE or a sample of a family typed before it,
 * in the 0.0.4 text format's syntax. */
static void check_exposition(const char *text)
{
	regex_t sample, help, type;
	assert_int_equal(regcomp(&sample,
				 "^([a-zA-Z_:][a-zA-Z0-9_:]*)"
				 "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
				 "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\")*\\})?"
				 " (-?[0-9]+(\\.[0-9]+)?|\\+Inf)$",
				 REG_EXTENDED),
			 0);
	assert_int_equal(regcomp(&help, "^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) [^\n]+$", REG_EXTENDED),
			 0);
	assert_int_equal(regcomp(&type,
				 "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$",
				 REG_EXTENDED),
			 0);
	char family[128] = "";
	char kind[16] = "";
	size_t samples = 0;
	const char *line = text;
	assert_true(*text != '\0');
	assert_int_equal(text[strlen(text) - 1], '\n');
	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		assert_non_null(end);
		char l[1024];
		assert_true((size_t)(end - line) < sizeof(l));
		snprintf(l, sizeof(l), "%.*s", (int)(end - line), line);
		regmatch_t m[3];
		if (strncmp(l, "# HELP ", 7) == 0) {
			assert_int_equal(regexec(&help, l, 3, m, 0), 0);
		} else if (strncmp(l, "# TYPE ", 7) == 0) {
			assert_int_equal(regexec(&type, l, 3, m, 0), 0);
			snprintf(family, sizeof(family), "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
				 l + m[1].rm_so);
			snprintf(kind, sizeof(kind), "%.*s", (int)(m[2].rm_eo - m[2].rm_so),
				 l + m[2].rm_so);
		} else {
			if (regexec(&sample, l, 3, m, 0) != 0)
				fail_msg("malformed line: %s", l);
			char name[128];
			snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
				 l + m[1].rm_so);
			size_t fl = strlen(family);
			bool ok = strcmp(name, family) == 0;
			if (strcmp(kind, "histogram") == 0)
				ok = strncmp(name, family, fl) == 0 &&
				     (strcmp(name + fl, "_bucket") == 0 ||
				      strcmp(name + fl, "_sum") == 0 ||
				      strcmp(name + fl, "_count") == 0);
			if (!ok)
				fail_msg("sample %s outside its family %s", name, family);
			samples++;
		}
		line = end + 1;
	}
	assert_true(samples > 0);
	regfree(&sample);
	regfree(&help);
	regfree(&type);
}

static void test_command_tables_are_sorted_and_bounded(void **state)
{
	(void)state;
	for (int s = 0; s < METRICS_SVC_COUNT; s++) {
		const char *const *t = metrics_command_table((enum metrics_service)s);
		if (t == NULL)
			continue;
		assert_string_equal(t[0], "unknown");
		size_t n = 1;
		for (; t[n] != NULL; n++) {
			if (n > 1 && strcasecmp(t[n - 1], t[n]) >= 0)
				fail_msg("%s: %s before %s", metrics_service_name(s), t[n - 1],
					 t[n]);
		}
		assert_true(n <= METRICS_MAX_COMMANDS);
	}
}

static void test_empty_region_renders_every_family(void **state)
{
	(void)state;
	fresh_region(NULL, 0);
	char *text = render();
	check_exposition(text);
	static const char *const families[] = {
	    "postern_connections_open gauge",
	    "postern_connections_total counter",
	    "postern_logins_total counter",
	    "postern_auth_verdicts_total counter",
	    "postern_auth_tarpit_delays_total counter",
	    "postern_commands_total counter",
	    "postern_command_duration_seconds histogram",
	    "postern_deliveries_total counter",
	    "postern_queue_messages gauge",
	    "postern_queue_deliveries_total counter",
	    "postern_worker_restarts_total counter",
	};
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		char want[128];
		snprintf(want, sizeof(want), "# TYPE %s\n", families[i]);
		if (strstr(text, want) == NULL)
			fail_msg("missing %s", want);
	}
	assert_value(text, "postern_connections_open{service=\"imap4\"}", "0");
	assert_value(text, "postern_logins_total{service=\"pop3\",result=\"ok\",reason=\"none\"}",
		     "0");
	assert_value(text, "postern_queue_messages", "0");
	assert_value(text, "postern_worker_restarts_total{service=\"authd\"}", "0");
	/* no command was seen: no command series */
	assert_null(strstr(text, "postern_commands_total{"));
	/* authd has no connections of its own */
	assert_null(strstr(text, "postern_connections_total{service=\"authd\"}"));
	free(text);
}

static void test_label_values_are_escaped(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	assert_int_equal(metrics_escape_label_value(b, "a\"b\\c\nd"), 0);
	assert_int_equal(metrics_escape_label_value(b, ""), 0);
	assert_int_equal(metrics_escape_label_value(b, "plain"), 0);
	size_t n = evbuffer_get_length(b);
	char text[64];
	assert_true(n < sizeof(text));
	evbuffer_remove(b, text, n);
	text[n] = '\0';
	assert_string_equal(text, "a\\\"b\\\\c\\ndplain");
	evbuffer_free(b);
}

static void test_counters_of_a_service(void **state)
{
	(void)state;
	fresh_region("pop3", 2);
	metrics_connection_opened();
	metrics_connection_opened();
	metrics_connection_closed();
	metrics_login(METRICS_LOGIN_OK);
	metrics_login_authd_failure("fail", NULL);
	metrics_login_authd_failure("refused", "disabled");
	metrics_login_authd_failure("refused", "account-kind");
	metrics_login_authd_failure("refused", NULL);
	metrics_login_authd_failure("tempfail", NULL);
	metrics_login_authd_failure("ok", NULL);
	metrics_auth("submission", METRICS_AUTH_WRONG_PASSWORD, true);
	metrics_auth("no-such-service", METRICS_AUTH_OK, false);
	metrics_queue_outcome(METRICS_ROUTE_REMOTE, METRICS_QUEUE_DEFERRED);
	metrics_queue_messages_set(7);
	metrics_worker_restarted("imap4-backend");
	char *text = render();
	check_exposition(text);
	assert_value(text, "postern_connections_open{service=\"pop3\"}", "1");
	assert_value(text, "postern_connections_total{service=\"pop3\"}", "2");
	assert_value(text, "postern_connections_total{service=\"imap4\"}", "0");
	assert_value(text, "postern_logins_total{service=\"pop3\",result=\"ok\",reason=\"none\"}",
		     "1");
	assert_value(text,
		     "postern_logins_total{service=\"pop3\",result=\"failed\",reason=\"bad-"
		     "credentials\"}",
		     "1");
	assert_value(text,
		     "postern_logins_total{service=\"pop3\",result=\"failed\",reason=\"disabled\"}",
		     "1");
	assert_value(
	    text,
	    "postern_logins_total{service=\"pop3\",result=\"failed\",reason=\"account-kind\"}",
	    "2");
	assert_value(text,
		     "postern_logins_total{service=\"pop3\",result=\"failed\",reason=\"tempfail\"}",
		     "1");
	assert_value(
	    text, "postern_auth_verdicts_total{service=\"submission\",result=\"wrong-password\"}",
	    "1");
	assert_value(text, "postern_auth_tarpit_delays_total{service=\"submission\"}", "1");
	assert_value(text, "postern_queue_deliveries_total{route=\"remote\",result=\"deferred\"}",
		     "1");
	assert_value(text, "postern_queue_messages", "7");
	assert_value(text, "postern_worker_restarts_total{service=\"imap4-backend\"}", "1");
	free(text);

	/* the master zeroes a dead worker's slot; other slots stay */
	metrics_process_exited("pop3", 2);
	text = render();
	assert_value(text, "postern_connections_open{service=\"pop3\"}", "0");
	assert_value(text, "postern_connections_total{service=\"pop3\"}", "2");
	free(text);
}

static void test_histogram_buckets(void **state)
{
	(void)state;
	fresh_region("pop3-backend", 0);
	/* bounds are inclusive (le): 1000 us is in the 0.001 bucket */
	metrics_command_observe_us("retr", 1000);
	metrics_command_observe_us("RETR", 1001);
	metrics_command_observe_us("RETR", 40000000); /* past the last bound: +Inf only */
	metrics_command_observe_us("XYZZY", 10);
	struct metrics_timer t = {0};
	metrics_command_begin(&t, "NOOP");
	metrics_command_end(&t);
	metrics_command_end(&t); /* a second end observes nothing */
	char *text = render();
	check_exposition(text);
	const char *base = "postern_command_duration_seconds_bucket{service=\"pop3-backend\","
			   "command=\"RETR\",le=\"";
	static const struct {
		const char *le;
		const char *count;
	} want[] = {{"0.0005", "0"}, {"0.001", "1"}, {"0.0025", "2"},
		    {"1", "2"},	     {"30", "2"},    {"+Inf", "3"}};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char series[256];
		snprintf(series, sizeof(series), "%s%s\"}", base, want[i].le);
		assert_value(text, series, want[i].count);
	}
	assert_value(text,
		     "postern_command_duration_seconds_count{service=\"pop3-backend\",command="
		     "\"RETR\"}",
		     "3");
	assert_value(text,
		     "postern_command_duration_seconds_sum{service=\"pop3-backend\",command="
		     "\"RETR\"}",
		     "40.002001");
	assert_value(text, "postern_commands_total{service=\"pop3-backend\",command=\"RETR\"}",
		     "3");
	assert_value(text, "postern_commands_total{service=\"pop3-backend\",command=\"unknown\"}",
		     "1");
	assert_value(text, "postern_commands_total{service=\"pop3-backend\",command=\"NOOP\"}",
		     "1");
	assert_value(text,
		     "postern_command_duration_seconds_count{service=\"pop3-backend\",command="
		     "\"NOOP\"}",
		     "1");
	/* a client's junk never becomes a label */
	assert_null(strstr(text, "XYZZY"));
	/* every bucket line of a histogram, in order, ending in +Inf */
	size_t buckets = 0;
	for (const char *p = text; (p = strstr(p, base)) != NULL; p++)
		buckets++;
	assert_int_equal(buckets, METRICS_BUCKETS + 1);
	free(text);
	for (unsigned i = 1; i < METRICS_BUCKETS; i++)
		assert_true(metrics_bucket_bound_us(i) > metrics_bucket_bound_us(i - 1));
}

static void test_unattached_process_counts_nowhere_visible(void **state)
{
	(void)state;
	fresh_region(NULL, 0);
	metrics_connection_opened();
	metrics_command_observe_us("RETR", 5);
	metrics_login(METRICS_LOGIN_OK);
	char *text = render();
	assert_null(strstr(text, "postern_commands_total{"));
	assert_null(strstr(text, "service=\"none\""));
	free(text);
	/* attaching with a name outside the table behaves the same */
	char *error = NULL;
	int fd = metrics_create(&error);
	assert_int_equal(metrics_attach(fd, "bogus", 0, &error), 0);
	close(fd);
	metrics_connection_opened();
	text = render();
	assert_null(strstr(text, "service=\"none\""));
	free(text);
}

static void test_region_is_sealed_and_checked(void **state)
{
	(void)state;
	metrics_detach();
	char *error = NULL;
	int fd = metrics_create(&error);
	assert_true(fd >= 0);
	/* nobody holding the fd can shrink it under the master */
	assert_int_not_equal(ftruncate(fd, 0), 0);
	close(fd);
	/* a descriptor of another size is refused */
	int other = memfd_create("other", MFD_CLOEXEC);
	assert_int_equal(ftruncate(other, 4096), 0);
	assert_int_equal(metrics_attach(other, "pop3", 0, &error), -1);
	assert_non_null(error);
	free(error);
	close(other);
}

/* Forked processes that each map the region from the fd (as workers do)
 * add concurrently; nothing is lost, also from a child killed mid-way. */
static void test_concurrent_increments_from_forked_processes(void **state)
{
	(void)state;
	metrics_detach();
	char *error = NULL;
	int fd = metrics_create(&error);
	assert_true(fd >= 0);
	enum { CHILDREN = 4, ROUNDS = 50000 };
	pid_t pids[CHILDREN];
	for (int i = 0; i < CHILDREN; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char *err = NULL;
			if (metrics_attach(fd, "imap4", (unsigned)i, &err) < 0)
				_exit(1);
			for (int n = 0; n < ROUNDS; n++) {
				metrics_connection_opened();
				metrics_login(METRICS_LOGIN_BAD_CREDENTIALS);
				metrics_delivery(METRICS_DELIVERY_DELIVERED, 2);
			}
			_exit(0);
		}
	}
	for (int i = 0; i < CHILDREN; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* a child that dies with connections open: the master zeroes its slot */
	pid_t victim = fork();
	if (victim == 0) {
		char *err = NULL;
		metrics_attach(fd, "imap4", 9, &err);
		metrics_connection_opened();
		raise(SIGKILL);
	}
	int status;
	assert_int_equal(waitpid(victim, &status, 0), victim);
	assert_true(WIFSIGNALED(status));
	/* the parent reads the region the children wrote */
	char *text = render();
	char want[32];
	snprintf(want, sizeof(want), "%d", CHILDREN * ROUNDS + 1);
	assert_value(text, "postern_connections_open{service=\"imap4\"}", want);
	assert_value(text, "postern_connections_total{service=\"imap4\"}", want);
	snprintf(want, sizeof(want), "%d", CHILDREN * ROUNDS);
	assert_value(
	    text,
	    "postern_logins_total{service=\"imap4\",result=\"failed\",reason=\"bad-credentials\"}",
	    want);
	free(text);
	for (unsigned slot = 0; slot < METRICS_MAX_SLOTS; slot++)
		metrics_process_exited("imap4", slot);
	text = render();
	assert_value(text, "postern_connections_open{service=\"imap4\"}", "0");
	free(text);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_command_tables_are_sorted_and_bounded),
	    cmocka_unit_test(test_empty_region_renders_every_family),
	    cmocka_unit_test(test_label_values_are_escaped),
	    cmocka_unit_test(test_counters_of_a_service),
	    cmocka_unit_test(test_histogram_buckets),
	    cmocka_unit_test(test_unattached_process_counts_nowhere_visible),
	    cmocka_unit_test(test_region_is_sealed_and_checked),
	    cmocka_unit_test(test_concurrent_increments_from_forked_processes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
