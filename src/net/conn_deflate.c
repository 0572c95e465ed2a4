#include "net/conn_deflate.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <zlib.h>

#include "lib/xalloc.h"

/* bytes of output space reserved per deflate/inflate step */
#define CONN_DEFLATE_STEP 16384

struct conn_deflate {
	z_stream out; /* deflate */
	z_stream in;  /* inflate */
	bool in_pending;
	uint64_t in_compressed, in_plain;
	uint64_t out_plain, out_compressed;
};

struct conn_deflate *conn_deflate_new(const char **error_r)
{
	struct conn_deflate *z = xcalloc(1, sizeof(*z));
	/* negative window bits: raw DEFLATE without a zlib header */
	if (deflateInit2(&z->out, CONN_DEFLATE_LEVEL, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK) {
		free(z);
		*error_r = "cannot set up the compressor";
		return NULL;
	}
	if (inflateInit2(&z->in, -15) != Z_OK) {
		deflateEnd(&z->out);
		free(z);
		*error_r = "cannot set up the decompressor";
		return NULL;
	}
	return z;
}

void conn_deflate_free(struct conn_deflate **zp)
{
	struct conn_deflate *z = *zp;
	if (z == NULL)
		return;
	*zp = NULL;
	deflateEnd(&z->out);
	inflateEnd(&z->in);
	free(z);
}

int conn_deflate_compress(struct conn_deflate *z, const void *data, size_t len,
			  struct evbuffer *out, const char **error_r)
{
	z->out.next_in = (Bytef *)(uintptr_t)data;
	z->out.avail_in = 0;
	size_t left = len;
	for (;;) {
		/* zlib counts in uInt: feed large writes in pieces */
		if (z->out.avail_in == 0 && left > 0) {
			uInt n = left > (1u << 30) ? (1u << 30) : (uInt)left;
			z->out.avail_in = n;
			left -= n;
		}
		struct evbuffer_iovec vec;
		if (evbuffer_reserve_space(out, CONN_DEFLATE_STEP, &vec, 1) < 1) {
			*error_r = "out of memory";
			return -1;
		}
		z->out.next_out = vec.iov_base;
		z->out.avail_out = (uInt)vec.iov_len;
		int ret = deflate(&z->out, left > 0 ? Z_NO_FLUSH : Z_SYNC_FLUSH);
		vec.iov_len -= z->out.avail_out;
		z->out_compressed += vec.iov_len;
		evbuffer_commit_space(out, &vec, 1);
		if (ret != Z_OK && ret != Z_BUF_ERROR) {
			*error_r = "compression failed";
			return -1;
		}
		/* the flush is complete once deflate left output space unused */
		if (left == 0 && z->out.avail_in == 0 && z->out.avail_out > 0)
			break;
	}
	z->out_plain += len;
	return 0;
}

int conn_deflate_inflate(struct conn_deflate *z, struct evbuffer *in, struct evbuffer *out,
			 size_t out_limit, const char **error_r)
{
	bool produced = false;
	for (;;) {
		size_t have = evbuffer_get_length(out);
		if (have >= out_limit)
			break;
		size_t room = out_limit - have;
		if (room > CONN_DEFLATE_STEP)
			room = CONN_DEFLATE_STEP;
		struct evbuffer_iovec src;
		size_t src_len = 0;
		if (evbuffer_peek(in, -1, NULL, &src, 1) >= 1)
			src_len = src.iov_len;
		if (src_len == 0 && !z->in_pending)
			break;
		struct evbuffer_iovec dst;
		if (evbuffer_reserve_space(out, room, &dst, 1) < 1) {
			*error_r = "out of memory";
			return -1;
		}
		if (dst.iov_len > room)
			dst.iov_len = room;
		z->in.next_in = src_len > 0 ? src.iov_base : NULL;
		z->in.avail_in = src_len > UINT32_MAX ? UINT32_MAX : (uInt)src_len;
		z->in.next_out = dst.iov_base;
		z->in.avail_out = (uInt)dst.iov_len;
		int ret = inflate(&z->in, Z_SYNC_FLUSH);
		size_t used = src_len - z->in.avail_in;
		size_t made = dst.iov_len - z->in.avail_out;
		dst.iov_len = made;
		evbuffer_commit_space(out, &dst, 1);
		evbuffer_drain(in, used);
		z->in_compressed += used;
		z->in_plain += made;
		z->in_pending = z->in.avail_out == 0;
		if (ret == Z_STREAM_END) {
			*error_r = "the compressed stream ended";
			return -1;
		}
		if (ret != Z_OK && ret != Z_BUF_ERROR) {
			*error_r = "corrupt compressed input";
			return -1;
		}
		if (z->in_plain > CONN_DEFLATE_EXPAND_FLOOR &&
		    z->in_plain / CONN_DEFLATE_MAX_RATIO > z->in_compressed) {
			*error_r = "compressed input expands too much";
			return -1;
		}
		if (made > 0)
			produced = true;
		else if (used == 0)
			break; /* Z_BUF_ERROR: no progress possible now */
	}
	return produced ? 1 : 0;
}

bool conn_deflate_pending(const struct conn_deflate *z)
{
	return z->in_pending;
}

void conn_deflate_stats(const struct conn_deflate *z, uint64_t *in_compressed_r,
			uint64_t *in_plain_r, uint64_t *out_plain_r, uint64_t *out_compressed_r)
{
	*in_compressed_r = z->in_compressed;
	*in_plain_r = z->in_plain;
	*out_plain_r = z->out_plain;
	*out_compressed_r = z->out_compressed;
}
