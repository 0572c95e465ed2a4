#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imapd/imapd_private.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "store/store.h"

/* SEARCH and UID SEARCH (ESEARCH RETURN options, SEARCHRES "$", CONDSTORE
 * MODSEQ): the parser's key tree becomes the store's search tree, with
 * sequence numbers and "$" turned into UID ranges of the session's view. */

struct imapd_search_ctx {
	struct imapd_session *s;
	const char *error;
};

static struct store_search *imapd_uid_ranges(void)
{
	return store_search_new(STORE_SEARCH_UID);
}

static void imapd_add_range(struct store_search *n, uint32_t lo, uint32_t hi)
{
	n->ranges = xrealloc(n->ranges, (n->nranges + 1) * sizeof(*n->ranges));
	n->ranges[n->nranges].lo = lo;
	n->ranges[n->nranges].hi = hi;
	n->nranges++;
}

/* A set of sequence numbers (or UIDs) as UID ranges of the view. */
static struct store_search *imapd_set_node(struct imapd_session *s, struct imap_seqset *set,
					   bool uid)
{
	struct store_search *n = imapd_uid_ranges();
	if (set->saved) {
		for (unsigned i = 0; i < s->saved.count; i++)
			imapd_add_range(n, s->saved.ranges[i].lo, s->saved.ranges[i].hi);
		return n;
	}
	uint32_t last_uid = s->view_count > 0 ? s->view[s->view_count - 1] : 0;
	imap_seqset_resolve_star(set, uid ? last_uid : (uint32_t)s->view_count);
	for (unsigned i = 0; i < set->count; i++) {
		uint32_t lo = set->ranges[i].lo, hi = set->ranges[i].hi;
		if (uid) {
			imapd_add_range(n, lo, hi);
			continue;
		}
		if (lo > s->view_count)
			continue;
		if (hi > s->view_count)
			hi = (uint32_t)s->view_count;
		/* view UIDs are sorted: a sequence range is a UID range */
		imapd_add_range(n, s->view[lo - 1], s->view[hi - 1]);
	}
	if (n->nranges == 0)
		imapd_add_range(n, 0, 0); /* nothing: UID 0 does not exist */
	return n;
}

/* matches nothing: UID 0 does not exist */
static struct store_search *imapd_set_none(void)
{
	struct store_search *n = imapd_uid_ranges();
	imapd_add_range(n, 0, 0);
	return n;
}

static struct store_search *imapd_flag_node(unsigned flag, bool set)
{
	struct store_search *n = store_search_new(set ? STORE_SEARCH_FLAGS : STORE_SEARCH_UNFLAGS);
	n->flags = flag;
	return n;
}

static struct store_search *imapd_set_none(void);

static struct store_search *imapd_recent_node(struct imapd_session *s, bool recent)
{
	if (s->recent_from >= STORE_SEQ_STAR - 1) {
		/* IMAP4rev2: nothing is recent */
		if (recent)
			return imapd_set_none();
		return store_search_new(STORE_SEARCH_ALL);
	}
	struct store_search *n = imapd_uid_ranges();
	imapd_add_range(n, s->recent_from, STORE_SEQ_STAR - 1);
	if (recent)
		return n;
	struct store_search *not = store_search_new(STORE_SEARCH_NOT);
	store_search_add(not, n);
	return not ;
}

static struct store_search *imapd_convert(struct imapd_search_ctx *c, struct imap_search_key *k);

static struct store_search *imapd_convert_children(struct imapd_search_ctx *c,
						   enum store_search_op op,
						   struct imap_search_key *first)
{
	struct store_search *n = store_search_new(op);
	for (struct imap_search_key *k = first; k != NULL; k = k->next) {
		struct store_search *child = imapd_convert(c, k);
		if (child == NULL) {
			store_search_free(&n);
			return NULL;
		}
		store_search_add(n, child);
	}
	return n;
}

static struct store_search *imapd_date_node(enum store_search_op op, time_t date)
{
	struct store_search *n = store_search_new(op);
	n->date = date;
	return n;
}

static struct store_search *imapd_convert(struct imapd_search_ctx *c, struct imap_search_key *k)
{
	struct imapd_session *s = c->s;
	char text[1024];
	switch (k->type) {
	case IMAP_SEARCH_AND:
		return imapd_convert_children(c, STORE_SEARCH_AND, k->children);
	case IMAP_SEARCH_OR:
		return imapd_convert_children(c, STORE_SEARCH_OR, k->children);
	case IMAP_SEARCH_NOT:
		return imapd_convert_children(c, STORE_SEARCH_NOT, k->children);
	case IMAP_SEARCH_ALL:
		return store_search_new(STORE_SEARCH_ALL);
	case IMAP_SEARCH_SEQSET:
		return imapd_set_node(s, &k->seqset, false);
	case IMAP_SEARCH_UID:
		return imapd_set_node(s, &k->seqset, true);
	case IMAP_SEARCH_ANSWERED:
		return imapd_flag_node(STORE_FLAG_ANSWERED, true);
	case IMAP_SEARCH_DELETED:
		return imapd_flag_node(STORE_FLAG_DELETED, true);
	case IMAP_SEARCH_DRAFT:
		return imapd_flag_node(STORE_FLAG_DRAFT, true);
	case IMAP_SEARCH_FLAGGED:
		return imapd_flag_node(STORE_FLAG_FLAGGED, true);
	case IMAP_SEARCH_SEEN:
		return imapd_flag_node(STORE_FLAG_SEEN, true);
	case IMAP_SEARCH_UNANSWERED:
		return imapd_flag_node(STORE_FLAG_ANSWERED, false);
	case IMAP_SEARCH_UNDELETED:
		return imapd_flag_node(STORE_FLAG_DELETED, false);
	case IMAP_SEARCH_UNDRAFT:
		return imapd_flag_node(STORE_FLAG_DRAFT, false);
	case IMAP_SEARCH_UNFLAGGED:
		return imapd_flag_node(STORE_FLAG_FLAGGED, false);
	case IMAP_SEARCH_UNSEEN:
		return imapd_flag_node(STORE_FLAG_SEEN, false);
	case IMAP_SEARCH_RECENT:
		return imapd_recent_node(s, true);
	case IMAP_SEARCH_OLD:
		return imapd_recent_node(s, false);
	case IMAP_SEARCH_NEW: {
		struct store_search *n = store_search_new(STORE_SEARCH_AND);
		store_search_add(n, imapd_recent_node(s, true));
		store_search_add(n, imapd_flag_node(STORE_FLAG_SEEN, false));
		return n;
	}
	case IMAP_SEARCH_KEYWORD:
		return store_search_text(STORE_SEARCH_KEYWORD, NULL, k->str);
	case IMAP_SEARCH_UNKEYWORD:
		return store_search_text(STORE_SEARCH_UNKEYWORD, NULL, k->str);
	case IMAP_SEARCH_BCC:
		return store_search_text(STORE_SEARCH_HEADER, "Bcc", k->str);
	case IMAP_SEARCH_CC:
		return store_search_text(STORE_SEARCH_HEADER, "Cc", k->str);
	case IMAP_SEARCH_FROM:
		return store_search_text(STORE_SEARCH_HEADER, "From", k->str);
	case IMAP_SEARCH_TO:
		return store_search_text(STORE_SEARCH_HEADER, "To", k->str);
	case IMAP_SEARCH_SUBJECT:
		return store_search_text(STORE_SEARCH_HEADER, "Subject", k->str);
	case IMAP_SEARCH_HEADER:
		snprintf(text, sizeof(text), "%s", k->field);
		return store_search_text(STORE_SEARCH_HEADER, text, k->str);
	case IMAP_SEARCH_BODY:
		return store_search_text(STORE_SEARCH_BODY, NULL, k->str);
	case IMAP_SEARCH_TEXT:
		return store_search_text(STORE_SEARCH_TEXT, NULL, k->str);
	case IMAP_SEARCH_BEFORE:
		return imapd_date_node(STORE_SEARCH_BEFORE, k->date);
	case IMAP_SEARCH_ON:
		return imapd_date_node(STORE_SEARCH_ON, k->date);
	case IMAP_SEARCH_SINCE:
		return imapd_date_node(STORE_SEARCH_SINCE, k->date);
	case IMAP_SEARCH_SENTBEFORE:
		return imapd_date_node(STORE_SEARCH_SENTBEFORE, k->date);
	case IMAP_SEARCH_SENTON:
		return imapd_date_node(STORE_SEARCH_SENTON, k->date);
	case IMAP_SEARCH_SENTSINCE:
		return imapd_date_node(STORE_SEARCH_SENTSINCE, k->date);
	case IMAP_SEARCH_LARGER:
	case IMAP_SEARCH_SMALLER: {
		struct store_search *n = store_search_new(
		    k->type == IMAP_SEARCH_LARGER ? STORE_SEARCH_LARGER : STORE_SEARCH_SMALLER);
		n->number = k->number;
		return n;
	}
	case IMAP_SEARCH_OLDER:
	case IMAP_SEARCH_YOUNGER: {
		/* WITHIN: seconds before now, as UID ranges of the snapshot */
		time_t limit = time(NULL) - (time_t)k->number;
		struct store_search *n = imapd_uid_ranges();
		size_t count = store_folder_count(s->folder);
		for (size_t i = 0; i < count; i++) {
			const struct store_message *m = store_folder_message(s->folder, i);
			bool in = k->type == IMAP_SEARCH_OLDER ? m->internal_date <= limit
							       : m->internal_date >= limit;
			if (!in)
				continue;
			if (n->nranges > 0 && n->ranges[n->nranges - 1].hi + 1 == m->uid)
				n->ranges[n->nranges - 1].hi = m->uid;
			else
				imapd_add_range(n, m->uid, m->uid);
		}
		if (n->nranges == 0)
			imapd_add_range(n, 0, 0);
		return n;
	}
	case IMAP_SEARCH_MODSEQ: {
		struct store_search *n = store_search_new(STORE_SEARCH_MODSEQ);
		n->number = k->number;
		return n;
	}
	case IMAP_SEARCH_SAVEDATEBEFORE:
		return imapd_date_node(STORE_SEARCH_SAVEDBEFORE, k->date);
	case IMAP_SEARCH_SAVEDATEON:
		return imapd_date_node(STORE_SEARCH_SAVEDON, k->date);
	case IMAP_SEARCH_SAVEDATESINCE:
		return imapd_date_node(STORE_SEARCH_SAVEDSINCE, k->date);
	case IMAP_SEARCH_SAVEDATESUPPORTED:
		/* every folder keeps save dates */
		return store_search_new(STORE_SEARCH_ALL);
	case IMAP_SEARCH_EMAILID:
		if (k->str[0] == 'M')
			return store_search_text(STORE_SEARCH_GUID, NULL, k->str + 1);
		return imapd_set_none();
	case IMAP_SEARCH_THREADID:
		/* no message has a THREADID (FETCH THREADID is NIL) */
		return imapd_set_none();
	default:
		c->error = imap_search_type_name(k->type);
		return NULL;
	}
}

/* ESEARCH's ALL: the numbers as a compact set. */
static void imapd_write_set(struct imap_buf *b, const uint32_t *nums, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && nums[j + 1] == nums[j] + 1)
			j++;
		if (j > i)
			imap_buf_printf(b, "%s%u:%u", i > 0 ? "," : "", nums[i], nums[j]);
		else
			imap_buf_printf(b, "%s%u", i > 0 ? "," : "", nums[i]);
		i = j + 1;
	}
}

int imapd_search_uids(struct imapd_session *s, const char *charset, struct imap_search_key *keys,
		      uint32_t **uids_r, size_t *count_r)
{
	if (charset != NULL && strcasecmp(charset, "US-ASCII") != 0 &&
	    strcasecmp(charset, "UTF-8") != 0) {
		imapd_done(s, IMAP_NO, IMAP_CODE_BADCHARSET, "(US-ASCII UTF-8)",
			   "Unsupported charset");
		return -1;
	}
	if (imap_search_uses_saved(keys) && !s->saved_valid) {
		imapd_done(s, IMAP_BAD, IMAP_CODE_NONE, NULL, "No saved search result ($)");
		return -1;
	}
	struct imapd_search_ctx c = {.s = s};
	struct store_search *tree = imapd_convert(&c, keys);
	if (tree == NULL) {
		imapd_done(s, IMAP_NO, IMAP_CODE_CANNOT, NULL, "Search key %s is not supported",
			   c.error != NULL ? c.error : "?");
		return -1;
	}
	if (imap_search_has_modseq(keys))
		s->condstore = true;
	uint32_t *uids = NULL;
	size_t n = 0;
	char *error = NULL;
	int r = store_search_run(s->folder, tree, true, &uids, &n, &error);
	store_search_free(&tree);
	if (r < 0) {
		log_msg(LOG_LEVEL_WARN, conn_log(s->conn), "user=%s: search: %s", s->user, error);
		imapd_done(s, IMAP_NO, IMAP_CODE_CANNOT, NULL, "Search failed: %s", error);
		free(error);
		return -1;
	}
	/* only what the client knows: messages of the view */
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (imapd_view_find(s, uids[i]) >= 0)
			uids[k++] = uids[i];
	*uids_r = uids;
	*count_r = k;
	return 0;
}

void imapd_cmd_search(struct imapd_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_search *sc = &cmd->u.search;
	uint32_t *found;
	size_t k;
	if (imapd_search_uids(s, sc->charset, sc->keys, &found, &k) < 0)
		return;
	bool modseq = imap_search_has_modseq(sc->keys);
	uint32_t *nums = xcalloc(k + 1, sizeof(*nums));
	uint64_t max_modseq = 0;
	for (size_t i = 0; i < k; i++) {
		nums[i] = cmd->uid ? found[i] : (uint32_t)(imapd_view_find(s, found[i]) + 1);
		const struct store_message *m = imapd_message(s, found[i]);
		if (m != NULL && m->modseq > max_modseq)
			max_modseq = m->modseq;
	}
	unsigned ret = sc->ret;
	/* IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 6.4.4) */
	bool esearch = sc->esearch || s->rev2;
	if (esearch && ret == 0)
		ret = IMAP_SEARCH_RET_ALL;
	if (ret & IMAP_SEARCH_RET_SAVE) {
		imap_seqset_clear(&s->saved);
		s->saved_valid = true;
		/* with MIN or MAX only, those are saved (RFC 5182) */
		bool minmax = (ret & (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX)) &&
			      !(ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT));
		for (size_t i = 0; i < k; i++) {
			if (minmax && !((i == 0 && (ret & IMAP_SEARCH_RET_MIN)) ||
					(i == k - 1 && (ret & IMAP_SEARCH_RET_MAX))))
				continue;
			imap_seqset_add(&s->saved, found[i]);
		}
	}
	struct imap_buf *b = &s->out;
	if (!esearch) {
		imap_buf_str(b, "* SEARCH");
		for (size_t i = 0; i < k; i++) {
			imap_buf_printf(b, " %u", nums[i]);
			if (b->len >= IMAPD_READ_CHUNK)
				imapd_flush(s);
		}
		if (modseq && k > 0)
			imap_buf_printf(b, " (MODSEQ %llu)", (unsigned long long)max_modseq);
		imap_buf_str(b, "\r\n");
	} else if ((ret & ~IMAP_SEARCH_RET_SAVE) != 0) {
		imap_buf_str(b, "* ESEARCH (TAG ");
		imap_write_string(b, cmd->tag, strlen(cmd->tag), 0);
		imap_buf_str(b, ")");
		if (cmd->uid)
			imap_buf_str(b, " UID");
		if ((ret & IMAP_SEARCH_RET_MIN) && k > 0)
			imap_buf_printf(b, " MIN %u", nums[0]);
		if ((ret & IMAP_SEARCH_RET_MAX) && k > 0)
			imap_buf_printf(b, " MAX %u", nums[k - 1]);
		if (ret & IMAP_SEARCH_RET_COUNT)
			imap_buf_printf(b, " COUNT %zu", k);
		if ((ret & IMAP_SEARCH_RET_ALL) && k > 0) {
			imap_buf_str(b, " ALL ");
			imapd_write_set(b, nums, k);
		}
		if (modseq && k > 0)
			imap_buf_printf(b, " MODSEQ %llu", (unsigned long long)max_modseq);
		imap_buf_str(b, "\r\n");
	}
	imapd_flush(s);
	free(nums);
	free(found);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "%s completed", cmd->def->name);
}
