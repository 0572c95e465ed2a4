#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/imapd_private.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "store/store.h"

/* APPEND (MULTIAPPEND, UIDPLUS APPENDUID, APPENDLIMIT, literal8 under
 * BINARY). Each message literal (at most APPENDLIMIT bytes,
 * max-message-size) goes to a tmp/ file of the user's store as its bytes
 * arrive, so memory stays bounded whatever the size; once the command is
 * complete each file is committed into the folder (fsynced before the
 * answer). MULTIAPPEND is all or nothing: when one message fails, those
 * already committed are expunged again before the NO. */

void imapd_append_stream_begin(struct imapd_session *s, size_t size)
{
	struct store_append *a = NULL;
	bool over_quota = false;
	char *error = NULL;
	if (s->append_error == NULL &&
	    store_append_begin(imapd_store(s), NULL, size, &a, &over_quota, &error) < 0) {
		/* the bytes are still read (and dropped); the command fails */
		s->append_error = error;
		s->append_over_quota = over_quota;
		a = NULL;
	}
	s->appends = xrealloc(s->appends, (s->nappends + 1) * sizeof(*s->appends));
	s->appends[s->nappends++] = a;
	s->append_streaming = size > 0;
}

void imapd_append_stream_write(struct imapd_session *s, const void *data, size_t len)
{
	struct store_append *a = s->nappends > 0 ? s->appends[s->nappends - 1] : NULL;
	if (a == NULL)
		return;
	char *error = NULL;
	if (store_append_write(a, data, len, &error) < 0) {
		if (s->append_error == NULL)
			s->append_error = error;
		else
			free(error);
		store_append_abort(&s->appends[s->nappends - 1]);
	}
}

void imapd_append_stream_clear(struct imapd_session *s)
{
	for (unsigned i = 0; i < s->nappends; i++)
		store_append_abort(&s->appends[i]);
	free(s->appends);
	s->appends = NULL;
	s->nappends = 0;
	s->append_streaming = false;
	s->append_over_quota = false;
	free(s->append_error);
	s->append_error = NULL;
}

/* MULTIAPPEND failed part-way: take back what was committed. */
static void imapd_append_undo(struct imapd_session *s, const char *name, const uint32_t *uids,
			      unsigned n)
{
	if (n == 0)
		return;
	struct store_folder *folder = NULL;
	char *error = NULL;
	if (store_folder_open(imapd_store(s), name, &folder, &error) <= 0 ||
	    store_expunge(folder, uids, n, &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn),
			"user=%s: taking back a failed APPEND in %s: %s", s->user, name,
			error != NULL ? error : "folder gone");
		free(error);
	}
	store_folder_close(&folder);
}

/* The folder's UIDVALIDITY, or 0 when it does not exist. */
static int imapd_append_target(struct imapd_session *s, const char *name, uint32_t *uidvalidity_r)
{
	struct store_folder_info *list;
	size_t n;
	char *error = NULL;
	if (store_folder_list(imapd_store(s), &list, &n, &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: folder list: %s", s->user,
			error);
		free(error);
		return -1;
	}
	*uidvalidity_r = 0;
	for (size_t i = 0; i < n; i++)
		if (list[i].exists && strcmp(list[i].name, name) == 0)
			*uidvalidity_r = list[i].uidvalidity;
	store_folder_list_free(&list, n);
	return 0;
}

void imapd_cmd_append(struct imapd_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_append *ap = &cmd->u.append;
	const char *name = ap->mailbox.name;
	uint32_t uidvalidity;
	if (imapd_append_target(s, name, &uidvalidity) < 0) {
		imapd_done(s, IMAP_NO, IMAP_CODE_SERVERBUG, NULL, "Cannot read the folder list");
		return;
	}
	if (uidvalidity == 0) {
		imapd_done(s, IMAP_NO, IMAP_CODE_TRYCREATE, NULL, "No such mailbox");
		return;
	}
	uint32_t *uids = xcalloc(ap->count + 1, sizeof(*uids));
	for (unsigned i = 0; i < ap->count; i++) {
		const struct imap_append_message *m = &ap->messages[i];
		struct store_append *a = NULL;
		bool over_quota = false;
		char *error = NULL;
		int r;
		if (m->streamed) {
			if (m->stream_index < s->nappends) {
				a = s->appends[m->stream_index];
				s->appends[m->stream_index] = NULL;
			}
			if (a == NULL) {
				over_quota = s->append_over_quota;
				error = xstrdup(s->append_error != NULL ? s->append_error
									: "message not received");
				r = -1;
			} else {
				r = store_append_set_folder(a, name, &error);
				if (r == 0)
					error = xstrdup("the folder went away");
			}
		} else {
			r = store_append_begin(imapd_store(s), name, m->size, &a, &over_quota,
					       &error);
			if (r > 0 && m->size > 0)
				r = store_append_write(a, m->data, m->size, &error);
		}
		if (r > 0)
			r = store_append_commit(&a, m->flags, m->flag_count,
						m->has_date ? m->date.time : 0, &uids[i],
						&over_quota, &error);
		else
			store_append_abort(&a);
		if (r <= 0) {
			imapd_append_undo(s, name, uids, i);
			if (!over_quota)
				log_msg(LOG_LEVEL_ERROR, conn_log(s->conn),
					"user=%s: append to %s: %s", s->user, name, error);
			if (over_quota)
				imapd_done(s, IMAP_NO, IMAP_CODE_OVERQUOTA, NULL, "Over quota");
			else if (error != NULL && strstr(error, "flag") != NULL)
				imapd_done(s, IMAP_BAD, IMAP_CODE_NONE, NULL, "%s", error);
			else
				imapd_done(s, IMAP_NO, IMAP_CODE_SERVERBUG, NULL, "APPEND failed");
			free(error);
			free(uids);
			return;
		}
	}
	struct imap_buf args;
	imap_buf_init(&args);
	imap_buf_printf(&args, "%u ", uidvalidity);
	for (unsigned i = 0; i < ap->count;) {
		unsigned j = i;
		while (j + 1 < ap->count && uids[j + 1] == uids[j] + 1)
			j++;
		if (j > i)
			imap_buf_printf(&args, "%s%u:%u", i > 0 ? "," : "", uids[i], uids[j]);
		else
			imap_buf_printf(&args, "%s%u", i > 0 ? "," : "", uids[i]);
		i = j + 1;
	}
	free(uids);
	imapd_done(s, IMAP_OK, IMAP_CODE_APPENDUID, args.data, "APPEND completed");
	imap_buf_deinit(&args);
}
