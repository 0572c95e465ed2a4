/* libFuzzer target for the PROXY v2 parser (src/net/proxy_header.c).
 *
 * The first input byte seeds how the rest is split into feeds; the rest is
 * the stream. Parsed whole, in pseudo-random chunks, and one byte at a time
 * reading only proxy_header_wanted() bytes, the result must be the same,
 * and the parser must never consume past the header. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/proxy_header.h"

struct outcome {
	int ret;
	size_t consumed;
	struct proxy_header hdr;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static void run_chunked(const uint8_t *data, size_t size, uint32_t seed, struct outcome *o)
{
	struct proxy_header_parser p;
	proxy_header_parser_init(&p);
	size_t pos = 0;
	memset(o, 0, sizeof(*o));
	o->ret = 0;
	while (pos < size) {
		seed = seed * 1103515245u + 12345u;
		size_t n = 1 + (seed >> 16) % 40;
		if (n > size - pos)
			n = size - pos;
		size_t consumed;
		const char *error;
		o->ret = proxy_header_parse(&p, data + pos, n, &consumed, &o->hdr, &error);
		check(consumed <= n);
		pos += consumed;
		if (o->ret != 0) {
			if (o->ret < 0)
				check(error != NULL && error[0] != '\0');
			break;
		}
		check(consumed == n);
	}
	o->consumed = pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint32_t seed = data[0];
	data++;
	size--;

	struct outcome whole, chunked, trickled;
	struct proxy_header_parser p;
	const char *error;

	memset(&whole, 0, sizeof(whole));
	proxy_header_parser_init(&p);
	whole.ret = proxy_header_parse(&p, data, size, &whole.consumed, &whole.hdr, &error);
	check(whole.consumed <= size);
	if (whole.ret == 1) {
		check(whole.consumed >= PROXY_HEADER_FIXED_LEN);
		check(whole.consumed <= PROXY_HEADER_FIXED_LEN + PROXY_HEADER_MAX_PAYLOAD);
		check(proxy_header_wanted(&p) == 0);
		check(whole.hdr.local || whole.hdr.src_len > 0);
	} else if (whole.ret == 0) {
		check(whole.consumed == size);
		check(proxy_header_wanted(&p) > 0);
	}

	run_chunked(data, size, seed, &chunked);
	check(chunked.ret == whole.ret);
	if (whole.ret == 1) {
		check(chunked.consumed == whole.consumed);
		check(memcmp(&chunked.hdr, &whole.hdr, sizeof(whole.hdr)) == 0);
	}

	/* read only what the parser says it still wants, one byte at a time */
	memset(&trickled, 0, sizeof(trickled));
	proxy_header_parser_init(&p);
	size_t pos = 0;
	while (pos < size && trickled.ret == 0) {
		size_t want = proxy_header_wanted(&p);
		check(want > 0);
		size_t consumed;
		trickled.ret =
		    proxy_header_parse(&p, data + pos, 1, &consumed, &trickled.hdr, &error);
		check(consumed == 1 || trickled.ret != 0);
		pos += consumed;
		if (trickled.ret == 0)
			check(proxy_header_wanted(&p) == want - 1 || want == 1);
	}
	check(trickled.ret == whole.ret);
	if (whole.ret == 1) {
		check(pos == whole.consumed);
		check(memcmp(&trickled.hdr, &whole.hdr, sizeof(whole.hdr)) == 0);
	}
	return 0;
}
