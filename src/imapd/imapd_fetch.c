#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "imapd/imapd_private.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mail/mail_decode.h"
#include "net/conn.h"
#include "store/store.h"

/* FETCH and UID FETCH, in bounded slices.
 *
 * Each message's answer is prepared as a list of pieces: text (flags,
 * ENVELOPE, literal headers "{n}\r\n", small sections such as
 * HEADER.FIELDS) and byte ranges of the message file, copied as they are
 * or decoded (BINARY). Pieces are written while the connection's output
 * queue stays below its high watermark; the rest waits for
 * output_pressure(false). At most IMAPD_FETCH_SLICE_MESSAGES messages are
 * done per event-loop turn, so memory stays at one message's text plus one
 * read chunk, whatever the client asks. */

enum imapd_piece_kind { PIECE_TEXT, PIECE_FILE, PIECE_DECODED };

struct imapd_piece {
	enum imapd_piece_kind kind;
	size_t tstart, tend;	/* TEXT: range of f->text */
	uint64_t off, len;	/* FILE, DECODED: raw bytes of the file */
	enum mail_encoding enc; /* DECODED */
	uint64_t skip, out;	/* DECODED: decoded bytes to drop, then to send */
};

struct imapd_fetch {
	struct imap_cmd_fetch *f;
	const struct imap_seqset *set;
	struct imapd_iter it;
	bool uid_cmd;
	bool set_seen;
	bool want_flags, want_uid, want_modseq;
	unsigned expunged;

	/* the message being sent */
	bool in_message;
	uint32_t uid;
	int fd;
	struct imap_buf text;
	struct imapd_piece *pieces;
	unsigned npieces, cap, cur;
	size_t text_mark; /* start of text not yet in a piece */
	uint64_t done;	  /* raw bytes of the current piece sent */
	struct mail_decoder dec;
	uint64_t dec_seen, dec_sent;
	char *envelope, *body, *bodystructure;
	bool imap_loaded;
};

void imapd_fetch_free(struct imapd_session *s)
{
	struct imapd_fetch *f = s->fetch;
	if (f == NULL)
		return;
	if (f->fd >= 0)
		close(f->fd);
	imap_buf_deinit(&f->text);
	free(f->pieces);
	free(f->envelope);
	free(f->body);
	free(f->bodystructure);
	free(f);
	s->fetch = NULL;
}

static struct imapd_piece *imapd_piece_new(struct imapd_fetch *f, enum imapd_piece_kind kind)
{
	if (f->npieces == f->cap) {
		f->cap = f->cap * 2 + 8;
		f->pieces = xrealloc(f->pieces, f->cap * sizeof(*f->pieces));
	}
	struct imapd_piece *p = &f->pieces[f->npieces++];
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	return p;
}

/* close the text written since the last piece into a TEXT piece */
static void imapd_piece_text(struct imapd_fetch *f)
{
	if (f->text.len == f->text_mark)
		return;
	struct imapd_piece *p = imapd_piece_new(f, PIECE_TEXT);
	p->tstart = f->text_mark;
	p->tend = f->text.len;
	f->text_mark = f->text.len;
}

static void imapd_piece_file(struct imapd_fetch *f, uint64_t off, uint64_t len)
{
	imapd_piece_text(f);
	if (len == 0)
		return;
	struct imapd_piece *p = imapd_piece_new(f, PIECE_FILE);
	p->off = off;
	p->len = len;
}

/* "1.2.3" of an item's part path */
static void imapd_section_path(const struct imap_fetch_item *item, char *buf, size_t size)
{
	size_t o = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < item->part_count && o < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s%u", i > 0 ? "." : "", item->parts[i]);
}

/* The partial window <offset.count> of a section of size bytes. */
static void imapd_partial(const struct imap_fetch_item *item, uint64_t size, uint64_t *skip_r,
			  uint64_t *len_r)
{
	if (!item->has_partial) {
		*skip_r = 0;
		*len_r = size;
		return;
	}
	uint64_t skip = item->partial_offset < size ? item->partial_offset : size;
	uint64_t len = size - skip;
	if (len > item->partial_count)
		len = item->partial_count;
	*skip_r = skip;
	*len_r = len;
}

static void imapd_item_name(struct imapd_fetch *f, const struct imap_fetch_item *item,
			    const char *name)
{
	imap_buf_str(&f->text, name);
	if (item->has_partial)
		imap_buf_printf(&f->text, "<%u>", item->partial_offset);
	imap_buf_str(&f->text, " ");
}

static bool imapd_field_listed(const struct imap_fetch_item *item, const char *name, size_t len)
{
	for (unsigned i = 0; i < item->field_count; i++)
		if (strlen(item->fields[i]) == len && strncasecmp(item->fields[i], name, len) == 0)
			return true;
	return false;
}

/* HEADER.FIELDS (.NOT): the header's fields kept or dropped by name, then
 * the blank line. */
static char *imapd_filter_header(const struct imap_fetch_item *item, const char *hdr, size_t len,
				 size_t *out_len_r)
{
	bool keep_listed = item->text == IMAP_SECTION_HEADER_FIELDS;
	char *out = xmalloc(len + 3);
	size_t o = 0;
	size_t i = 0;
	bool keep = false;
	while (i < len) {
		size_t e = i;
		while (e < len && hdr[e] != '\n')
			e++;
		size_t next = e < len ? e + 1 : e;
		size_t l = e - i;
		if (l > 0 && hdr[i + l - 1] == '\r')
			l--;
		if (l == 0)
			break; /* the blank line ending the header */
		if (hdr[i] != ' ' && hdr[i] != '\t') {
			size_t c = i;
			while (c < i + l && hdr[c] != ':')
				c++;
			size_t nl = c - i;
			while (nl > 0 && (hdr[i + nl - 1] == ' ' || hdr[i + nl - 1] == '\t'))
				nl--;
			keep = c < i + l && imapd_field_listed(item, hdr + i, nl) == keep_listed;
		}
		if (keep) {
			memcpy(out + o, hdr + i, l);
			o += l;
			out[o++] = '\r';
			out[o++] = '\n';
		}
		i = next;
	}
	out[o++] = '\r';
	out[o++] = '\n';
	*out_len_r = o;
	return out;
}

/* The Content-Transfer-Encoding of a part from its MIME header: 1 with
 * *enc_r, 0 for an encoding BINARY cannot undo. */
static int imapd_part_encoding(const char *hdr, size_t len, enum mail_encoding *enc_r)
{
	static const char name[] = "content-transfer-encoding:";
	*enc_r = MAIL_ENC_IDENTITY;
	for (size_t i = 0; i < len;) {
		if (len - i >= sizeof(name) - 1 &&
		    strncasecmp(hdr + i, name, sizeof(name) - 1) == 0) {
			size_t v = i + sizeof(name) - 1;
			while (v < len && (hdr[v] == ' ' || hdr[v] == '\t'))
				v++;
			size_t e = v;
			while (e < len && !isspace((unsigned char)hdr[e]) && hdr[e] != ';')
				e++;
			char value[32];
			size_t vl = e - v < sizeof(value) - 1 ? e - v : sizeof(value) - 1;
			memcpy(value, hdr + v, vl);
			value[vl] = '\0';
			if (strcasecmp(value, "base64") == 0)
				*enc_r = MAIL_ENC_BASE64;
			else if (strcasecmp(value, "quoted-printable") == 0)
				*enc_r = MAIL_ENC_QP;
			else if (strcasecmp(value, "7bit") != 0 && strcasecmp(value, "8bit") != 0 &&
				 strcasecmp(value, "binary") != 0 && vl > 0)
				return 0;
			return 1;
		}
		while (i < len && hdr[i] != '\n')
			i++;
		i++;
	}
	return 1;
}

/* Read len bytes at off (the message's descriptor); a file cut short
 * reads as spaces, so a literal already announced keeps its length. */
static int imapd_read(struct imapd_fetch *f, uint64_t off, char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(f->fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			memset(buf + got, ' ', len - got);
			break;
		}
		got += (size_t)n;
	}
	return 0;
}

/* Decoded size of a range, and whether it holds NUL (literal8). */
static int imapd_decoded_size(struct imapd_fetch *f, uint64_t off, uint64_t len,
			      enum mail_encoding enc, uint64_t *size_r, bool *nul_r)
{
	char *in = xmalloc(IMAPD_READ_CHUNK);
	char *out = xmalloc(IMAPD_READ_CHUNK + 8);
	struct mail_decoder dec;
	mail_decoder_init(&dec, enc);
	uint64_t size = 0;
	bool nul = false;
	int ret = 0;
	for (uint64_t done = 0; done < len;) {
		size_t n = len - done < IMAPD_READ_CHUNK ? (size_t)(len - done) : IMAPD_READ_CHUNK;
		if (imapd_read(f, off + done, in, n) < 0) {
			ret = -1;
			break;
		}
		size_t o = mail_decoder_feed(&dec, in, n, out);
		nul = nul || memchr(out, '\0', o) != NULL;
		size += o;
		done += n;
	}
	size_t o = mail_decoder_finish(&dec, out);
	nul = nul || memchr(out, '\0', o) != NULL;
	size += o;
	free(in);
	free(out);
	*size_r = size;
	*nul_r = nul;
	return ret;
}

static int imapd_open_message(struct imapd_session *s, struct imapd_fetch *f)
{
	if (f->fd >= 0)
		return 1;
	char *error = NULL;
	int r = store_message_open(s->folder, f->uid, &f->fd, &error);
	if (r < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: uid %u: %s", s->user, f->uid,
			error);
		free(error);
	}
	return r;
}

/* One section item (BODY[...], BINARY[...], BINARY.SIZE[...], RFC822*).
 * Returns 1, 0 when the message is gone, -1 on an error answered with NO
 * (*code_r). */
static int imapd_fetch_section(struct imapd_session *s, struct imapd_fetch *f,
			       const struct imap_fetch_item *item, const char *name,
			       enum imap_resp_code *code_r)
{
	char path[IMAP_MAX_SECTION_PARTS * 11 + 1];
	imapd_section_path(item, path, sizeof(path));
	enum store_section_part what = STORE_SECTION_ALL;
	switch (item->text) {
	case IMAP_SECTION_ALL:
		what = STORE_SECTION_ALL;
		break;
	case IMAP_SECTION_HEADER:
	case IMAP_SECTION_HEADER_FIELDS:
	case IMAP_SECTION_HEADER_FIELDS_NOT:
		what = STORE_SECTION_HEADER;
		break;
	case IMAP_SECTION_TEXT:
		what = STORE_SECTION_TEXT;
		break;
	case IMAP_SECTION_MIME:
		what = STORE_SECTION_MIME;
		break;
	}
	uint64_t off = 0, size = 0;
	char *error = NULL;
	int r = store_message_section(s->folder, f->uid, path, what, &off, &size, NULL, &error);
	if (r < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: uid %u section %s: %s",
			s->user, f->uid, path, error);
		free(error);
		*code_r = IMAP_CODE_SERVERBUG;
		return -1;
	}
	if (r == 0) {
		/* no such part */
		imapd_item_name(f, item, name);
		imap_buf_str(&f->text, item->kind == IMAP_FETCH_BINARY_SIZE ? "0" : "NIL");
		return 1;
	}
	r = imapd_open_message(s, f);
	if (r <= 0) {
		*code_r = IMAP_CODE_SERVERBUG;
		return r;
	}
	bool binary = item->kind == IMAP_FETCH_BINARY || item->kind == IMAP_FETCH_BINARY_SIZE;
	if (binary && item->part_count > 0) {
		uint64_t hoff, hsize;
		enum mail_encoding enc = MAIL_ENC_IDENTITY;
		if (store_message_section(s->folder, f->uid, path, STORE_SECTION_MIME, &hoff,
					  &hsize, NULL, &error) > 0) {
			size_t hl =
			    hsize < IMAPD_HEADER_READ_MAX ? (size_t)hsize : IMAPD_HEADER_READ_MAX;
			char *hdr = xmalloc(hl + 1);
			int ok = imapd_read(f, hoff, hdr, hl) == 0 &&
				 imapd_part_encoding(hdr, hl, &enc) > 0;
			free(hdr);
			if (!ok) {
				*code_r = IMAP_CODE_UNKNOWN_CTE;
				return -1;
			}
		}
		free(error);
		error = NULL;
		uint64_t dsize;
		bool nul;
		if (imapd_decoded_size(f, off, size, enc, &dsize, &nul) < 0) {
			*code_r = IMAP_CODE_SERVERBUG;
			return -1;
		}
		imapd_item_name(f, item, name);
		if (item->kind == IMAP_FETCH_BINARY_SIZE) {
			imap_buf_printf(&f->text, "%llu", (unsigned long long)dsize);
			return 1;
		}
		uint64_t skip, len;
		imapd_partial(item, dsize, &skip, &len);
		imap_buf_printf(&f->text, "%s{%llu}\r\n", nul ? "~" : "", (unsigned long long)len);
		imapd_piece_text(f);
		if (len > 0) {
			struct imapd_piece *p = imapd_piece_new(f, PIECE_DECODED);
			p->off = off;
			p->len = size;
			p->enc = enc;
			p->skip = skip;
			p->out = len;
		}
		return 1;
	}
	if (item->kind == IMAP_FETCH_BINARY_SIZE) {
		imapd_item_name(f, item, name);
		imap_buf_printf(&f->text, "%llu", (unsigned long long)size);
		return 1;
	}
	if (item->text == IMAP_SECTION_HEADER_FIELDS ||
	    item->text == IMAP_SECTION_HEADER_FIELDS_NOT) {
		size_t hl = size < IMAPD_HEADER_READ_MAX ? (size_t)size : IMAPD_HEADER_READ_MAX;
		char *hdr = xmalloc(hl + 1);
		if (imapd_read(f, off, hdr, hl) < 0) {
			free(hdr);
			*code_r = IMAP_CODE_SERVERBUG;
			return -1;
		}
		size_t flen;
		char *filtered = imapd_filter_header(item, hdr, hl, &flen);
		free(hdr);
		uint64_t skip, len;
		imapd_partial(item, flen, &skip, &len);
		imapd_item_name(f, item, name);
		imap_buf_printf(&f->text, "{%llu}\r\n", (unsigned long long)len);
		imap_buf_append(&f->text, filtered + skip, (size_t)len);
		free(filtered);
		return 1;
	}
	uint64_t skip, len;
	imapd_partial(item, size, &skip, &len);
	imapd_item_name(f, item, name);
	imap_buf_printf(&f->text, "{%llu}\r\n", (unsigned long long)len);
	imapd_piece_file(f, off + skip, len);
	return 1;
}

static int imapd_load_imap(struct imapd_session *s, struct imapd_fetch *f)
{
	if (f->imap_loaded)
		return 1;
	char *error = NULL;
	int r = store_message_imap(s->folder, f->uid, &f->envelope, &f->body, &f->bodystructure,
				   &error);
	if (r < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: uid %u: %s", s->user, f->uid,
			error);
		free(error);
	}
	f->imap_loaded = r > 0;
	return r;
}

static void imapd_message_reset(struct imapd_fetch *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	imap_buf_clear(&f->text);
	f->npieces = f->cur = 0;
	f->text_mark = 0;
	f->done = 0;
	free(f->envelope);
	free(f->body);
	free(f->bodystructure);
	f->envelope = f->body = f->bodystructure = NULL;
	f->imap_loaded = false;
	f->in_message = false;
}

/* Prepare the answer for view index idx. Returns 1 (pieces ready), 0 to
 * skip the message, -1 on an error (*code_r). */
static int imapd_fetch_prepare(struct imapd_session *s, struct imapd_fetch *f, size_t idx,
			       enum imap_resp_code *code_r)
{
	imapd_message_reset(f);
	f->uid = s->view[idx];
	const struct store_message *m = imapd_message(s, f->uid);
	if (m == NULL) {
		f->expunged++;
		return 0;
	}
	if (f->f->has_changedsince && m->modseq <= f->f->changedsince)
		return 0;
	bool seen_now = false;
	if (f->set_seen && (m->flags & STORE_FLAG_SEEN) == 0) {
		char *error = NULL;
		s->own_change = true;
		int r = store_flags_update(s->folder, f->uid, STORE_FLAG_SEEN, 0, &error);
		s->own_change = false;
		if (r < 0) {
			log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "user=%s: uid %u \\Seen: %s",
				s->user, f->uid, error);
			free(error);
		}
		seen_now = r > 0;
		m = imapd_message(s, f->uid);
		if (m == NULL) {
			f->expunged++;
			return 0;
		}
	}
	struct imap_buf *t = &f->text;
	imap_buf_printf(t, "* %zu FETCH (", idx + 1);
	const char *sep = "";
	bool sent_flags = false, sent_uid = false, sent_modseq = false;
	for (unsigned i = 0; i < f->f->count; i++) {
		const struct imap_fetch_item *item = &f->f->items[i];
		imap_buf_str(t, sep);
		sep = " ";
		int r = 1;
		switch (item->kind) {
		case IMAP_FETCH_FLAGS:
			imap_buf_str(t, "FLAGS ");
			imapd_write_flags(s, t, m);
			sent_flags = true;
			break;
		case IMAP_FETCH_UID:
			imap_buf_printf(t, "UID %u", m->uid);
			sent_uid = true;
			break;
		case IMAP_FETCH_INTERNALDATE:
			imap_buf_str(t, "INTERNALDATE ");
			imap_write_datetime(t, m->internal_date, 0);
			break;
		case IMAP_FETCH_RFC822_SIZE:
			imap_buf_printf(t, "RFC822.SIZE %llu", (unsigned long long)m->size);
			break;
		case IMAP_FETCH_MODSEQ:
			imap_buf_printf(t, "MODSEQ (%llu)", (unsigned long long)m->modseq);
			sent_modseq = true;
			break;
		case IMAP_FETCH_ENVELOPE:
		case IMAP_FETCH_BODY:
		case IMAP_FETCH_BODYSTRUCTURE:
			r = imapd_load_imap(s, f);
			if (r <= 0)
				break;
			if (item->kind == IMAP_FETCH_ENVELOPE)
				imap_buf_printf(t, "ENVELOPE %s", f->envelope);
			else if (item->kind == IMAP_FETCH_BODY)
				imap_buf_printf(t, "BODY %s", f->body);
			else
				imap_buf_printf(t, "BODYSTRUCTURE %s", f->bodystructure);
			break;
		case IMAP_FETCH_EMAILID:
			/* the store's guid: kept by COPY and MOVE (RFC 8474 5.1) */
			imap_buf_printf(t, "EMAILID (M%s)", m->guid);
			break;
		case IMAP_FETCH_THREADID:
			/* no thread identifiers are kept: NIL, as RFC 8474 5.2
			 * prescribes for such servers */
			imap_buf_str(t, "THREADID NIL");
			break;
		case IMAP_FETCH_SAVEDATE:
			imap_buf_str(t, "SAVEDATE ");
			imap_write_datetime(t, m->save_date, 0);
			break;
		case IMAP_FETCH_RFC822:
		case IMAP_FETCH_RFC822_HEADER:
		case IMAP_FETCH_RFC822_TEXT: {
			struct imap_fetch_item sec = *item;
			sec.part_count = 0;
			sec.has_partial = false;
			sec.text = item->kind == IMAP_FETCH_RFC822	    ? IMAP_SECTION_ALL
				   : item->kind == IMAP_FETCH_RFC822_HEADER ? IMAP_SECTION_HEADER
									    : IMAP_SECTION_TEXT;
			sec.kind = IMAP_FETCH_BODY_SECTION;
			const char *name = item->kind == IMAP_FETCH_RFC822 ? "RFC822"
					   : item->kind == IMAP_FETCH_RFC822_HEADER
					       ? "RFC822.HEADER"
					       : "RFC822.TEXT";
			r = imapd_fetch_section(s, f, &sec, name, code_r);
			break;
		}
		case IMAP_FETCH_BODY_SECTION:
		case IMAP_FETCH_BINARY:
		case IMAP_FETCH_BINARY_SIZE:
			r = imapd_fetch_section(s, f, item, item->name, code_r);
			break;
		}
		if (r == 0) {
			f->expunged++;
			imapd_message_reset(f);
			return 0;
		}
		if (r < 0) {
			imapd_message_reset(f);
			return -1;
		}
	}
	if (f->want_uid && !sent_uid)
		imap_buf_printf(t, " UID %u", m->uid);
	if ((seen_now || f->want_flags) && !sent_flags) {
		imap_buf_str(t, " FLAGS ");
		imapd_write_flags(s, t, m);
	}
	if (f->want_modseq && !sent_modseq)
		imap_buf_printf(t, " MODSEQ (%llu)", (unsigned long long)m->modseq);
	imap_buf_str(t, ")\r\n");
	imapd_piece_text(f);
	f->in_message = true;
	return 1;
}

/* Write the prepared pieces. Returns 1 when the message is sent, 0 when
 * the output queue is full, -1 on a read error (the connection closes:
 * a literal under way cannot be ended honestly otherwise). */
static int imapd_fetch_emit(struct imapd_session *s, struct imapd_fetch *f)
{
	static char in[IMAPD_READ_CHUNK];
	static char out[IMAPD_READ_CHUNK + 8];
	while (f->cur < f->npieces) {
		if (conn_output_blocked(s->conn))
			return 0;
		struct imapd_piece *p = &f->pieces[f->cur];
		if (p->kind == PIECE_TEXT) {
			conn_write(s->conn, f->text.data + p->tstart, p->tend - p->tstart);
			f->cur++;
			continue;
		}
		uint64_t left = p->len - f->done;
		size_t n = left < IMAPD_READ_CHUNK ? (size_t)left : IMAPD_READ_CHUNK;
		if (p->kind == PIECE_DECODED && f->done == 0) {
			mail_decoder_init(&f->dec, p->enc);
			f->dec_seen = f->dec_sent = 0;
		}
		if (n > 0 && imapd_read(f, p->off + f->done, in, n) < 0) {
			log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: reading uid %u: %s",
				s->user, f->uid, strerror(errno));
			return -1;
		}
		f->done += n;
		if (p->kind == PIECE_FILE) {
			conn_write(s->conn, in, n);
		} else {
			size_t o = mail_decoder_feed(&f->dec, in, n, out);
			if (f->done == p->len)
				o += mail_decoder_finish(&f->dec, out + o);
			/* the partial window over the decoded bytes */
			size_t from = 0;
			if (f->dec_seen < p->skip)
				from =
				    p->skip - f->dec_seen < o ? (size_t)(p->skip - f->dec_seen) : o;
			f->dec_seen += o;
			size_t want = o - from;
			if (want > p->out - f->dec_sent)
				want = (size_t)(p->out - f->dec_sent);
			conn_write(s->conn, out + from, want);
			f->dec_sent += want;
			if (f->done == p->len && f->dec_sent < p->out) {
				/* the size pass and this one disagree: keep the length */
				memset(out, ' ', sizeof(out));
				while (f->dec_sent < p->out) {
					size_t pad = p->out - f->dec_sent < sizeof(out)
							 ? (size_t)(p->out - f->dec_sent)
							 : sizeof(out);
					conn_write(s->conn, out, pad);
					f->dec_sent += pad;
				}
			}
		}
		if (f->done == p->len) {
			f->cur++;
			f->done = 0;
		}
	}
	return 1;
}

static void imapd_fetch_finish(struct imapd_session *s)
{
	struct imapd_fetch *f = s->fetch;
	unsigned expunged = f->expunged;
	bool uid = f->uid_cmd;
	imapd_fetch_free(s);
	if (expunged > 0 && !uid)
		imapd_done(s, IMAP_NO, IMAP_CODE_EXPUNGEISSUED, NULL,
			   "Some messages were expunged meanwhile");
	else
		imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "%s completed", s->cmd->def->name);
}

void imapd_fetch_resume(struct imapd_session *s)
{
	struct imapd_fetch *f = s->fetch;
	unsigned messages = 0;
	while (f != NULL) {
		if (f->in_message) {
			int r = imapd_fetch_emit(s, f);
			if (r < 0) {
				imapd_fetch_free(s);
				imapd_close(s);
				return;
			}
			if (r == 0)
				return; /* output_pressure(false) brings us back */
			imapd_message_reset(f);
		}
		if (conn_output_blocked(s->conn))
			return;
		if (messages >= IMAPD_FETCH_SLICE_MESSAGES) {
			imapd_schedule(s);
			return;
		}
		size_t idx;
		if (!imapd_iter_next(s, &f->it, &idx)) {
			imapd_fetch_finish(s);
			return;
		}
		messages++;
		enum imap_resp_code code = IMAP_CODE_SERVERBUG;
		if (imapd_fetch_prepare(s, f, idx, &code) < 0) {
			imapd_fetch_free(s);
			imapd_done(s, IMAP_NO, code, NULL,
				   code == IMAP_CODE_UNKNOWN_CTE
				       ? "Unknown Content-Transfer-Encoding"
				       : "Cannot read the message");
			return;
		}
	}
}

void imapd_cmd_fetch(struct imapd_session *s, struct imap_command *cmd)
{
	struct imap_cmd_fetch *fc = &cmd->u.fetch;
	if (fc->vanished && !s->qresync) {
		imapd_done(s, IMAP_BAD, IMAP_CODE_CLIENTBUG, NULL, "VANISHED needs QRESYNC");
		return;
	}
	const struct imap_seqset *set;
	bool uid_set;
	if (imapd_resolve_set(s, &fc->set, cmd->uid, &set, &uid_set) < 0)
		return;
	if (fc->vanished) {
		/* UID FETCH ... (CHANGEDSINCE m VANISHED): expunged since m */
		uint32_t *uids = NULL;
		size_t n = 0, k = 0;
		char *error = NULL;
		if (store_folder_expunged_since(s->folder, fc->changedsince, &uids, &n, &error) < 0)
			free(error);
		for (size_t i = 0; i < n; i++)
			if (imap_seqset_contains(set, uids[i]))
				uids[k++] = uids[i];
		imapd_write_vanished(s, uids, k, true);
		imapd_flush(s);
		free(uids);
	}
	struct imapd_fetch *f = xcalloc(1, sizeof(*f));
	f->f = fc;
	f->set = set;
	f->fd = -1;
	f->uid_cmd = cmd->uid;
	f->want_uid = cmd->uid;
	imap_buf_init(&f->text);
	imapd_iter_init(&f->it, set, uid_set);
	for (unsigned i = 0; i < fc->count; i++) {
		const struct imap_fetch_item *item = &fc->items[i];
		bool sets_seen =
		    item->kind == IMAP_FETCH_RFC822 || item->kind == IMAP_FETCH_RFC822_TEXT ||
		    ((item->kind == IMAP_FETCH_BODY_SECTION || item->kind == IMAP_FETCH_BINARY) &&
		     !item->peek);
		if (sets_seen && !s->readonly)
			f->set_seen = true;
		if (item->kind == IMAP_FETCH_MODSEQ)
			s->condstore = true;
	}
	if (fc->has_changedsince) {
		s->condstore = true;
		f->want_modseq = true;
	}
	s->fetch = f;
	s->async = IMAPD_ASYNC_FETCH;
	conn_input_pause(s->conn);
	imapd_fetch_resume(s);
}
