#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/imapd_private.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "store/store.h"

/* STORE / UID STORE (with UNCHANGEDSINCE, CONDSTORE), in bounded slices:
 * every changed message is a file rename and an index transaction.
 * COPY / MOVE and their UID forms (UIDPLUS COPYUID, MOVE's EXPUNGEs). */

struct imapd_store_run {
	struct imap_cmd_store *st;
	struct imapd_iter it;
	bool uid_cmd;
	int mode;
	unsigned flags;
	const char **keywords;
	size_t nkeywords;
	struct imap_seqset modified; /* UNCHANGEDSINCE failures (heap) */
	bool failed;
};

void imapd_store_free(struct imapd_session *s)
{
	struct imapd_store_run *r = s->store_run;
	if (r == NULL)
		return;
	free(r->keywords);
	imap_seqset_deinit(&r->modified);
	free(r);
	s->store_run = NULL;
}

static void imapd_store_one(struct imapd_session *s, struct imapd_store_run *r, size_t idx)
{
	uint32_t uid = s->view[idx];
	const struct store_message *m = imapd_message(s, uid);
	if (m == NULL)
		return;
	if (r->st->has_unchangedsince && m->modseq > r->st->unchangedsince) {
		imap_seqset_add(&r->modified, r->uid_cmd ? uid : (uint32_t)(idx + 1));
		return;
	}
	char *error = NULL;
	uint64_t modseq = 0;
	s->own_change = true;
	int res = store_flags_change(s->folder, uid, r->mode, r->flags, r->keywords, r->nkeywords,
				     &modseq, &error);
	s->own_change = false;
	if (res < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: store uid %u: %s", s->user,
			uid, error);
		free(error);
		r->failed = true;
		return;
	}
	if (res == 0 || (m = imapd_message(s, uid)) == NULL)
		return;
	if (r->st->silent && !s->condstore)
		return;
	struct imap_buf *b = &s->out;
	imap_buf_printf(b, "* %zu FETCH (", idx + 1);
	const char *sep = "";
	if (!r->st->silent) {
		imap_buf_str(b, "FLAGS ");
		imapd_write_flags(s, b, m);
		sep = " ";
	}
	if (r->uid_cmd) {
		imap_buf_printf(b, "%sUID %u", sep, uid);
		sep = " ";
	}
	if (s->condstore)
		imap_buf_printf(b, "%sMODSEQ (%llu)", sep, (unsigned long long)m->modseq);
	imap_buf_str(b, ")\r\n");
}

static void imapd_store_finish(struct imapd_session *s)
{
	struct imapd_store_run *r = s->store_run;
	char *modified = r->modified.count > 0 ? imap_seqset_format(&r->modified) : NULL;
	bool failed = r->failed;
	imapd_store_free(s);
	if (failed)
		imapd_done(s, IMAP_NO, IMAP_CODE_SERVERBUG, NULL, "Some flags were not stored");
	else if (modified != NULL)
		imapd_done(s, IMAP_OK, IMAP_CODE_MODIFIED, modified, "Conditional STORE failed");
	else
		imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "%s completed", s->cmd->def->name);
	free(modified);
}

void imapd_store_resume(struct imapd_session *s)
{
	struct imapd_store_run *r = s->store_run;
	for (unsigned n = 0; n < IMAPD_STORE_SLICE_MESSAGES; n++) {
		if (conn_output_blocked(s->conn)) {
			imapd_flush(s);
			return;
		}
		size_t idx;
		if (!imapd_iter_next(s, &r->it, &idx)) {
			imapd_flush(s);
			imapd_store_finish(s);
			return;
		}
		imapd_store_one(s, r, idx);
		if (s->out.len >= IMAPD_READ_CHUNK)
			imapd_flush(s);
	}
	imapd_flush(s);
	imapd_schedule(s);
}

void imapd_cmd_store(struct imapd_session *s, struct imap_command *cmd)
{
	struct imap_cmd_store *st = &cmd->u.store;
	if (s->readonly) {
		imapd_done(s, IMAP_NO, IMAP_CODE_READ_ONLY, NULL, "Mailbox is read-only");
		return;
	}
	const struct imap_seqset *set;
	bool uid_set;
	if (imapd_resolve_set(s, &st->set, cmd->uid, &set, &uid_set) < 0)
		return;
	struct imapd_store_run *r = xcalloc(1, sizeof(*r));
	char *error = NULL;
	if (store_flags_parse(st->flags, st->flag_count, &r->flags, &r->keywords, &r->nkeywords,
			      &error) < 0) {
		free(r);
		imapd_done(s, IMAP_BAD, IMAP_CODE_NONE, NULL, "%s", error);
		free(error);
		return;
	}
	r->flags &= ~(unsigned)STORE_FLAG_RECENT;
	r->st = st;
	r->uid_cmd = cmd->uid;
	r->mode = st->mode == IMAP_STORE_REPLACE ? 0 : st->mode == IMAP_STORE_ADD ? 1 : -1;
	imap_seqset_init(&r->modified, NULL);
	imapd_iter_init(&r->it, set, uid_set);
	if (st->has_unchangedsince)
		s->condstore = true;
	s->store_run = r;
	s->async = IMAPD_ASYNC_STORE;
	conn_input_pause(s->conn);
	imapd_store_resume(s);
}

static void imapd_format_uids(struct imap_buf *b, const uint32_t *uids, size_t n)
{
	/* in the given order: runs of consecutive UIDs become ranges */
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j > i)
			imap_buf_printf(b, "%s%u:%u", i > 0 ? "," : "", uids[i], uids[j]);
		else
			imap_buf_printf(b, "%s%u", i > 0 ? "," : "", uids[i]);
		i = j + 1;
	}
}

void imapd_cmd_copy(struct imapd_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_copy *c = &cmd->u.copy;
	bool move = cmd->def->id == IMAP_CMD_MOVE;
	if (move && s->readonly) {
		imapd_done(s, IMAP_NO, IMAP_CODE_READ_ONLY, NULL, "Mailbox is read-only");
		return;
	}
	const struct imap_seqset *set;
	bool uid_set;
	if (imapd_resolve_set(s, &cmd->u.copy.set, cmd->uid, &set, &uid_set) < 0)
		return;
	struct imapd_iter it;
	imapd_iter_init(&it, set, uid_set);
	uint32_t *uids = NULL;
	size_t n = 0, idx;
	while (imapd_iter_next(s, &it, &idx)) {
		if (imapd_message(s, s->view[idx]) == NULL)
			continue;
		if ((n & 255) == 0)
			uids = xrealloc(uids, (n + 256) * sizeof(*uids));
		uids[n++] = s->view[idx];
	}
	uint32_t uidvalidity = 0, *src = NULL, *dst = NULL;
	size_t copied = 0;
	bool over_quota = false;
	char *error = NULL;
	int r = 1;
	if (n > 0)
		r = store_copy(s->folder, uids, n, c->mailbox.name, move, &uidvalidity, &src, &dst,
			       &copied, &over_quota, &error);
	free(uids);
	if (r == 0) {
		imapd_done(s, IMAP_NO, IMAP_CODE_TRYCREATE, NULL, "No such mailbox");
	} else if (r < 0) {
		if (over_quota) {
			imapd_done(s, IMAP_NO, IMAP_CODE_OVERQUOTA, NULL, "Over quota");
		} else {
			log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: %s: %s", s->user,
				cmd->def->name, error);
			imapd_done(s, IMAP_NO, IMAP_CODE_SERVERBUG, NULL, "%s failed",
				   cmd->def->name);
		}
	} else {
		struct imap_buf args;
		imap_buf_init(&args);
		if (copied > 0) {
			imap_buf_printf(&args, "%u ", uidvalidity);
			imapd_format_uids(&args, src, copied);
			imap_buf_str(&args, " ");
			imapd_format_uids(&args, dst, copied);
		}
		if (move) {
			if (copied > 0) {
				imap_write_status(&s->out, NULL, IMAP_OK, IMAP_CODE_COPYUID,
						  args.data, "Moved");
				imapd_flush(s);
			}
			imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "%s completed",
				   cmd->def->name);
		} else {
			imapd_done(s, IMAP_OK, copied > 0 ? IMAP_CODE_COPYUID : IMAP_CODE_NONE,
				   copied > 0 ? args.data : NULL, "%s completed", cmd->def->name);
		}
		imap_buf_deinit(&args);
	}
	free(error);
	free(src);
	free(dst);
}
