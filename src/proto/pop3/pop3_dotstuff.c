#include "proto/pop3/pop3_dotstuff.h"

void pop3_dotstuff_init(struct pop3_dotstuff *d, long max_body_lines,
			void (*out)(void *ctx, const char *data, size_t len), void *ctx)
{
	d->line_start = true;
	d->prev_cr = false;
	d->in_body = false;
	d->header_empty = true;
	d->limit_lines = max_body_lines >= 0;
	d->body_lines_left = max_body_lines >= 0 ? (unsigned long)max_body_lines : 0;
	d->done = false;
	d->out = out;
	d->ctx = ctx;
}

/* one line ended (its CRLF has just been written) */
static void pop3_dotstuff_line_end(struct pop3_dotstuff *d)
{
	if (!d->in_body) {
		if (d->header_empty)
			d->in_body = true;
		d->header_empty = true;
		if (d->in_body && d->limit_lines && d->body_lines_left == 0)
			d->done = true;
	} else if (d->limit_lines) {
		if (d->body_lines_left > 0)
			d->body_lines_left--;
		if (d->body_lines_left == 0)
			d->done = true;
	}
	d->line_start = true;
}

void pop3_dotstuff_feed(struct pop3_dotstuff *d, const char *data, size_t len)
{
	size_t run = 0; /* start of bytes to pass through unchanged */
	for (size_t i = 0; i < len && !d->done; i++) {
		char c = data[i];
		if (d->prev_cr) {
			d->prev_cr = false;
			if (c == '\n') {
				/* CRLF: the CR was held back; write both */
				d->out(d->ctx, "\r\n", 2);
				run = i + 1;
				pop3_dotstuff_line_end(d);
				continue;
			}
			/* a bare CR ends a line too */
			d->out(d->ctx, "\r\n", 2);
			pop3_dotstuff_line_end(d);
			if (d->done)
				return;
			run = i;
		}
		if (c == '\r' || c == '\n') {
			if (i > run)
				d->out(d->ctx, data + run, i - run);
			if (c == '\r') {
				d->prev_cr = true;
				run = i + 1;
				continue;
			}
			d->out(d->ctx, "\r\n", 2);
			run = i + 1;
			pop3_dotstuff_line_end(d);
			continue;
		}
		if (d->line_start) {
			d->line_start = false;
			if (c == '.') {
				if (i > run)
					d->out(d->ctx, data + run, i - run);
				d->out(d->ctx, ".", 1);
				run = i;
			}
		}
		if (!d->in_body)
			d->header_empty = false;
	}
	if (!d->done && !d->prev_cr && len > run)
		d->out(d->ctx, data + run, len - run);
}

bool pop3_dotstuff_done(const struct pop3_dotstuff *d)
{
	return d->done;
}

void pop3_dotstuff_finish(struct pop3_dotstuff *d)
{
	if (d->prev_cr) {
		d->prev_cr = false;
		d->out(d->ctx, "\r\n", 2);
		d->line_start = true;
	}
	if (!d->line_start && !d->done)
		d->out(d->ctx, "\r\n", 2);
	d->out(d->ctx, ".\r\n", 3);
}
