#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imapd/imapd_private.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "net/conn.h"
#include "store/store.h"

/* Mailbox commands: NAMESPACE, LIST (LIST-EXTENDED, SPECIAL-USE, CHILDREN,
 * LIST-STATUS), LSUB, CREATE (CREATE-SPECIAL-USE), DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE, STATUS (STATUS=SIZE). One personal namespace,
 * "/" as the hierarchy delimiter. */

void imapd_cmd_namespace(struct imapd_session *s, struct imap_command *cmd)
{
	(void)cmd;
	imapd_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "NAMESPACE completed");
}

/* IMAP list-mailbox matching: "*" matches anything, "%" anything but the
 * delimiter. Dynamic programming over the name: time pattern x name,
 * whatever the wildcards. */
static bool imapd_match(const char *pat, const char *name)
{
	size_t nl = strlen(name);
	bool *cur = xcalloc(nl + 1, sizeof(*cur));
	bool *next = xcalloc(nl + 1, sizeof(*next));
	cur[0] = true;
	for (const char *p = pat; *p != '\0'; p++) {
		memset(next, 0, (nl + 1) * sizeof(*next));
		for (size_t j = 0; j <= nl; j++) {
			if (*p == '*')
				next[j] = cur[j] || (j > 0 && next[j - 1]);
			else if (*p == '%')
				next[j] = cur[j] || (j > 0 && next[j - 1] && name[j - 1] != '/');
			else if (j > 0)
				next[j] = cur[j - 1] && name[j - 1] == *p;
		}
		bool *t = cur;
		cur = next;
		next = t;
	}
	bool match = cur[nl];
	free(cur);
	free(next);
	return match;
}

/* The pattern as names are stored: "inbox" and "Inbox/x" start with INBOX. */
static char *imapd_pattern(const char *ref, const char *pat)
{
	char *p = xasprintf("%s%s", *pat == '/' && *ref != '\0' ? "" : ref, pat);
	if (strncasecmp(p, "INBOX", 5) == 0 && (p[5] == '\0' || p[5] == '/'))
		memcpy(p, "INBOX", 5);
	return p;
}

static void imapd_write_status_items(struct imapd_session *s, struct imap_buf *b,
				     const struct store_folder_info *f, unsigned items)
{
	bool first = true;
	imap_buf_str(b, "(");
	for (unsigned bit = 1; bit <= IMAP_STATUS_MAILBOXID; bit <<= 1) {
		if ((items & bit) == 0)
			continue;
		uint64_t v = 0;
		switch (bit) {
		case IMAP_STATUS_MAILBOXID:
			if (f->mailbox_id[0] == '\0')
				continue;
			imap_buf_printf(b, "%sMAILBOXID (%s)", first ? "" : " ", f->mailbox_id);
			first = false;
			continue;
		case IMAP_STATUS_DELETED_STORAGE:
			/* RFC 9208: in units of 1024 octets, as STORAGE */
			v = (f->deleted_bytes + 1023) / 1024;
			break;
		case IMAP_STATUS_MESSAGES:
			v = f->messages;
			break;
		case IMAP_STATUS_RECENT:
			if (s->rev2)
				continue; /* not in IMAP4rev2 */
			v = 0;
			break;
		case IMAP_STATUS_UIDNEXT:
			v = f->uidnext;
			break;
		case IMAP_STATUS_UIDVALIDITY:
			v = f->uidvalidity;
			break;
		case IMAP_STATUS_UNSEEN:
			v = f->unseen;
			break;
		case IMAP_STATUS_DELETED:
			v = f->deleted;
			break;
		case IMAP_STATUS_SIZE:
			v = f->bytes;
			break;
		case IMAP_STATUS_HIGHESTMODSEQ:
			v = f->highestmodseq;
			break;
		case IMAP_STATUS_APPENDLIMIT:
			v = s->srv->append_limit;
			break;
		default:
			continue;
		}
		imap_buf_printf(b, "%s%s %llu", first ? "" : " ", imap_status_item_name(bit),
				(unsigned long long)v);
		first = false;
	}
	imap_buf_str(b, ")");
}

static int imapd_folders(struct imapd_session *s, struct store_folder_info **list_r,
			 size_t *count_r)
{
	char *error = NULL;
	if (store_folder_list(imapd_store(s), list_r, count_r, &error) < 0) {
		log_msg(LOG_LEVEL_ERROR, conn_log(s->conn), "user=%s: folder list: %s", s->user,
			error);
		free(error);
		imapd_done(s, IMAP_NO, IMAP_CODE_SERVERBUG, NULL, "Cannot read the folder list");
		return -1;
	}
	return 0;
}

static bool imapd_subscribed_below(const struct store_folder_info *list, size_t n, const char *name)
{
	size_t len = strlen(name);
	for (size_t j = 0; j < n; j++)
		if (list[j].subscribed && strncmp(list[j].name, name, len) == 0 &&
		    list[j].name[len] == '/')
			return true;
	return false;
}

void imapd_cmd_list(struct imapd_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_list *l = &cmd->u.list;
	bool lsub = cmd->def->id == IMAP_CMD_LSUB;
	if (l->pattern_count == 1 && l->patterns[0].name[0] == '\0') {
		/* the delimiter and the root of the reference */
		imapd_untagged(s, "%s (\\Noselect) \"/\" \"\"", lsub ? "LSUB" : "LIST");
		imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "%s completed", cmd->def->name);
		return;
	}
	struct store_folder_info *list;
	size_t n;
	if (imapd_folders(s, &list, &n) < 0)
		return;
	bool subscribed_only = lsub || (l->selection & IMAP_LIST_SEL_SUBSCRIBED) != 0;
	bool special_only = (l->selection & IMAP_LIST_SEL_SPECIAL_USE) != 0;
	bool show_subscribed = !lsub && (subscribed_only || (l->ret & IMAP_LIST_RET_SUBSCRIBED));
	char **pats = xcalloc(l->pattern_count, sizeof(*pats));
	for (unsigned p = 0; p < l->pattern_count; p++)
		pats[p] = imapd_pattern(l->reference.name, l->patterns[p].name);
	bool recursive =
	    !lsub && subscribed_only && (l->selection & IMAP_LIST_SEL_RECURSIVEMATCH) != 0;
	struct imap_buf *b = &s->out;
	for (size_t i = 0; i < n; i++) {
		const struct store_folder_info *f = &list[i];
		/* RECURSIVEMATCH: a parent of a subscribed name is listed too,
		 * with CHILDINFO saying why */
		bool child_subscribed = recursive && imapd_subscribed_below(list, n, f->name);
		if (subscribed_only ? !f->subscribed && !child_subscribed : !f->exists)
			continue;
		if (special_only && f->role == NULL)
			continue;
		bool match = false;
		for (unsigned p = 0; p < l->pattern_count && !match; p++)
			match = imapd_match(pats[p], f->name);
		if (!match)
			continue;
		imap_buf_printf(b, "* %s (", lsub ? "LSUB" : "LIST");
		const char *sep = "";
		if (!f->exists) {
			imap_buf_str(b, lsub ? "\\Noselect" : "\\NonExistent");
			sep = " ";
		} else {
			imap_buf_printf(b, "%s%s", sep,
					f->has_children ? "\\HasChildren" : "\\HasNoChildren");
			sep = " ";
		}
		if (show_subscribed && f->subscribed) {
			imap_buf_printf(b, "%s\\Subscribed", sep);
			sep = " ";
		}
		if (f->role != NULL && !lsub)
			imap_buf_printf(b, "%s%s", sep, f->role);
		imap_buf_str(b, ") \"/\" ");
		imap_write_mailbox(b, f->name, s->utf8);
		if (child_subscribed)
			imap_buf_str(b, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
		imap_buf_str(b, "\r\n");
		if ((l->ret & IMAP_LIST_RET_STATUS) && f->exists && !lsub) {
			imap_buf_str(b, "* STATUS ");
			imap_write_mailbox(b, f->name, s->utf8);
			imap_buf_str(b, " ");
			imapd_write_status_items(s, b, f, l->status_items);
			imap_buf_str(b, "\r\n");
		}
		if (b->len >= IMAPD_READ_CHUNK)
			imapd_flush(s);
	}
	imapd_flush(s);
	for (unsigned p = 0; p < l->pattern_count; p++)
		free(pats[p]);
	free(pats);
	store_folder_list_free(&list, n);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "%s completed", cmd->def->name);
}

void imapd_write_list_of(struct imapd_session *s, struct imap_buf *b, const char *name,
			 const char *old_name)
{
	struct store_folder_info info;
	char *error = NULL;
	if (store_folder_status(imapd_store(s), name, &info, &error) <= 0) {
		free(error);
		return;
	}
	imap_buf_printf(b, "* LIST (%s%s%s%s) \"/\" ",
			info.has_children ? "\\HasChildren" : "\\HasNoChildren",
			info.subscribed ? " \\Subscribed" : "", info.role != NULL ? " " : "",
			info.role != NULL ? info.role : "");
	imap_write_mailbox(b, info.name, s->utf8);
	if (old_name != NULL) {
		imap_buf_str(b, " (\"OLDNAME\" (");
		imap_write_mailbox(b, old_name, s->utf8);
		imap_buf_str(b, "))");
	}
	imap_buf_str(b, "\r\n");
	store_folder_info_clear(&info);
}

void imapd_cmd_status(struct imapd_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_status *st = &cmd->u.status;
	struct store_folder_info *list;
	size_t n;
	if (imapd_folders(s, &list, &n) < 0)
		return;
	const struct store_folder_info *f = NULL;
	for (size_t i = 0; i < n && f == NULL; i++)
		if (list[i].exists && strcmp(list[i].name, st->mailbox.name) == 0)
			f = &list[i];
	if (f == NULL) {
		store_folder_list_free(&list, n);
		imapd_done(s, IMAP_NO, IMAP_CODE_NONEXISTENT, NULL, "No such mailbox");
		return;
	}
	imap_buf_str(&s->out, "* STATUS ");
	imap_write_mailbox(&s->out, f->name, s->utf8);
	imap_buf_str(&s->out, " ");
	imapd_write_status_items(s, &s->out, f, st->items);
	imap_buf_str(&s->out, "\r\n");
	imapd_flush(s);
	store_folder_list_free(&list, n);
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "STATUS completed");
}

static const char *imapd_role(unsigned use)
{
	if (use & IMAP_USE_SENT)
		return STORE_ROLE_SENT;
	if (use & IMAP_USE_DRAFTS)
		return STORE_ROLE_DRAFTS;
	if (use & IMAP_USE_TRASH)
		return STORE_ROLE_TRASH;
	if (use & IMAP_USE_JUNK)
		return STORE_ROLE_JUNK;
	if (use & IMAP_USE_ARCHIVE)
		return STORE_ROLE_ARCHIVE;
	return NULL;
}

void imapd_cmd_create(struct imapd_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_create *c = &cmd->u.create;
	const char *role = imapd_role(c->use);
	if (c->use != 0 && (role == NULL || (c->use & (c->use - 1)) != 0)) {
		imapd_done(s, IMAP_NO, IMAP_CODE_USEATTR, NULL,
			   "One of \\Sent \\Drafts \\Trash \\Junk \\Archive is supported");
		return;
	}
	/* a trailing delimiter only says the name will hold others */
	char *name = xstrdup(c->mailbox.name);
	size_t len = strlen(name);
	if (len > 1 && name[len - 1] == '/')
		name[len - 1] = '\0';
	char *error = NULL;
	int r = store_folder_create(imapd_store(s), name, role, &error);
	struct store_folder_info info;
	if (r > 0 && store_folder_status(imapd_store(s), name, &info, &error) > 0) {
		/* OBJECTID (RFC 8474 4.1) */
		char code[STORE_OBJECTID_MAX + 3];
		snprintf(code, sizeof(code), "(%s)", info.mailbox_id);
		store_folder_info_clear(&info);
		free(name);
		imapd_done(s, IMAP_OK, IMAP_CODE_MAILBOXID, code, "CREATE completed");
		free(error);
		return;
	}
	free(name);
	if (r > 0)
		imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "CREATE completed");
	else if (r == 0)
		imapd_done(s, IMAP_NO, IMAP_CODE_ALREADYEXISTS, NULL, "Mailbox exists already");
	else
		imapd_done(s, IMAP_NO, IMAP_CODE_CANNOT, NULL, "Cannot create: %s", error);
	free(error);
}

void imapd_cmd_delete(struct imapd_session *s, struct imap_command *cmd)
{
	const char *name = cmd->u.mailbox.mailbox.name;
	if (strcmp(name, "INBOX") == 0) {
		imapd_done(s, IMAP_NO, IMAP_CODE_CANNOT, NULL, "INBOX cannot be deleted");
		return;
	}
	if (imapd_is_selected(s, name)) {
		imapd_done(s, IMAP_NO, IMAP_CODE_INUSE, NULL,
			   "Mailbox is selected; close it first");
		return;
	}
	struct store_folder_info *list;
	size_t n;
	if (imapd_folders(s, &list, &n) < 0)
		return;
	bool children = false;
	for (size_t i = 0; i < n; i++)
		if (list[i].exists && strcmp(list[i].name, name) == 0)
			children = list[i].has_children;
	store_folder_list_free(&list, n);
	if (children) {
		/* the store would take them along */
		imapd_done(s, IMAP_NO, IMAP_CODE_HASCHILDREN, NULL,
			   "Delete the mailboxes below it first");
		return;
	}
	char *error = NULL;
	int r = store_folder_delete(imapd_store(s), name, &error);
	if (r > 0)
		imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "DELETE completed");
	else if (r == 0)
		imapd_done(s, IMAP_NO, IMAP_CODE_NONEXISTENT, NULL, "No such mailbox");
	else
		imapd_done(s, IMAP_NO, IMAP_CODE_CANNOT, NULL, "Cannot delete: %s", error);
	free(error);
}

void imapd_cmd_rename(struct imapd_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_rename *rn = &cmd->u.rename;
	if (strcmp(rn->from.name, "INBOX") == 0) {
		imapd_done(s, IMAP_NO, IMAP_CODE_CANNOT, NULL, "Renaming INBOX is not supported");
		return;
	}
	if (imapd_is_selected(s, rn->from.name)) {
		imapd_done(s, IMAP_NO, IMAP_CODE_INUSE, NULL,
			   "Mailbox is selected; close it first");
		return;
	}
	char *error = NULL;
	int r = store_folder_rename(imapd_store(s), rn->from.name, rn->to.name, &error);
	if (r > 0) {
		/* RFC 9051 6.3.6: IMAP4rev2 clients learn the new name from a
		 * LIST with OLDNAME */
		if (s->rev2) {
			imapd_write_list_of(s, &s->out, rn->to.name, rn->from.name);
			imapd_flush(s);
		}
		imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "RENAME completed");
	} else if (r == 0) {
		imapd_done(s, IMAP_NO, IMAP_CODE_NONEXISTENT, NULL, "No such mailbox");
	} else {
		bool exists = error != NULL && strstr(error, "exist") != NULL;
		imapd_done(s, IMAP_NO, exists ? IMAP_CODE_ALREADYEXISTS : IMAP_CODE_CANNOT, NULL,
			   "Cannot rename: %s", error);
	}
	free(error);
}

static void imapd_subscribe(struct imapd_session *s, struct imap_command *cmd, bool on)
{
	char *error = NULL;
	if (store_folder_subscribe(imapd_store(s), cmd->u.mailbox.mailbox.name, on, &error) < 0) {
		imapd_done(s, IMAP_NO, IMAP_CODE_CANNOT, NULL, "Cannot %ssubscribe: %s",
			   on ? "" : "un", error);
		free(error);
		return;
	}
	imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "%s completed", cmd->def->name);
}

void imapd_cmd_subscribe(struct imapd_session *s, struct imap_command *cmd)
{
	imapd_subscribe(s, cmd, true);
}

void imapd_cmd_unsubscribe(struct imapd_session *s, struct imap_command *cmd)
{
	imapd_subscribe(s, cmd, false);
}
