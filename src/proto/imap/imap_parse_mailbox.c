#include <string.h>
#include <strings.h>

#include "proto/imap/imap_arena.h"
#include "proto/imap/imap_command_private.h"
#include "proto/imap/imap_date.h"

/* Mailbox commands: SELECT/EXAMINE (CONDSTORE, QRESYNC), CREATE (USE),
 * DELETE, RENAME, (UN)SUBSCRIBE, GETQUOTAROOT, LIST (LIST-EXTENDED,
 * SPECIAL-USE, LIST-STATUS), LSUB, STATUS, APPEND (MULTIAPPEND, BINARY,
 * UTF8). */

static int parse_qresync(struct imap_command *cmd, const struct imap_arg *arg,
			 const char **error_r)
{
	struct imap_cmd_select *s = &cmd->u.select;
	const struct imap_arg *items;
	unsigned n, i = 2;
	const char *usage = "Usage: QRESYNC (uidvalidity modseq [known-uids] "
			    "[(known-sequence-set known-uid-set)])";
	if (!imap_arg_get_list(arg, &items, &n) || n < 2 || n > 4 ||
	    !imap_arg_get_nz_number(&items[0], &s->uidvalidity) ||
	    !imap_arg_get_number64(&items[1], &s->modseq))
		return imap_command_error(cmd, error_r, "%s", usage);
	s->qresync = true;
	if (i < n && items[i].type != IMAP_ARG_LIST) {
		if (imap_parse_seqset_arg(cmd, &items[i], &s->known_uids, error_r) < 0)
			return -1;
		if (s->known_uids.saved || imap_seqset_has_star(&s->known_uids))
			return imap_command_error(cmd, error_r,
						  "known-uids must not use \"*\" or \"$\"");
		s->has_known_uids = true;
		i++;
	}
	if (i < n) {
		const struct imap_arg *m;
		unsigned mn;
		if (!imap_arg_get_list(&items[i], &m, &mn) || mn != 2 || i + 1 != n)
			return imap_command_error(cmd, error_r, "%s", usage);
		if (imap_parse_seqset_arg(cmd, &m[0], &s->seq_match_seqs, error_r) < 0 ||
		    imap_parse_seqset_arg(cmd, &m[1], &s->seq_match_uids, error_r) < 0)
			return -1;
		if (imap_seqset_count(&s->seq_match_seqs) != imap_seqset_count(&s->seq_match_uids))
			return imap_command_error(cmd, error_r,
						  "QRESYNC sequence match sets differ in size");
		s->has_seq_match = true;
	}
	return 1;
}

IMAP_PARSER_FN(imap_parse_select)
{
	struct imap_cmd_select *s = &cmd->u.select;
	if (count < 1 || count > 2)
		return imap_command_error(cmd, error_r, "Usage: %s mailbox [(parameters)]",
					  cmd->name);
	if (imap_parse_mailbox_arg(cmd, &args[0], false, &s->mailbox, error_r) < 0)
		return -1;
	if (count == 1)
		return 1;
	const struct imap_arg *items;
	unsigned n;
	if (!imap_arg_get_list(&args[1], &items, &n))
		return imap_command_error(cmd, error_r, "Usage: %s mailbox [(parameters)]",
					  cmd->name);
	for (unsigned i = 0; i < n; i++) {
		if (imap_arg_atom_eq(&items[i], "CONDSTORE")) {
			s->condstore = true;
		} else if (imap_arg_atom_eq(&items[i], "QRESYNC")) {
			if (s->qresync || i + 1 == n)
				return imap_command_error(cmd, error_r, "Invalid QRESYNC parameter");
			if (parse_qresync(cmd, &items[++i], error_r) < 0)
				return -1;
		} else {
			const char *name = "";
			imap_arg_get_atom(&items[i], &name);
			return imap_command_error(cmd, error_r, "Unknown %s parameter: %s",
						  cmd->name, name);
		}
	}
	return 1;
}

static const struct {
	const char *name;
	unsigned bit;
} use_attrs[] = {
	{"\\All", IMAP_USE_ALL},	 {"\\Archive", IMAP_USE_ARCHIVE},
	{"\\Drafts", IMAP_USE_DRAFTS},	 {"\\Flagged", IMAP_USE_FLAGGED},
	{"\\Junk", IMAP_USE_JUNK},	 {"\\Sent", IMAP_USE_SENT},
	{"\\Trash", IMAP_USE_TRASH},	 {"\\Important", IMAP_USE_IMPORTANT},
};

IMAP_PARSER_FN(imap_parse_create)
{
	struct imap_cmd_create *c = &cmd->u.create;
	const char *usage = "Usage: CREATE mailbox [(USE (\\special-use ...))]";
	if (count < 1 || count > 2)
		return imap_command_error(cmd, error_r, "%s", usage);
	if (imap_parse_mailbox_arg(cmd, &args[0], false, &c->mailbox, error_r) < 0)
		return -1;
	if (c->mailbox.wire[0] == '\0')
		return imap_command_error(cmd, error_r, "Empty mailbox name");
	if (count == 1)
		return 1;
	const struct imap_arg *params, *uses;
	unsigned np, nu;
	if (!imap_arg_get_list(&args[1], &params, &np))
		return imap_command_error(cmd, error_r, "%s", usage);
	for (unsigned i = 0; i < np; i += 2) {
		if (!imap_arg_atom_eq(&params[i], "USE")) {
			const char *name = "";
			imap_arg_get_atom(&params[i], &name);
			return imap_command_error(cmd, error_r, "Unknown CREATE parameter: %s", name);
		}
		if (i + 1 >= np || !imap_arg_get_list(&params[i + 1], &uses, &nu) || nu == 0)
			return imap_command_error(cmd, error_r, "%s", usage);
		for (unsigned k = 0; k < nu; k++) {
			const char *s;
			bool found = false;
			if (!imap_arg_get_atom(&uses[k], &s))
				return imap_command_error(cmd, error_r, "%s", usage);
			for (size_t u = 0; u < sizeof(use_attrs) / sizeof(use_attrs[0]); u++) {
				if (strcasecmp(s, use_attrs[u].name) == 0) {
					c->use |= use_attrs[u].bit;
					found = true;
				}
			}
			if (!found)
				return imap_command_error(cmd, error_r,
							  "Unknown special-use attribute: %s", s);
		}
	}
	return 1;
}

IMAP_PARSER_FN(imap_parse_one_mailbox)
{
	if (count != 1)
		return imap_command_error(cmd, error_r, "Usage: %s mailbox", cmd->name);
	return imap_parse_mailbox_arg(cmd, &args[0], false, &cmd->u.mailbox.mailbox, error_r);
}

IMAP_PARSER_FN(imap_parse_rename)
{
	struct imap_cmd_rename *r = &cmd->u.rename;
	if (count != 2)
		return imap_command_error(cmd, error_r, "Usage: RENAME old-name new-name");
	if (imap_parse_mailbox_arg(cmd, &args[0], false, &r->from, error_r) < 0 ||
	    imap_parse_mailbox_arg(cmd, &args[1], false, &r->to, error_r) < 0)
		return -1;
	return 1;
}

static const struct {
	const char *name;
	unsigned bit;
} status_items[] = {
	{"MESSAGES", IMAP_STATUS_MESSAGES},
	{"RECENT", IMAP_STATUS_RECENT},
	{"UIDNEXT", IMAP_STATUS_UIDNEXT},
	{"UIDVALIDITY", IMAP_STATUS_UIDVALIDITY},
	{"UNSEEN", IMAP_STATUS_UNSEEN},
	{"DELETED", IMAP_STATUS_DELETED},
	{"SIZE", IMAP_STATUS_SIZE},
	{"HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ},
	{"APPENDLIMIT", IMAP_STATUS_APPENDLIMIT},
	{"DELETED-STORAGE", IMAP_STATUS_DELETED_STORAGE},
	{"MAILBOXID", IMAP_STATUS_MAILBOXID},
};

const char *imap_status_item_name(unsigned bit)
{
	for (size_t i = 0; i < sizeof(status_items) / sizeof(status_items[0]); i++) {
		if (status_items[i].bit == bit)
			return status_items[i].name;
	}
	return NULL;
}

static int parse_status_items(struct imap_command *cmd, const struct imap_arg *arg,
			      unsigned *items_r, const char **error_r)
{
	const struct imap_arg *items;
	unsigned n;
	if (!imap_arg_get_list(arg, &items, &n) || n == 0)
		return imap_command_error(cmd, error_r, "Expected a list of status items");
	for (unsigned i = 0; i < n; i++) {
		unsigned bit = 0;
		for (size_t k = 0; k < sizeof(status_items) / sizeof(status_items[0]); k++) {
			if (imap_arg_atom_eq(&items[i], status_items[k].name))
				bit = status_items[k].bit;
		}
		if (bit == 0) {
			const char *name = "";
			imap_arg_get_atom(&items[i], &name);
			return imap_command_error(cmd, error_r, "Unknown status item: %s", name);
		}
		*items_r |= bit;
	}
	return 1;
}

IMAP_PARSER_FN(imap_parse_status)
{
	if (count != 2)
		return imap_command_error(cmd, error_r, "Usage: STATUS mailbox (items)");
	if (imap_parse_mailbox_arg(cmd, &args[0], false, &cmd->u.status.mailbox, error_r) < 0)
		return -1;
	return parse_status_items(cmd, &args[1], &cmd->u.status.items, error_r);
}

static const struct {
	const char *name;
	unsigned bit;
} list_selection[] = {
	{"SUBSCRIBED", IMAP_LIST_SEL_SUBSCRIBED},
	{"REMOTE", IMAP_LIST_SEL_REMOTE},
	{"RECURSIVEMATCH", IMAP_LIST_SEL_RECURSIVEMATCH},
	{"SPECIAL-USE", IMAP_LIST_SEL_SPECIAL_USE},
}, list_return[] = {
	{"SUBSCRIBED", IMAP_LIST_RET_SUBSCRIBED},
	{"CHILDREN", IMAP_LIST_RET_CHILDREN},
	{"SPECIAL-USE", IMAP_LIST_RET_SPECIAL_USE},
	{"STATUS", IMAP_LIST_RET_STATUS},
};

IMAP_PARSER_FN(imap_parse_list)
{
	struct imap_cmd_list *l = &cmd->u.list;
	const char *usage = "Usage: LIST [(selection)] reference pattern [RETURN (options)]";
	const struct imap_arg *items;
	unsigned n, i = 0;
	if (count > 0 && args[0].type == IMAP_ARG_LIST) {
		l->extended = true;
		imap_arg_get_list(&args[0], &items, &n);
		for (unsigned k = 0; k < n; k++) {
			unsigned bit = 0;
			for (size_t s = 0; s < sizeof(list_selection) / sizeof(list_selection[0]);
			     s++) {
				if (imap_arg_atom_eq(&items[k], list_selection[s].name))
					bit = list_selection[s].bit;
			}
			if (bit == 0) {
				const char *name = "";
				imap_arg_get_atom(&items[k], &name);
				return imap_command_error(cmd, error_r,
							  "Unknown LIST selection option: %s", name);
			}
			l->selection |= bit;
		}
		if (l->selection == IMAP_LIST_SEL_RECURSIVEMATCH)
			return imap_command_error(cmd, error_r,
						  "RECURSIVEMATCH needs another selection option");
		i++;
	}
	if (count < i + 2)
		return imap_command_error(cmd, error_r, "%s", usage);
	if (imap_parse_mailbox_arg(cmd, &args[i], false, &l->reference, error_r) < 0)
		return -1;
	i++;
	if (args[i].type == IMAP_ARG_LIST) {
		imap_arg_get_list(&args[i], &items, &n);
		if (n == 0)
			return imap_command_error(cmd, error_r, "Empty pattern list");
		l->extended = true;
	} else {
		items = &args[i];
		n = 1;
	}
	if (n > IMAP_MAX_LIST_PATTERNS)
		return imap_command_error(cmd, error_r, "Too many patterns (max %d)",
					  IMAP_MAX_LIST_PATTERNS);
	l->patterns = imap_arena_alloc(cmd->arena, n * sizeof(*l->patterns));
	l->pattern_count = n;
	for (unsigned k = 0; k < n; k++) {
		if (imap_parse_mailbox_arg(cmd, &items[k], true, &l->patterns[k], error_r) < 0)
			return -1;
	}
	i++;
	if (i == count)
		return 1;
	if (!imap_arg_atom_eq(&args[i], "RETURN") || i + 2 != count ||
	    !imap_arg_get_list(&args[i + 1], &items, &n))
		return imap_command_error(cmd, error_r, "%s", usage);
	l->extended = true;
	for (unsigned k = 0; k < n; k++) {
		unsigned bit = 0;
		for (size_t s = 0; s < sizeof(list_return) / sizeof(list_return[0]); s++) {
			if (imap_arg_atom_eq(&items[k], list_return[s].name))
				bit = list_return[s].bit;
		}
		if (bit == 0) {
			const char *name = "";
			imap_arg_get_atom(&items[k], &name);
			return imap_command_error(cmd, error_r, "Unknown LIST return option: %s",
						  name);
		}
		l->ret |= bit;
		if (bit == IMAP_LIST_RET_STATUS) {
			if (k + 1 == n)
				return imap_command_error(cmd, error_r,
							  "LIST RETURN STATUS needs (items)");
			if (parse_status_items(cmd, &items[++k], &l->status_items, error_r) < 0)
				return -1;
		}
	}
	return 1;
}

IMAP_PARSER_FN(imap_parse_lsub)
{
	struct imap_cmd_list *l = &cmd->u.list;
	if (count != 2)
		return imap_command_error(cmd, error_r, "Usage: LSUB reference pattern");
	l->patterns = imap_arena_alloc(cmd->arena, sizeof(*l->patterns));
	l->pattern_count = 1;
	if (imap_parse_mailbox_arg(cmd, &args[0], false, &l->reference, error_r) < 0 ||
	    imap_parse_mailbox_arg(cmd, &args[1], true, &l->patterns[0], error_r) < 0)
		return -1;
	return 1;
}

/* one message of APPEND starting at args[*i] */
static int parse_append_message(struct imap_command *cmd, const struct imap_arg *args,
				unsigned count, unsigned *i, struct imap_append_message *m,
				const char **error_r)
{
	const char *usage = "Usage: APPEND mailbox [(flags)] [\"date-time\"] {size}";
	if (*i < count && args[*i].type == IMAP_ARG_LIST) {
		if (imap_parse_flag_list(cmd, &args[*i], false, &m->flags, &m->flag_count,
					 error_r) < 0)
			return -1;
		(*i)++;
	}
	if (*i < count && args[*i].type == IMAP_ARG_QUOTED) {
		if (imap_date_parse_datetime(args[*i].str, args[*i].len, &m->date, error_r) < 0)
			return -1;
		m->has_date = true;
		(*i)++;
	}
	if (*i >= count)
		return imap_command_error(cmd, error_r, "%s", usage);
	const struct imap_arg *data = &args[*i];
	if (imap_arg_atom_eq(data, "UTF8")) {
		const struct imap_arg *items;
		unsigned n;
		if (*i + 1 >= count || !imap_arg_get_list(&args[*i + 1], &items, &n) || n != 1 ||
		    items[0].type != IMAP_ARG_LITERAL || !items[0].literal8)
			return imap_command_error(cmd, error_r,
						  "Usage: APPEND mailbox ... UTF8 (~{size})");
		m->utf8 = true;
		data = &items[0];
		(*i)++;
	} else if (imap_arg_atom_eq(data, "CATENATE")) {
		return imap_command_error(cmd, error_r, "CATENATE is not supported");
	} else if (data->type != IMAP_ARG_LITERAL) {
		return imap_command_error(cmd, error_r, "%s", usage);
	}
	m->data = data->streamed ? NULL : (const unsigned char *)data->str;
	m->size = data->len;
	m->streamed = data->streamed;
	m->stream_index = data->stream_index;
	m->binary = data->literal8 && !m->utf8;
	(*i)++;
	return 1;
}

IMAP_PARSER_FN(imap_parse_append)
{
	struct imap_cmd_append *a = &cmd->u.append;
	if (count < 2)
		return imap_command_error(cmd, error_r,
					  "Usage: APPEND mailbox [(flags)] [\"date-time\"] {size}");
	if (imap_parse_mailbox_arg(cmd, &args[0], false, &a->mailbox, error_r) < 0)
		return -1;
	/* at most one message per remaining argument */
	unsigned cap = count - 1 < IMAP_MAX_MULTIAPPEND ? count - 1 : IMAP_MAX_MULTIAPPEND;
	a->messages = imap_arena_zalloc(cmd->arena, cap * sizeof(*a->messages));
	unsigned i = 1;
	while (i < count) {
		if (a->count == IMAP_MAX_MULTIAPPEND)
			return imap_command_error(cmd, error_r,
						  "Too many messages in one APPEND (max %d)",
						  IMAP_MAX_MULTIAPPEND);
		if (parse_append_message(cmd, args, count, &i, &a->messages[a->count], error_r) <
		    0)
			return -1;
		a->count++;
	}
	return 1;
}
