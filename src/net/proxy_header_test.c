#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "lib/net_addr.h"
#include "net/proxy_header.h"

static const unsigned char sig[12] = "\r\n\r\n\0\r\nQUIT\n";

/* build a header: ver_cmd, fam, payload (addresses + TLVs) */
static size_t build(unsigned char *buf, unsigned char ver_cmd, unsigned char fam,
		    const unsigned char *payload, size_t len)
{
	memcpy(buf, sig, 12);
	buf[12] = ver_cmd;
	buf[13] = fam;
	buf[14] = (unsigned char)(len >> 8);
	buf[15] = (unsigned char)len;
	if (len > 0)
		memcpy(buf + 16, payload, len);
	return 16 + len;
}

static size_t build_v4(unsigned char *buf, const char *trailer)
{
	unsigned char p[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0x30, 0x39, 0x03, 0xe1};
	size_t n = build(buf, 0x21, 0x11, p, sizeof(p));
	memcpy(buf + n, trailer, strlen(trailer));
	return n;
}

static size_t build_v6_tlv(unsigned char *buf, size_t tlv_len)
{
	unsigned char p[36 + 1100];
	memset(p, 0, sizeof(p));
	inet_pton(AF_INET6, "2001:db8::7", p);
	inet_pton(AF_INET6, "2001:db8::1", p + 16);
	p[32] = 0xc3;
	p[33] = 0x50; /* 50000 */
	p[34] = 0x00;
	p[35] = 0x8f; /* 143 */
	/* TLVs: NOOP padding with arbitrary bytes */
	size_t pos = 36;
	while (pos < 36 + tlv_len) {
		size_t left = 36 + tlv_len - pos;
		size_t v = left - 3 > 200 ? 200 : left - 3;
		p[pos] = 0x04;
		p[pos + 1] = (unsigned char)(v >> 8);
		p[pos + 2] = (unsigned char)v;
		memset(p + pos + 3, 0xee, v);
		pos += 3 + v;
	}
	return build(buf, 0x21, 0x21, p, 36 + tlv_len);
}

static const char *fmt(const struct sockaddr_storage *ss, socklen_t len, char *buf)
{
	return net_sockaddr_format((const struct sockaddr *)ss, len, buf, 128);
}

/* parse whole, split at every point, and one byte at a time (reading only
 * what proxy_header_wanted() allows); every way gives the same result */
static int parse_all_ways(const unsigned char *data, size_t len, struct proxy_header *hdr_r,
			  size_t *consumed_r, const char **error_r)
{
	struct proxy_header_parser p;
	proxy_header_parser_init(&p);
	int whole = proxy_header_parse(&p, data, len, consumed_r, hdr_r, error_r);

	for (size_t k = 0; k <= len; k++) {
		struct proxy_header hdr;
		size_t c1, c2 = 0;
		const char *err;
		proxy_header_parser_init(&p);
		int ret = proxy_header_parse(&p, data, k, &c1, &hdr, &err);
		if (ret == 0) {
			assert_int_equal(c1, k);
			ret = proxy_header_parse(&p, data + k, len - k, &c2, &hdr, &err);
		}
		assert_int_equal(ret, whole);
		if (ret == 1) {
			assert_int_equal(c1 + c2, *consumed_r);
			assert_memory_equal(&hdr, hdr_r, sizeof(hdr));
		}
	}

	proxy_header_parser_init(&p);
	size_t pos = 0;
	int ret = 0;
	while (ret == 0 && pos < len) {
		size_t want = proxy_header_wanted(&p);
		assert_true(want > 0);
		size_t consumed;
		struct proxy_header hdr;
		const char *err;
		ret = proxy_header_parse(&p, data + pos, 1, &consumed, &hdr, &err);
		assert_true(consumed <= 1);
		pos += consumed;
		if (ret == 1) {
			assert_memory_equal(&hdr, hdr_r, sizeof(hdr));
			assert_int_equal(proxy_header_wanted(&p), 0);
		}
	}
	assert_int_equal(ret, whole);
	if (whole == 1)
		assert_int_equal(pos, *consumed_r);
	return whole;
}

static void test_v4(void **state)
{
	unsigned char buf[64];
	size_t n = build_v4(buf, "A1 NOOP\r\n");
	struct proxy_header hdr;
	size_t consumed;
	const char *error;
	char a[128];
	assert_int_equal(parse_all_ways(buf, n + 9, &hdr, &consumed, &error), 1);
	assert_int_equal(consumed, 28);
	assert_false(hdr.local);
	assert_string_equal(fmt(&hdr.src, hdr.src_len, a), "192.0.2.1:12345");
	assert_string_equal(fmt(&hdr.dst, hdr.dst_len, a), "198.51.100.2:993");
}

static void test_v6_with_tlvs(void **state)
{
	unsigned char buf[16 + 36 + 1100];
	struct proxy_header hdr;
	size_t consumed;
	const char *error;
	char a[128];

	size_t n = build_v6_tlv(buf, 0);
	assert_int_equal(parse_all_ways(buf, n, &hdr, &consumed, &error), 1);
	assert_int_equal(consumed, 52);
	assert_string_equal(fmt(&hdr.src, hdr.src_len, a), "[2001:db8::7]:50000");
	assert_string_equal(fmt(&hdr.dst, hdr.dst_len, a), "[2001:db8::1]:143");

	/* 536 bytes in all, as the specification's receivers must take */
	n = build_v6_tlv(buf, 536 - 52);
	assert_int_equal(n, 536);
	assert_int_equal(parse_all_ways(buf, n, &hdr, &consumed, &error), 1);
	assert_int_equal(consumed, 536);
	assert_string_equal(fmt(&hdr.src, hdr.src_len, a), "[2001:db8::7]:50000");

	/* up to the 1 KiB cap */
	n = build_v6_tlv(buf, PROXY_HEADER_MAX_PAYLOAD - 36);
	assert_int_equal(parse_all_ways(buf, n, &hdr, &consumed, &error), 1);
	assert_int_equal(consumed, 16 + PROXY_HEADER_MAX_PAYLOAD);
}

static void test_oversized(void **state)
{
	unsigned char buf[16 + 36 + 1100];
	struct proxy_header hdr;
	size_t consumed;
	const char *error;
	size_t n = build_v6_tlv(buf, PROXY_HEADER_MAX_PAYLOAD - 36 + 1);
	assert_int_equal(parse_all_ways(buf, n, &hdr, &consumed, &error), -1);
	assert_non_null(strstr(error, "too long"));
	/* refused as soon as the length field is seen */
	struct proxy_header_parser p;
	proxy_header_parser_init(&p);
	assert_int_equal(proxy_header_parse(&p, buf, 16, &consumed, &hdr, &error), -1);
	assert_int_equal(consumed, 16);
}

static void test_local(void **state)
{
	unsigned char buf[64];
	struct proxy_header hdr;
	size_t consumed;
	const char *error;
	size_t n = build(buf, 0x20, 0x00, NULL, 0);
	assert_int_equal(parse_all_ways(buf, n, &hdr, &consumed, &error), 1);
	assert_int_equal(consumed, 16);
	assert_true(hdr.local);
	assert_int_equal(hdr.src_len, 0);

	/* LOCAL with an address block: skipped, addresses ignored */
	unsigned char p[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
	n = build(buf, 0x20, 0x11, p, sizeof(p));
	assert_int_equal(parse_all_ways(buf, n, &hdr, &consumed, &error), 1);
	assert_int_equal(consumed, 28);
	assert_true(hdr.local);

	/* PROXY with UNSPEC: treated as LOCAL */
	n = build(buf, 0x21, 0x00, p, 4);
	assert_int_equal(parse_all_ways(buf, n, &hdr, &consumed, &error), 1);
	assert_true(hdr.local);
	assert_int_equal(consumed, 20);
}

static void expect_error(const unsigned char *buf, size_t n, const char *text)
{
	struct proxy_header hdr;
	size_t consumed;
	const char *error = NULL;
	assert_int_equal(parse_all_ways(buf, n, &hdr, &consumed, &error), -1);
	assert_non_null(strstr(error, text));
}

static void test_bad(void **state)
{
	unsigned char buf[64];
	unsigned char p[36] = {0};

	/* v1 text header, a plain protocol line, a wrong signature byte */
	const char *v1 = "PROXY TCP4 192.0.2.1 198.51.100.2 12345 993\r\n";
	expect_error((const unsigned char *)v1, strlen(v1), "not a PROXY protocol v2");
	expect_error((const unsigned char *)"A1 NOOP\r\n", 9, "not a PROXY protocol v2");
	size_t n = build_v4(buf, "");
	buf[7] = 'q';
	expect_error(buf, n, "not a PROXY protocol v2");

	/* version 1 in the binary header, unknown command */
	n = build(buf, 0x11, 0x11, p, 12);
	expect_error(buf, n, "version");
	n = build(buf, 0x22, 0x11, p, 12);
	expect_error(buf, n, "command");
	/* datagrams, unix sockets, unknown families */
	n = build(buf, 0x21, 0x12, p, 12);
	expect_error(buf, n, "STREAM");
	n = build(buf, 0x21, 0x22, p, 36);
	expect_error(buf, n, "STREAM");
	n = build(buf, 0x21, 0x31, p, 36);
	expect_error(buf, n, "family");
	n = build(buf, 0x21, 0x41, p, 12);
	expect_error(buf, n, "family");
	/* address block shorter than the family needs */
	n = build(buf, 0x21, 0x11, p, 11);
	expect_error(buf, n, "too short");
	n = build(buf, 0x21, 0x21, p, 12);
	expect_error(buf, n, "too short");

	/* the first wrong byte is enough, and the failure sticks */
	struct proxy_header_parser parser;
	struct proxy_header hdr;
	size_t consumed;
	const char *error;
	proxy_header_parser_init(&parser);
	assert_int_equal(proxy_header_parse(&parser, "P", 1, &consumed, &hdr, &error), -1);
	assert_int_equal(consumed, 1);
	assert_int_equal(proxy_header_parse(&parser, sig, 12, &consumed, &hdr, &error), -1);
	assert_int_equal(consumed, 0);
	assert_int_equal(proxy_header_wanted(&parser), 0);
}

static void test_truncated(void **state)
{
	unsigned char buf[64];
	size_t n = build_v4(buf, "");
	struct proxy_header_parser p;
	struct proxy_header hdr;
	size_t consumed;
	const char *error;

	proxy_header_parser_init(&p);
	assert_int_equal(proxy_header_wanted(&p), 16);
	assert_int_equal(proxy_header_parse(&p, buf, 10, &consumed, &hdr, &error), 0);
	assert_int_equal(consumed, 10);
	assert_int_equal(proxy_header_wanted(&p), 6);
	assert_int_equal(proxy_header_parse(&p, buf + 10, 10, &consumed, &hdr, &error), 0);
	assert_int_equal(proxy_header_wanted(&p), 8);
	assert_int_equal(proxy_header_parse(&p, buf + 20, 0, &consumed, &hdr, &error), 0);
	assert_int_equal(proxy_header_parse(&p, buf + 20, n - 20, &consumed, &hdr, &error), 1);
	assert_int_equal(consumed, 8);
	/* done sticks, consuming nothing more */
	assert_int_equal(proxy_header_parse(&p, "xyz", 3, &consumed, &hdr, &error), 1);
	assert_int_equal(consumed, 0);
	assert_false(hdr.local);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v4),	      cmocka_unit_test(test_v6_with_tlvs),
	    cmocka_unit_test(test_oversized), cmocka_unit_test(test_local),
	    cmocka_unit_test(test_bad),	      cmocka_unit_test(test_truncated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
