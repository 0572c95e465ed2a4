#ifndef POSTERN_CONN_DEFLATE_H
#define POSTERN_CONN_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Raw DEFLATE (RFC 1951, no zlib or gzip header) both ways of one
 * connection, as IMAP COMPRESS=DEFLATE (RFC 4978) wants it. No I/O: the
 * caller hands in evbuffers.
 *
 * Output: every conn_deflate_compress() call ends with a sync flush, so
 * the peer can decompress everything written so far at once (an IDLE
 * notification is never held back in the compressor).
 *
 * Input: conn_deflate_inflate() never produces more than asked for, so
 * what a small compressed input expands to is held only as fast as the
 * protocol consumes it. Past CONN_DEFLATE_EXPAND_FLOOR inflated bytes, a
 * stream that has expanded more than CONN_DEFLATE_MAX_RATIO times overall
 * is refused as a decompression bomb. */

/* Inflated bytes before the expansion ratio is checked. */
#define CONN_DEFLATE_EXPAND_FLOOR (64ull * 1024 * 1024)
/* Overall inflated:compressed ratio refused past the floor (deflate's own
 * maximum is about 1032:1; mail rarely passes 20:1). */
#define CONN_DEFLATE_MAX_RATIO 256
/* Compression level (zlib: 1 fastest .. 9 smallest). */
#define CONN_DEFLATE_LEVEL 6

struct evbuffer;
struct conn_deflate;

/* Both directions' zlib streams. Returns NULL with *error_r (static) when
 * zlib cannot allocate. */
struct conn_deflate *conn_deflate_new(const char **error_r);
/* Release both streams; sets *z to NULL. */
void conn_deflate_free(struct conn_deflate **z);

/* Compress len bytes into out, with a sync flush. Returns 0, or -1 with
 * *error_r (static) on a zlib error (out may hold a partial block). */
int conn_deflate_compress(struct conn_deflate *z, const void *data, size_t len,
			  struct evbuffer *out, const char **error_r);

/* Inflate from in (draining what was consumed) into out until out holds
 * out_limit bytes or nothing more can be produced now. Returns 1 when it
 * produced bytes, 0 when it needs more input (or out is already full), -1
 * with *error_r (static) when the stream is corrupt, ended (the peer may
 * not end it: RFC 4978 has no way back), or expands past the bounds above. */
int conn_deflate_inflate(struct conn_deflate *z, struct evbuffer *in, struct evbuffer *out,
			 size_t out_limit, const char **error_r);

/* Whether inflate may still produce output without more input (its last
 * call filled the space it had). */
bool conn_deflate_pending(const struct conn_deflate *z);

/* Totals so far: compressed bytes consumed and inflated bytes produced;
 * uncompressed bytes given and compressed bytes written. */
void conn_deflate_stats(const struct conn_deflate *z, uint64_t *in_compressed_r,
			uint64_t *in_plain_r, uint64_t *out_plain_r, uint64_t *out_compressed_r);

#endif
