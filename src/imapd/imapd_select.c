#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imapd/imapd_private.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "store/store.h"

/* The selected folder: the session's view (the UIDs the client knows, by
 * sequence number), the untagged updates that keep it in step with the
 * store, and SELECT, EXAMINE, CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE, CHECK.
 *
 * The store's folder snapshot is refreshed whenever the folder changed;
 * the view changes only when the client may be told: new messages are
 * appended to it after any command, expunged ones leave it only when an
 * EXPUNGE response is allowed. A view message gone from the snapshot is
 * one whose EXPUNGE is still pending. */

static const struct {
	unsigned bit;
	const char *name;
} imapd_flag_names[] = {
    {STORE_FLAG_ANSWERED, "\\Answered"}, {STORE_FLAG_FLAGGED, "\\Flagged"},
    {STORE_FLAG_DELETED, "\\Deleted"},	 {STORE_FLAG_SEEN, "\\Seen"},
    {STORE_FLAG_DRAFT, "\\Draft"},
};

void imapd_write_flags(struct imapd_session *s, struct imap_buf *buf, const struct store_message *m)
{
	imap_buf_str(buf, "(");
	bool first = true;
	for (size_t i = 0; i < sizeof(imapd_flag_names) / sizeof(imapd_flag_names[0]); i++) {
		if ((m->flags & imapd_flag_names[i].bit) == 0)
			continue;
		imap_buf_printf(buf, "%s%s", first ? "" : " ", imapd_flag_names[i].name);
		first = false;
	}
	if (m->uid >= s->recent_from) {
		imap_buf_printf(buf, "%s\\Recent", first ? "" : " ");
		first = false;
	}
	if (m->keywords != NULL && *m->keywords != '\0')
		imap_buf_printf(buf, "%s%s", first ? "" : " ", m->keywords);
	imap_buf_str(buf, ")");
}

long imapd_view_find(const struct imapd_session *s, uint32_t uid)
{
	size_t lo = 0, hi = s->view_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->view[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->view_count && s->view[lo] == uid ? (long)lo : -1;
}

/* first view index whose UID is >= uid */
static size_t imapd_view_lower(const struct imapd_session *s, uint32_t uid)
{
	size_t lo = 0, hi = s->view_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->view[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct store_message *imapd_message(const struct imapd_session *s, uint32_t uid)
{
	long i = store_folder_find(s->folder, uid);
	return i < 0 ? NULL : store_folder_message(s->folder, (size_t)i);
}

bool imapd_is_selected(const struct imapd_session *s, const char *name)
{
	return s->folder != NULL && strcmp(store_folder_name(s->folder), name) == 0;
}

void imapd_iter_init(struct imapd_iter *it, const struct imap_seqset *set, bool uid)
{
	memset(it, 0, sizeof(*it));
	it->set = set;
	it->uid = uid;
}

bool imapd_iter_next(const struct imapd_session *s, struct imapd_iter *it, size_t *index_r)
{
	while (it->range < it->set->count) {
		const struct imap_seq_range *r = &it->set->ranges[it->range];
		if (!it->in_range) {
			it->in_range = true;
			if (it->uid)
				it->next = imapd_view_lower(s, r->lo);
			else
				it->next = r->lo - 1;
		}
		size_t i = it->next;
		bool inside =
		    i < s->view_count && (it->uid ? s->view[i] <= r->hi : (uint64_t)i + 1 <= r->hi);
		if (inside) {
			it->next++;
			*index_r = i;
			return true;
		}
		it->range++;
		it->in_range = false;
	}
	return false;
}

int imapd_resolve_set(struct imapd_session *s, struct imap_seqset *set, bool uid,
		      const struct imap_seqset **set_r, bool *uid_r)
{
	if (set->saved) {
		/* "$" holds UIDs whichever command uses it */
		*set_r = &s->saved;
		*uid_r = true;
		return 1;
	}
	uint32_t max =
	    uid ? (s->view_count > 0 ? s->view[s->view_count - 1] : 0) : (uint32_t)s->view_count;
	if (!uid && imap_seqset_has_star(set) && s->view_count == 0) {
		imapd_done(s, IMAP_BAD, IMAP_CODE_NONE, NULL, "No messages: * means nothing");
		return -1;
	}
	imap_seqset_resolve_star(set, max);
	if (!uid && imap_seqset_max(set) > s->view_count) {
		imapd_done(s, IMAP_BAD, IMAP_CODE_NONE, NULL, "Invalid message sequence number");
		return -1;
	}
	*set_r = set;
	*uid_r = uid;
	return 1;
}

void imapd_write_vanished(struct imapd_session *s, const uint32_t *uids, size_t n, bool earlier)
{
	if (n == 0)
		return;
	imap_buf_str(&s->out, earlier ? "* VANISHED (EARLIER) " : "* VANISHED ");
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j > i)
			imap_buf_printf(&s->out, "%s%u:%u", i > 0 ? "," : "", uids[i], uids[j]);
		else
			imap_buf_printf(&s->out, "%s%u", i > 0 ? "," : "", uids[i]);
		i = j + 1;
		if (s->out.len >= IMAPD_READ_CHUNK)
			imapd_flush(s);
	}
	imap_buf_str(&s->out, "\r\n");
}

/* ---- change notifications ---- */

static void imapd_note_flag_change(struct imapd_session *s, uint32_t uid)
{
	if (s->flag_overflow)
		return;
	if (s->nflag_changed == IMAPD_MAX_PENDING_FLAGS) {
		s->flag_overflow = true;
		return;
	}
	if ((s->nflag_changed & 63) == 0)
		s->flag_changed =
		    xrealloc(s->flag_changed, (s->nflag_changed + 64) * sizeof(*s->flag_changed));
	s->flag_changed[s->nflag_changed++] = uid;
}

void imapd_store_event(void *ctx, const struct store_event *event)
{
	struct imapd_session *s = ctx;
	if (s->folder == NULL || event->kind == STORE_EVENT_FOLDERS ||
	    strcmp(event->folder, store_folder_name(s->folder)) != 0)
		return;
	if (event->kind == STORE_EVENT_FLAGS) {
		if (s->own_change)
			return;
		imapd_note_flag_change(s, event->uid);
	}
	s->dirty = true;
	if (s->async == IMAPD_ASYNC_IDLE)
		imapd_schedule(s);
}

static void imapd_view_append(struct imapd_session *s, uint32_t uid)
{
	if (s->view_count == s->view_cap) {
		s->view_cap = s->view_cap * 2 + 256;
		s->view = xrealloc(s->view, s->view_cap * sizeof(*s->view));
	}
	s->view[s->view_count++] = uid;
}

static void imapd_send_flags(struct imapd_session *s, size_t index)
{
	const struct store_message *m = imapd_message(s, s->view[index]);
	if (m == NULL)
		return;
	imap_buf_printf(&s->out, "* %zu FETCH (FLAGS ", index + 1);
	imapd_write_flags(s, &s->out, m);
	if (s->condstore)
		imap_buf_printf(&s->out, " MODSEQ (%llu)", (unsigned long long)m->modseq);
	imap_buf_str(&s->out, ")\r\n");
}

void imapd_sync(struct imapd_session *s, bool allow_expunge)
{
	if (s->folder == NULL || !s->dirty)
		return;
	char *error = NULL;
	if (store_folder_refresh(s->folder, &error) < 0) {
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "user=%s: refreshing %s: %s", s->user,
			store_folder_name(s->folder), error);
		free(error);
		return;
	}
	/* the shared snapshot lost messages since this view was last
	 * checked: some of them may be in the view */
	bool maybe_expunged = store_folder_removed(s->folder) != s->removed_seen;
	if (allow_expunge && maybe_expunged) {
		/* EXPUNGE from the end: every number is then still right;
		 * under QRESYNC one VANISHED with the UIDs */
		size_t kept = s->view_count;
		uint32_t *gone = NULL;
		size_t ngone = 0;
		for (size_t i = s->view_count; i-- > 0;) {
			if (store_folder_find(s->folder, s->view[i]) >= 0)
				continue;
			if (s->qresync) {
				gone = xrealloc(gone, (ngone + 1) * sizeof(*gone));
				gone[ngone++] = s->view[i];
			} else {
				imap_buf_printf(&s->out, "* %zu EXPUNGE\r\n", i + 1);
			}
			s->view[i] = 0;
			kept--;
			if (s->out.len >= IMAPD_READ_CHUNK)
				imapd_flush(s);
		}
		if (ngone > 0) {
			/* collected from the end: ascending for the set */
			for (size_t a = 0, b = ngone - 1; a < b; a++, b--) {
				uint32_t t = gone[a];
				gone[a] = gone[b];
				gone[b] = t;
			}
			imapd_write_vanished(s, gone, ngone, false);
		}
		free(gone);
		if (kept != s->view_count) {
			size_t o = 0;
			for (size_t i = 0; i < s->view_count; i++)
				if (s->view[i] != 0)
					s->view[o++] = s->view[i];
			s->view_count = o;
		}
		s->removed_seen = store_folder_removed(s->folder);
		maybe_expunged = false;
	}
	/* new messages: UIDs above the view's last */
	uint32_t last = s->view_count > 0 ? s->view[s->view_count - 1] : 0;
	size_t n = store_folder_count(s->folder);
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (store_folder_message(s->folder, mid)->uid <= last)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t before = s->view_count;
	for (size_t i = lo; i < n; i++)
		imapd_view_append(s, store_folder_message(s->folder, i)->uid);
	if (s->view_count != before) {
		imap_buf_printf(&s->out, "* %zu EXISTS\r\n", s->view_count);
		size_t recent = s->view_count - imapd_view_lower(s, s->recent_from);
		if (!s->rev2)
			imap_buf_printf(&s->out, "* %zu RECENT\r\n", recent);
	}
	/* flag changes of messages the client knows */
	if (s->flag_overflow) {
		for (size_t i = 0; i < s->view_count; i++) {
			imapd_send_flags(s, i);
			if (s->out.len >= IMAPD_READ_CHUNK)
				imapd_flush(s);
		}
	} else {
		for (size_t k = 0; k < s->nflag_changed; k++) {
			long i = imapd_view_find(s, s->flag_changed[k]);
			if (i >= 0 && s->view[i] <= last)
				imapd_send_flags(s, (size_t)i);
		}
	}
	s->nflag_changed = 0;
	s->flag_overflow = false;
	if (maybe_expunged) {
		/* not allowed to tell now: is anything of the view gone? */
		bool pending = false;
		for (size_t i = 0; i < s->view_count && !pending; i++)
			pending = store_folder_find(s->folder, s->view[i]) < 0;
		if (!pending)
			s->removed_seen = store_folder_removed(s->folder);
		maybe_expunged = pending;
	}
	s->dirty = maybe_expunged;
	imapd_flush(s);
}

/* ---- SELECT and friends ---- */

void imapd_unselect(struct imapd_session *s)
{
	store_folder_close(&s->folder);
	free(s->view);
	s->view = NULL;
	s->view_count = s->view_cap = 0;
	free(s->flag_changed);
	s->flag_changed = NULL;
	s->nflag_changed = 0;
	s->flag_overflow = false;
	s->dirty = false;
	imap_seqset_clear(&s->saved);
	s->saved_valid = false;
	if (s->state == IMAPD_SELECTED)
		s->state = IMAPD_AUTH;
}

/* The keywords in use in the folder, for FLAGS and PERMANENTFLAGS. */
static void imapd_write_keywords(struct imapd_session *s, struct imap_buf *b)
{
	char **seen = NULL;
	size_t nseen = 0;
	size_t n = store_folder_count(s->folder);
	for (size_t i = 0; i < n && nseen < IMAPD_MAX_SELECT_KEYWORDS; i++) {
		const char *kw = store_folder_message(s->folder, i)->keywords;
		while (kw != NULL && *kw != '\0' && nseen < IMAPD_MAX_SELECT_KEYWORDS) {
			const char *e = strchr(kw, ' ');
			size_t l = e != NULL ? (size_t)(e - kw) : strlen(kw);
			bool known = false;
			for (size_t k = 0; k < nseen && !known; k++)
				known = strlen(seen[k]) == l && strncasecmp(seen[k], kw, l) == 0;
			if (!known && l > 0) {
				seen = xrealloc(seen, (nseen + 1) * sizeof(*seen));
				seen[nseen++] = xstrndup(kw, l);
			}
			kw += l;
			while (*kw == ' ')
				kw++;
		}
	}
	for (size_t k = 0; k < nseen; k++) {
		imap_buf_printf(b, " %s", seen[k]);
		free(seen[k]);
	}
	free(seen);
}

/* SELECT (QRESYNC (uidvalidity modseq [known-uids])): what changed since
 * modseq, as VANISHED (EARLIER) and FETCH responses (RFC 7162 3.2.5). */
static void imapd_qresync(struct imapd_session *s, const struct imap_cmd_select *sel)
{
	uint32_t *uids = NULL;
	size_t n = 0;
	char *error = NULL;
	if (store_folder_expunged_since(s->folder, sel->modseq, &uids, &n, &error) < 0) {
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "user=%s: expunged list: %s", s->user,
			error);
		free(error);
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!sel->has_known_uids || imap_seqset_contains(&sel->known_uids, uids[i]))
			uids[k++] = uids[i];
	imapd_write_vanished(s, uids, k, true);
	free(uids);
	for (size_t i = 0; i < s->view_count; i++) {
		const struct store_message *m = store_folder_message(s->folder, i);
		if (m->modseq <= sel->modseq ||
		    (sel->has_known_uids && !imap_seqset_contains(&sel->known_uids, m->uid)))
			continue;
		imap_buf_printf(&s->out, "* %zu FETCH (UID %u FLAGS ", i + 1, m->uid);
		imapd_write_flags(s, &s->out, m);
		imap_buf_printf(&s->out, " MODSEQ (%llu))\r\n", (unsigned long long)m->modseq);
		if (s->out.len >= IMAPD_READ_CHUNK)
			imapd_flush(s);
	}
}

void imapd_cmd_select(struct imapd_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_select *sel = &cmd->u.select;
	bool examine = cmd->def->id == IMAP_CMD_EXAMINE;
	bool had = s->folder != NULL;
	imapd_unselect(s);
	if (had && (s->condstore || s->rev2))
		imapd_untagged(s, "OK [CLOSED] Previous mailbox closed");
	if (sel->qresync && !s->qresync) {
		imapd_done(s, IMAP_BAD, IMAP_CODE_CLIENTBUG, NULL, "QRESYNC is not enabled");
		return;
	}
	if (sel->condstore)
		s->condstore = true;
	char *error = NULL;
	int r = store_folder_open(imapd_store(s), sel->mailbox.name, &s->folder, &error);
	if (r <= 0) {
		if (r < 0) {
			log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "user=%s: select %s: %s",
				s->user, sel->mailbox.name, error);
			imapd_done(s, IMAP_NO, IMAP_CODE_NONEXISTENT, NULL, "Cannot select: %s",
				   error);
			free(error);
		} else {
			imapd_done(s, IMAP_NO, IMAP_CODE_NONEXISTENT, NULL, "No such mailbox");
		}
		return;
	}
	s->state = IMAPD_SELECTED;
	s->readonly = examine;
	/* IMAP4rev2 has no \Recent: no UID reaches the bound */
	s->recent_from = s->rev2 ? STORE_SEQ_STAR : store_folder_uidnext(s->folder);
	size_t n = store_folder_count(s->folder);
	s->view_cap = n + 16;
	s->view = xcalloc(s->view_cap, sizeof(*s->view));
	size_t first_unseen = 0;
	for (size_t i = 0; i < n; i++) {
		const struct store_message *m = store_folder_message(s->folder, i);
		s->view[i] = m->uid;
		if (first_unseen == 0 && (m->flags & STORE_FLAG_SEEN) == 0)
			first_unseen = i + 1;
	}
	s->view_count = n;
	s->removed_seen = store_folder_removed(s->folder);
	struct imap_buf *b = &s->out;
	imap_buf_str(b, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	imapd_write_keywords(s, b);
	imap_buf_str(b, ")\r\n");
	if (examine) {
		imap_buf_str(b, "* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
	} else {
		imap_buf_str(b, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
				"\\Draft");
		imapd_write_keywords(s, b);
		imap_buf_str(b, " \\*)] Flags permitted\r\n");
	}
	imap_buf_printf(b, "* %zu EXISTS\r\n", n);
	if (s->rev2) {
		/* RFC 9051 6.3.2: the name as the server knows it, with its
		 * attributes; no RECENT, no UNSEEN */
		imapd_write_list_of(s, b, store_folder_name(s->folder), NULL);
	} else {
		imap_buf_str(b, "* 0 RECENT\r\n");
		if (first_unseen > 0)
			imap_buf_printf(b, "* OK [UNSEEN %zu] First unseen\r\n", first_unseen);
	}
	imap_buf_printf(b, "* OK [UIDVALIDITY %u] UIDs valid\r\n",
			store_folder_uidvalidity(s->folder));
	imap_buf_printf(b, "* OK [UIDNEXT %u] Predicted next UID\r\n",
			store_folder_uidnext(s->folder));
	imap_buf_printf(b, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
			(unsigned long long)store_folder_highestmodseq(s->folder));
	if (store_folder_mailbox_id(s->folder)[0] != '\0')
		imap_buf_printf(b, "* OK [MAILBOXID (%s)] Ok\r\n",
				store_folder_mailbox_id(s->folder));
	if (sel->qresync && sel->uidvalidity == store_folder_uidvalidity(s->folder))
		imapd_qresync(s, sel);
	imapd_flush(s);
	imapd_done(s, IMAP_OK, examine ? IMAP_CODE_READ_ONLY : IMAP_CODE_READ_WRITE, NULL,
		   "%s completed", examine ? "EXAMINE" : "SELECT");
}

/* Expunge the \Deleted messages of the view (limited to set when given).
 * Returns 0, or -1 after logging (the caller answers). */
static int imapd_expunge_deleted(struct imapd_session *s, const struct imap_seqset *uids)
{
	uint32_t *list = NULL;
	size_t n = 0;
	for (size_t i = 0; i < s->view_count; i++) {
		const struct store_message *m = imapd_message(s, s->view[i]);
		if (m == NULL || (m->flags & STORE_FLAG_DELETED) == 0)
			continue;
		if (uids != NULL && !imap_seqset_contains(uids, m->uid))
			continue;
		if ((n & 255) == 0)
			list = xrealloc(list, (n + 256) * sizeof(*list));
		list[n++] = m->uid;
	}
	char *error = NULL;
	int r = 0;
	if (n > 0 && store_expunge(s->folder, list, n, &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: expunge: %s", s->user, error);
		free(error);
		r = -1;
	}
	free(list);
	return r;
}

void imapd_cmd_close(struct imapd_session *s, struct imap_command *cmd)
{
	(void)cmd;
	if (!s->readonly)
		imapd_expunge_deleted(s, NULL);
	imapd_unselect(s);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "CLOSE completed");
}

void imapd_cmd_unselect(struct imapd_session *s, struct imap_command *cmd)
{
	(void)cmd;
	imapd_unselect(s);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "UNSELECT completed");
}

void imapd_cmd_expunge(struct imapd_session *s, struct imap_command *cmd)
{
	if (s->readonly) {
		imapd_done(s, IMAP_NO, IMAP_CODE_READ_ONLY, NULL, "Mailbox is read-only");
		return;
	}
	const struct imap_seqset *set = NULL;
	if (cmd->uid) {
		bool uid;
		if (imapd_resolve_set(s, &cmd->u.expunge.set, true, &set, &uid) < 0)
			return;
	}
	if (imapd_expunge_deleted(s, set) < 0) {
		imapd_done(s, IMAP_NO, IMAP_CODE_SERVERBUG, NULL, "Expunge failed");
		return;
	}
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "EXPUNGE completed");
}

void imapd_cmd_check(struct imapd_session *s, struct imap_command *cmd)
{
	(void)cmd;
	imapd_poll_changes(s);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "CHECK completed");
}
