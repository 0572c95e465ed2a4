#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/protolog.h"

static char *read_only_log(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	char path[1024] = "";
	while ((e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".log") != NULL)
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
	closedir(d);
	assert_true(path[0] != '\0');
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
	return buf;
}

static void test_lines_are_written_only_when_enabled(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/protolog-XXXXXX";
	char *datadir = mkdtemp(tmpl);
	assert_non_null(datadir);
	char logs[256], dir[300];
	snprintf(logs, sizeof(logs), "%s/logs", datadir);
	mkdir(logs, 0750);
	snprintf(dir, sizeof(dir), "%s/pop3", logs);

	struct protolog *log = protolog_new(datadir, "pop3");
	protolog_line(log, "s1", "192.0.2.1:5", 'C', "CAPA", 4);
	assert_int_equal(access(dir, F_OK), -1); /* off: nothing created */
	protolog_enable(log, true);
	protolog_line(log, "s1", "192.0.2.1:5", 'C', "USER alice", 10);
	protolog_line(log, "s1", "192.0.2.1:5", 'S', "+OK\r\x01\xff", 6);
	char big[2000];
	memset(big, 'x', sizeof(big));
	protolog_line(log, "s1", "192.0.2.1:5", 'C', big, sizeof(big));
	char *text = read_only_log(dir);
	assert_non_null(strstr(text, " s1 192.0.2.1:5 C USER alice\n"));
	assert_non_null(strstr(text, " s1 192.0.2.1:5 S +OK???\n"));
	assert_non_null(strstr(text, "xxx...\n"));
	/* one line per call */
	int lines = 0;
	for (char *p = text; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 3);
	protolog_free(&log);
	assert_null(log);
	rmdir(dir);
	rmdir(logs);
	rmdir(datadir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_are_written_only_when_enabled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
