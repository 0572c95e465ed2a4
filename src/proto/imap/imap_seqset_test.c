#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/imap_arena.h"
#include "proto/imap/imap_seqset.h"

static void expect_norm(const char *in, const char *out)
{
	struct imap_seqset set;
	const char *error;
	imap_seqset_init(&set, NULL);
	if (imap_seqset_parse(&set, in, strlen(in), true, &error) != 1)
		fail_msg("%s: %s", in, error);
	char *s = imap_seqset_format(&set);
	if (strcmp(s, out) != 0)
		fail_msg("%s: got %s, want %s", in, s, out);
	free(s);
	imap_seqset_deinit(&set);
}

static void expect_bad(const char *in, const char *text)
{
	struct imap_seqset set;
	const char *error = NULL;
	imap_seqset_init(&set, NULL);
	assert_int_equal(imap_seqset_parse(&set, in, strlen(in), false, &error), -1);
	assert_string_equal(error, text);
	imap_seqset_deinit(&set);
}

static void test_normalise(void **state)
{
	expect_norm("1", "1");
	expect_norm("5:1", "1:5");
	expect_norm("3,1,2", "1:3");
	expect_norm("1:3,2:6,8,10:9", "1:6,8:10");
	expect_norm("*", "*");
	expect_norm("*:4,2", "2,4:*");
	expect_norm("4294967294,1", "1,4294967294");
	expect_norm("$", "$");
	expect_norm("7,5,6,1:2,3:4", "1:7");
}

static void test_bad(void **state)
{
	expect_bad("", "Invalid sequence set");
	expect_bad("0", "Invalid sequence set");
	expect_bad("1:", "Invalid sequence set");
	expect_bad("1,", "Invalid sequence set");
	expect_bad("1::2", "Invalid sequence set");
	expect_bad("01", "Invalid sequence set");
	expect_bad("4294967295", "Invalid sequence set");
	expect_bad("$", "\"$\" is not allowed here");
	expect_bad("1,$", "Invalid sequence set");
	/* the range bound */
	size_t n = IMAP_SEQSET_MAX_RANGES + 1;
	char *big = malloc(n * 2 + 1);
	for (size_t i = 0; i < n; i++) {
		big[2 * i] = '1';
		big[2 * i + 1] = ',';
	}
	big[2 * n - 1] = '\0';
	expect_bad(big, "Too many ranges in the sequence set");
	big[2 * (n - 1) - 1] = '\0';
	expect_norm(big, "1");
	free(big);
}

static void test_ops(void **state)
{
	struct imap_arena *arena = imap_arena_new(0);
	struct imap_seqset set;
	const char *error;
	imap_seqset_init(&set, arena);
	assert_int_equal(imap_seqset_parse(&set, "1:3,7,10:*", 10, false, &error), 1);
	assert_true(imap_seqset_contains(&set, 2));
	assert_false(imap_seqset_contains(&set, 5));
	assert_true(imap_seqset_contains(&set, IMAP_SEQ_STAR));
	assert_true(imap_seqset_has_star(&set));
	imap_seqset_resolve_star(&set, 12);
	assert_false(imap_seqset_has_star(&set));
	assert_int_equal(imap_seqset_count(&set), 3 + 1 + 3);
	uint64_t iter = 0;
	uint32_t v, seen[16];
	unsigned k = 0;
	while (imap_seqset_next(&set, &iter, &v))
		seen[k++] = v;
	assert_int_equal(k, 7);
	assert_int_equal(seen[3], 7);
	assert_int_equal(seen[6], 12);
	imap_seqset_remove_range(&set, 2, 10);
	char buf[64];
	imap_seqset_format_buf(&set, buf, sizeof(buf));
	assert_string_equal(buf, "1,11:12");
	imap_seqset_add(&set, 13);
	imap_seqset_add_range(&set, 5, 3);
	imap_seqset_format_buf(&set, buf, sizeof(buf));
	assert_string_equal(buf, "1,3:5,11:13");
	/* "n:*" above the highest number, and an empty mailbox */
	assert_int_equal(imap_seqset_parse(&set, "20:*", 4, false, &error), 1);
	imap_seqset_resolve_star(&set, 12);
	imap_seqset_format_buf(&set, buf, sizeof(buf));
	assert_string_equal(buf, "12:20");
	assert_int_equal(imap_seqset_parse(&set, "1,*", 3, false, &error), 1);
	imap_seqset_resolve_star(&set, 0);
	imap_seqset_format_buf(&set, buf, sizeof(buf));
	assert_string_equal(buf, "1");
	/* truncated formatting reports the length needed */
	assert_int_equal(imap_seqset_format_buf(&set, buf, 1), 1);
	imap_arena_free(&arena);
	assert_null(arena);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalise),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_ops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
