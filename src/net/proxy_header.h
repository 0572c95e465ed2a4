#ifndef POSTERN_PROXY_HEADER_H
#define POSTERN_PROXY_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* HAProxy PROXY protocol version 2 (binary), as sent by a load balancer in
 * front of postern to carry the client's real address.
 *
 * Accepted: signature "\r\n\r\n\0\r\nQUIT\n", version 2, command LOCAL or
 * PROXY; with PROXY, AF_INET or AF_INET6 over STREAM (UNSPEC is treated as
 * LOCAL, as the specification asks). TLVs after the addresses are skipped
 * unread. The part after the 16-byte fixed header (addresses + TLVs) may be
 * at most PROXY_HEADER_MAX_PAYLOAD bytes. The text version 1 ("PROXY TCP4
 * ...") is refused: its first byte already fails the signature.
 *
 * A resumable parser with no I/O: feed it bytes as they arrive. It consumes
 * only the header's own bytes, so whatever follows stays with the caller
 * (e.g. a TLS ClientHello). The parser holds at most 52 bytes. */

#define PROXY_HEADER_FIXED_LEN	 16
#define PROXY_HEADER_MAX_PAYLOAD 1024

struct proxy_header {
	/* true: LOCAL command (health check) or UNSPEC family: keep the
	 * socket's own addresses; src/dst are then unset (len 0) */
	bool local;
	struct sockaddr_storage src; /* the client */
	struct sockaddr_storage dst; /* the address the client connected to */
	socklen_t src_len;
	socklen_t dst_len;
};

struct proxy_header_parser {
	unsigned char fixed[PROXY_HEADER_FIXED_LEN];
	unsigned char addr[36]; /* the largest address block we read (INET6) */
	size_t pos;		/* header bytes consumed so far */
	size_t payload_len;	/* from the fixed header */
	size_t addr_len;	/* address bytes to keep: 0, 12 or 36 */
	int state;		/* 0 parsing, 1 done, -1 failed */
	const char *error;
};

void proxy_header_parser_init(struct proxy_header_parser *parser);

/* Feed size bytes. Returns 1 when the header is complete (*hdr_r filled;
 * *consumed_r header bytes were used, the rest of data is not part of it),
 * 0 when all of data was consumed and more is needed, -1 when the bytes are
 * not an acceptable PROXY v2 header (*error_r: static text). A parser that
 * finished or failed keeps answering the same (consuming nothing). */
int proxy_header_parse(struct proxy_header_parser *parser, const void *data, size_t size,
		       size_t *consumed_r, struct proxy_header *hdr_r, const char **error_r);

/* The number of bytes that can be read from the stream without reading past
 * the header (0 once finished or failed). Reading at most this much at a
 * time never swallows the protocol bytes that follow. */
size_t proxy_header_wanted(const struct proxy_header_parser *parser);

#endif
