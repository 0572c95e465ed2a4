#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <zlib.h>

#include "net/conn_deflate.h"

/* Both directions against zlib's own raw DEFLATE as the peer. */

static void test_output_is_flushed_per_write(void **state)
{
	const char *error = NULL;
	struct conn_deflate *z = conn_deflate_new(&error);
	assert_non_null(z);
	struct evbuffer *out = evbuffer_new();
	z_stream peer = {0};
	assert_int_equal(inflateInit2(&peer, -15), Z_OK);
	const char *lines[] = {"* 1 EXISTS\r\n", "* 2 EXISTS\r\n", "t1 OK done\r\n"};
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(conn_deflate_compress(z, lines[i], strlen(lines[i]), out, &error),
				 0);
		/* everything written so far inflates now: nothing is held back */
		size_t n = evbuffer_get_length(out);
		unsigned char *in = evbuffer_pullup(out, -1);
		char plain[256];
		peer.next_in = in;
		peer.avail_in = (uInt)n;
		peer.next_out = (Bytef *)plain;
		peer.avail_out = sizeof(plain);
		assert_int_equal(inflate(&peer, Z_SYNC_FLUSH), Z_OK);
		assert_int_equal(sizeof(plain) - peer.avail_out, strlen(lines[i]));
		assert_memory_equal(plain, lines[i], strlen(lines[i]));
		evbuffer_drain(out, n);
	}
	inflateEnd(&peer);
	evbuffer_free(out);
	conn_deflate_free(&z);
	assert_null(z);
}

static size_t peer_deflate(const void *data, size_t len, unsigned char *out, size_t cap)
{
	z_stream peer = {0};
	assert_int_equal(deflateInit2(&peer, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	peer.next_in = (Bytef *)(uintptr_t)data;
	peer.avail_in = (uInt)len;
	peer.next_out = out;
	peer.avail_out = (uInt)cap;
	assert_int_equal(deflate(&peer, Z_SYNC_FLUSH), Z_OK);
	size_t n = cap - peer.avail_out;
	deflateEnd(&peer);
	return n;
}

static void test_input_is_bounded_and_resumable(void **state)
{
	const char *error = NULL;
	struct conn_deflate *z = conn_deflate_new(&error);
	size_t plain_len = 1024 * 1024;
	char *plain = malloc(plain_len);
	for (size_t i = 0; i < plain_len; i++)
		plain[i] = (char)('a' + i % 7);
	unsigned char *wire = malloc(plain_len);
	size_t wire_len = peer_deflate(plain, plain_len, wire, plain_len);
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	/* the compressed bytes arrive one at a time; the reader takes at most
	 * 4096 inflated bytes per turn */
	size_t got = 0;
	char *seen = malloc(plain_len);
	for (size_t i = 0; i <= wire_len; i++) {
		if (i < wire_len)
			evbuffer_add(in, wire + i, 1);
		for (;;) {
			int r = conn_deflate_inflate(z, in, out, 4096, &error);
			assert_true(r >= 0);
			assert_true(evbuffer_get_length(out) <= 4096);
			size_t n = evbuffer_get_length(out);
			if (n == 0)
				break;
			evbuffer_remove(out, seen + got, n);
			got += n;
		}
	}
	assert_int_equal(got, plain_len);
	assert_memory_equal(seen, plain, plain_len);
	free(seen);
	free(plain);
	free(wire);
	evbuffer_free(in);
	evbuffer_free(out);
	conn_deflate_free(&z);
}

static void test_bomb_and_corrupt_input_are_refused(void **state)
{
	const char *error = NULL;
	struct conn_deflate *z = conn_deflate_new(&error);
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	size_t chunk = 1024 * 1024;
	char *zeros = calloc(1, chunk);
	unsigned char *wire = malloc(chunk);
	size_t wire_len = peer_deflate(zeros, chunk, wire, chunk);
	int r = 0;
	size_t inflated = 0;
	for (unsigned i = 0; i < 200 && r >= 0; i++) {
		evbuffer_add(in, wire, wire_len);
		while ((r = conn_deflate_inflate(z, in, out, 65536, &error)) > 0) {
			inflated += evbuffer_get_length(out);
			evbuffer_drain(out, evbuffer_get_length(out));
		}
	}
	assert_int_equal(r, -1);
	assert_string_equal(error, "compressed input expands too much");
	assert_true(inflated >= CONN_DEFLATE_EXPAND_FLOOR);
	assert_true(inflated < CONN_DEFLATE_EXPAND_FLOOR + 2 * chunk);
	conn_deflate_free(&z);

	z = conn_deflate_new(&error);
	evbuffer_drain(in, evbuffer_get_length(in));
	evbuffer_drain(out, evbuffer_get_length(out));
	evbuffer_add(in, "\xff\xff\xff\xff garbage", 12);
	assert_int_equal(conn_deflate_inflate(z, in, out, 65536, &error), -1);
	assert_string_equal(error, "corrupt compressed input");
	conn_deflate_free(&z);
	free(zeros);
	free(wire);
	evbuffer_free(in);
	evbuffer_free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_is_flushed_per_write),
		cmocka_unit_test(test_input_is_bounded_and_resumable),
		cmocka_unit_test(test_bomb_and_corrupt_input_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
