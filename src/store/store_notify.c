#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "store/store_private.h"

/* Change notifications within one process, and the report of changes
 * other processes made, found by MODSEQ in the index (store_watch.c says
 * when to look). */

unsigned store_subscribe(struct store *store, store_event_cb *cb, void *ctx)
{
	store->subs = xrealloc(store->subs, (store->nsubs + 1) * sizeof(*store->subs));
	struct store_sub *s = &store->subs[store->nsubs++];
	s->id = ++store->next_sub_id;
	s->cb = cb;
	s->ctx = ctx;
	return s->id;
}

void store_unsubscribe(struct store *store, unsigned id)
{
	for (size_t i = 0; i < store->nsubs; i++)
		if (store->subs[i].id == id) {
			memmove(&store->subs[i], &store->subs[i + 1],
				(store->nsubs - i - 1) * sizeof(*store->subs));
			store->nsubs--;
			return;
		}
}

static struct store_seen *seen_get(struct store *store, const char *folder)
{
	for (size_t i = 0; i < store->nseen; i++)
		if (strcmp(store->seen[i].folder, folder) == 0)
			return &store->seen[i];
	return NULL;
}

/* Start tracking a folder from its present state. */
static void seen_init(struct store *store, const char *folder)
{
	char *error = NULL;
	uint32_t uidnext;
	uint64_t modseq;
	if (store_index_folder_get(store, folder, NULL, NULL, &uidnext, &modseq, &error) <= 0) {
		free(error);
		return;
	}
	struct store_seen *s = seen_get(store, folder);
	if (s == NULL) {
		store->seen = xrealloc(store->seen, (store->nseen + 1) * sizeof(*store->seen));
		s = &store->seen[store->nseen++];
		s->folder = xstrdup(folder);
	}
	s->modseq = modseq;
	s->uidnext = uidnext;
}

void store_notify(struct store *store, enum store_event_kind kind, const char *folder, uint32_t uid,
		  unsigned flags, uint64_t modseq)
{
	struct store_seen *seen = store->watcher != NULL ? seen_get(store, folder) : NULL;
	if (seen != NULL) {
		/* our own changes come in MODSEQ order; a gap means another
		 * process changed the folder meanwhile: store_notify_report()
		 * reports that from the index */
		if (modseq == seen->modseq + 1)
			seen->modseq = modseq;
		if (kind == STORE_EVENT_APPEND && uid >= seen->uidnext)
			seen->uidnext = uid + 1;
	}
	struct store_event ev = {
	    .kind = kind, .folder = folder, .uid = uid, .flags = flags, .modseq = modseq};
	/* a callback may subscribe more: iterate over a copy of the count */
	size_t n = store->nsubs;
	for (size_t i = 0; i < n && i < store->nsubs; i++)
		store->subs[i].cb(store->subs[i].ctx, &ev);
}

void store_notify_track(struct store *store, const char *folder)
{
	if (seen_get(store, folder) == NULL)
		seen_init(store, folder);
}

void store_notify_forget(struct store *store)
{
	for (size_t i = 0; i < store->nseen; i++)
		free(store->seen[i].folder);
	free(store->seen);
	store->seen = NULL;
	store->nseen = 0;
}

int store_notify_report(struct store *store, const char *folder, char **error_r)
{
	struct store_seen *seen = seen_get(store, folder);
	if (seen == NULL) {
		seen_init(store, folder);
		return 0;
	}
	int64_t id;
	uint32_t uidnext;
	uint64_t modseq;
	int r = store_index_folder_get(store, folder, &id, NULL, &uidnext, &modseq, error_r);
	if (r <= 0)
		return r;
	if (modseq <= seen->modseq)
		return 0;
	uint64_t since = seen->modseq;
	uint32_t old_uidnext = seen->uidnext;
	seen->modseq = modseq;
	seen->uidnext = uidnext;
	/* copies: the callbacks may change the seen array */
	char *name = xstrdup(folder);
	sqlite3_stmt *st =
	    store_stmt(store,
		       "SELECT 0, uid, flags, modseq FROM messages WHERE folder_id = ?1 "
		       "AND modseq > ?2 UNION ALL SELECT 1, uid, 0, modseq FROM expunged "
		       "WHERE folder_id = ?1 AND modseq > ?2 ORDER BY 4",
		       error_r);
	if (st == NULL) {
		free(name);
		return -1;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (int64_t)since);
	struct change {
		int gone;
		uint32_t uid;
		unsigned flags;
		uint64_t modseq;
	} *changes = NULL;
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		changes = xrealloc(changes, (n + 1) * sizeof(*changes));
		changes[n].gone = sqlite3_column_int(st, 0);
		changes[n].uid = (uint32_t)sqlite3_column_int64(st, 1);
		changes[n].flags = (unsigned)sqlite3_column_int(st, 2);
		changes[n].modseq = (uint64_t)sqlite3_column_int64(st, 3);
		n++;
	}
	store_stmt_done(store, &st);
	for (size_t i = 0; i < n; i++) {
		enum store_event_kind kind = changes[i].gone		     ? STORE_EVENT_EXPUNGE
					     : changes[i].uid >= old_uidnext ? STORE_EVENT_APPEND
									     : STORE_EVENT_FLAGS;
		struct store_event ev = {.kind = kind,
					 .folder = name,
					 .uid = changes[i].uid,
					 .flags = changes[i].flags,
					 .modseq = changes[i].modseq};
		size_t nsubs = store->nsubs;
		for (size_t k = 0; k < nsubs && k < store->nsubs; k++)
			store->subs[k].cb(store->subs[k].ctx, &ev);
	}
	free(changes);
	free(name);
	return 0;
}
