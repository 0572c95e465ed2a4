#include "net/proxy_header.h"

#include <netinet/in.h>
#include <string.h>

static const unsigned char proxy_header_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
						   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

#define PROXY_CMD_LOCAL	 0x0
#define PROXY_CMD_PROXY	 0x1
#define PROXY_FAM_UNSPEC 0x00
#define PROXY_FAM_TCP4	 0x11
#define PROXY_FAM_TCP6	 0x21
#define PROXY_ADDR4_LEN	 12
#define PROXY_ADDR6_LEN	 36

void proxy_header_parser_init(struct proxy_header_parser *parser)
{
	memset(parser, 0, sizeof(*parser));
}

static int proxy_header_fail(struct proxy_header_parser *parser, const char *error)
{
	parser->state = -1;
	parser->error = error;
	return -1;
}

/* check one byte of the fixed part as soon as it arrives, so that a peer that
 * speaks something else is refused at its first wrong byte */
static int proxy_header_fixed_byte(struct proxy_header_parser *parser, unsigned char c)
{
	size_t i = parser->pos;
	parser->fixed[i] = c;
	if (i < sizeof(proxy_header_sig)) {
		if (c != proxy_header_sig[i])
			return proxy_header_fail(parser, "not a PROXY protocol v2 header");
		return 0;
	}
	if (i == 12) {
		if ((c >> 4) != 2)
			return proxy_header_fail(parser, "unsupported PROXY protocol version");
		if ((c & 0x0f) != PROXY_CMD_LOCAL && (c & 0x0f) != PROXY_CMD_PROXY)
			return proxy_header_fail(parser, "unknown PROXY protocol command");
		return 0;
	}
	if (i == 13) {
		if ((parser->fixed[12] & 0x0f) == PROXY_CMD_LOCAL)
			return 0;
		switch (c) {
		case PROXY_FAM_UNSPEC:
		case PROXY_FAM_TCP4:
		case PROXY_FAM_TCP6:
			return 0;
		case 0x12:
		case 0x22:
			return proxy_header_fail(parser, "PROXY header: only STREAM is accepted");
		default:
			return proxy_header_fail(parser,
						 "PROXY header: address family not supported");
		}
	}
	if (i == 15) {
		size_t len = ((size_t)parser->fixed[14] << 8) | c;
		if (len > PROXY_HEADER_MAX_PAYLOAD)
			return proxy_header_fail(parser, "PROXY header too long");
		parser->payload_len = len;
		if ((parser->fixed[12] & 0x0f) == PROXY_CMD_PROXY) {
			if (parser->fixed[13] == PROXY_FAM_TCP4)
				parser->addr_len = PROXY_ADDR4_LEN;
			else if (parser->fixed[13] == PROXY_FAM_TCP6)
				parser->addr_len = PROXY_ADDR6_LEN;
		}
		if (len < parser->addr_len)
			return proxy_header_fail(parser, "PROXY header: address block too short");
	}
	return 0;
}

static void proxy_header_result(const struct proxy_header_parser *parser,
				struct proxy_header *hdr_r)
{
	memset(hdr_r, 0, sizeof(*hdr_r));
	const unsigned char *a = parser->addr;
	if (parser->addr_len == PROXY_ADDR4_LEN) {
		struct sockaddr_in *src = (struct sockaddr_in *)&hdr_r->src;
		struct sockaddr_in *dst = (struct sockaddr_in *)&hdr_r->dst;
		src->sin_family = AF_INET;
		dst->sin_family = AF_INET;
		memcpy(&src->sin_addr, a, 4);
		memcpy(&dst->sin_addr, a + 4, 4);
		memcpy(&src->sin_port, a + 8, 2);
		memcpy(&dst->sin_port, a + 10, 2);
		hdr_r->src_len = hdr_r->dst_len = (socklen_t)sizeof(struct sockaddr_in);
	} else if (parser->addr_len == PROXY_ADDR6_LEN) {
		struct sockaddr_in6 *src = (struct sockaddr_in6 *)&hdr_r->src;
		struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&hdr_r->dst;
		src->sin6_family = AF_INET6;
		dst->sin6_family = AF_INET6;
		memcpy(&src->sin6_addr, a, 16);
		memcpy(&dst->sin6_addr, a + 16, 16);
		memcpy(&src->sin6_port, a + 32, 2);
		memcpy(&dst->sin6_port, a + 34, 2);
		hdr_r->src_len = hdr_r->dst_len = (socklen_t)sizeof(struct sockaddr_in6);
	} else {
		hdr_r->local = true;
	}
}

int proxy_header_parse(struct proxy_header_parser *parser, const void *data, size_t size,
		       size_t *consumed_r, struct proxy_header *hdr_r, const char **error_r)
{
	const unsigned char *p = data;
	size_t used = 0;

	*consumed_r = 0;
	if (parser->state < 0) {
		*error_r = parser->error;
		return -1;
	}
	while (parser->state == 0 && used < size) {
		if (parser->pos < PROXY_HEADER_FIXED_LEN) {
			if (proxy_header_fixed_byte(parser, p[used]) < 0) {
				*consumed_r = used + 1;
				*error_r = parser->error;
				return -1;
			}
			used++;
			parser->pos++;
		} else {
			size_t off = parser->pos - PROXY_HEADER_FIXED_LEN;
			size_t n = parser->payload_len - off;
			if (n > size - used)
				n = size - used;
			if (off < parser->addr_len) {
				size_t keep = parser->addr_len - off;
				if (keep > n)
					keep = n;
				memcpy(parser->addr + off, p + used, keep);
			}
			used += n;
			parser->pos += n;
		}
		if (parser->pos >= PROXY_HEADER_FIXED_LEN &&
		    parser->pos == PROXY_HEADER_FIXED_LEN + parser->payload_len)
			parser->state = 1;
	}
	*consumed_r = used;
	if (parser->state == 0)
		return 0;
	proxy_header_result(parser, hdr_r);
	return 1;
}

size_t proxy_header_wanted(const struct proxy_header_parser *parser)
{
	if (parser->state != 0)
		return 0;
	if (parser->pos < PROXY_HEADER_FIXED_LEN)
		return PROXY_HEADER_FIXED_LEN - parser->pos;
	return PROXY_HEADER_FIXED_LEN + parser->payload_len - parser->pos;
}
