#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "proto/imap/imap_arena.h"
#include "proto/imap/imap_command_private.h"
#include "proto/imap/imap_date.h"

/* SEARCH (ESEARCH RETURN options, SEARCHRES, CHARSET), SORT, THREAD and
 * the search-key tree they share. */

enum key_arg { KA_NONE, KA_STRING, KA_DATE, KA_NUMBER, KA_NZ_NUMBER, KA_SEQSET, KA_FLAG,
	       KA_HEADER, KA_OBJECTID, KA_NOT, KA_OR, KA_MODSEQ };

static const struct {
	const char *name;
	enum imap_search_type type;
	enum key_arg arg;
} search_keys[] = {
	{"ALL", IMAP_SEARCH_ALL, KA_NONE},
	{"ANSWERED", IMAP_SEARCH_ANSWERED, KA_NONE},
	{"BCC", IMAP_SEARCH_BCC, KA_STRING},
	{"BEFORE", IMAP_SEARCH_BEFORE, KA_DATE},
	{"BODY", IMAP_SEARCH_BODY, KA_STRING},
	{"CC", IMAP_SEARCH_CC, KA_STRING},
	{"DELETED", IMAP_SEARCH_DELETED, KA_NONE},
	{"DRAFT", IMAP_SEARCH_DRAFT, KA_NONE},
	{"FLAGGED", IMAP_SEARCH_FLAGGED, KA_NONE},
	{"FROM", IMAP_SEARCH_FROM, KA_STRING},
	{"HEADER", IMAP_SEARCH_HEADER, KA_HEADER},
	{"KEYWORD", IMAP_SEARCH_KEYWORD, KA_FLAG},
	{"LARGER", IMAP_SEARCH_LARGER, KA_NUMBER},
	{"NEW", IMAP_SEARCH_NEW, KA_NONE},
	{"NOT", IMAP_SEARCH_NOT, KA_NOT},
	{"OLD", IMAP_SEARCH_OLD, KA_NONE},
	{"ON", IMAP_SEARCH_ON, KA_DATE},
	{"OR", IMAP_SEARCH_OR, KA_OR},
	{"RECENT", IMAP_SEARCH_RECENT, KA_NONE},
	{"SEEN", IMAP_SEARCH_SEEN, KA_NONE},
	{"SENTBEFORE", IMAP_SEARCH_SENTBEFORE, KA_DATE},
	{"SENTON", IMAP_SEARCH_SENTON, KA_DATE},
	{"SENTSINCE", IMAP_SEARCH_SENTSINCE, KA_DATE},
	{"SINCE", IMAP_SEARCH_SINCE, KA_DATE},
	{"SMALLER", IMAP_SEARCH_SMALLER, KA_NUMBER},
	{"SUBJECT", IMAP_SEARCH_SUBJECT, KA_STRING},
	{"TEXT", IMAP_SEARCH_TEXT, KA_STRING},
	{"TO", IMAP_SEARCH_TO, KA_STRING},
	{"UID", IMAP_SEARCH_UID, KA_SEQSET},
	{"UNANSWERED", IMAP_SEARCH_UNANSWERED, KA_NONE},
	{"UNDELETED", IMAP_SEARCH_UNDELETED, KA_NONE},
	{"UNDRAFT", IMAP_SEARCH_UNDRAFT, KA_NONE},
	{"UNFLAGGED", IMAP_SEARCH_UNFLAGGED, KA_NONE},
	{"UNKEYWORD", IMAP_SEARCH_UNKEYWORD, KA_FLAG},
	{"UNSEEN", IMAP_SEARCH_UNSEEN, KA_NONE},
	{"MODSEQ", IMAP_SEARCH_MODSEQ, KA_MODSEQ},
	{"OLDER", IMAP_SEARCH_OLDER, KA_NZ_NUMBER},
	{"YOUNGER", IMAP_SEARCH_YOUNGER, KA_NZ_NUMBER},
	{"SAVEDBEFORE", IMAP_SEARCH_SAVEDATEBEFORE, KA_DATE},
	{"SAVEDON", IMAP_SEARCH_SAVEDATEON, KA_DATE},
	{"SAVEDSINCE", IMAP_SEARCH_SAVEDATESINCE, KA_DATE},
	{"SAVEDATESUPPORTED", IMAP_SEARCH_SAVEDATESUPPORTED, KA_NONE},
	{"EMAILID", IMAP_SEARCH_EMAILID, KA_OBJECTID},
	{"THREADID", IMAP_SEARCH_THREADID, KA_OBJECTID},
};

const char *imap_search_type_name(enum imap_search_type type)
{
	if (type == IMAP_SEARCH_AND)
		return "AND";
	if (type == IMAP_SEARCH_SEQSET)
		return "SEQSET";
	for (size_t i = 0; i < sizeof(search_keys) / sizeof(search_keys[0]); i++) {
		if (search_keys[i].type == type)
			return search_keys[i].name;
	}
	return "?";
}

struct search_parse {
	struct imap_command *cmd;
	const struct imap_arg *args;
	unsigned count;
	unsigned pos;
	unsigned keys;
	const char **error_r;
};

static int search_error(struct search_parse *sp, const char *text)
{
	*sp->error_r = text;
	return -1;
}

static bool objectid_ok(const char *s, size_t len)
{
	if (len == 0 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int parse_key(struct search_parse *sp, const struct imap_arg *args, unsigned count,
		     unsigned *pos, unsigned depth, struct imap_search_key **key_r);

/* keys args[*pos..count) into an AND node */
static int parse_and(struct search_parse *sp, const struct imap_arg *args, unsigned count,
		     unsigned depth, struct imap_search_key **key_r)
{
	struct imap_search_key *and = imap_arena_zalloc(sp->cmd->arena, sizeof(*and));
	and->type = IMAP_SEARCH_AND;
	struct imap_search_key **tail = &and->children;
	unsigned pos = 0;
	if (count == 0)
		return search_error(sp, "Empty search key list");
	while (pos < count) {
		if (parse_key(sp, args, count, &pos, depth, tail) < 0)
			return -1;
		tail = &(*tail)->next;
	}
	*key_r = and;
	return 1;
}

static int parse_key(struct search_parse *sp, const struct imap_arg *args, unsigned count,
		     unsigned *pos, unsigned depth, struct imap_search_key **key_r)
{
	struct imap_command *cmd = sp->cmd;
	if (depth >= IMAP_SEARCH_MAX_DEPTH)
		return imap_command_error(cmd, sp->error_r, "Search keys nested too deeply (max %d)",
					  IMAP_SEARCH_MAX_DEPTH);
	if (++sp->keys > IMAP_SEARCH_MAX_KEYS)
		return imap_command_error(cmd, sp->error_r, "Too many search keys (max %d)",
					  IMAP_SEARCH_MAX_KEYS);
	if (*pos >= count)
		return search_error(sp, "Missing search key");
	const struct imap_arg *arg = &args[(*pos)++];
	if (arg->type == IMAP_ARG_LIST)
		return parse_and(sp, arg->list, arg->list_count, depth + 1, key_r);
	struct imap_search_key *key = imap_arena_zalloc(cmd->arena, sizeof(*key));
	*key_r = key;
	const char *name;
	if (!imap_arg_get_atom(arg, &name) || arg->type == IMAP_ARG_NIL)
		return search_error(sp, "Invalid search key");
	/* a sequence set: digits, "*", "$" */
	if (arg->type == IMAP_ARG_NUMBER || name[0] == '*' || name[0] == '$' ||
	    (name[0] >= '0' && name[0] <= '9')) {
		key->type = IMAP_SEARCH_SEQSET;
		return imap_parse_seqset_arg(cmd, arg, &key->seqset, sp->error_r);
	}
	size_t k;
	for (k = 0; k < sizeof(search_keys) / sizeof(search_keys[0]); k++) {
		if (strcasecmp(name, search_keys[k].name) == 0)
			break;
	}
	if (k == sizeof(search_keys) / sizeof(search_keys[0]))
		return imap_command_error(cmd, sp->error_r, "Unknown search key: %s", name);
	key->type = search_keys[k].type;
	enum key_arg ka = search_keys[k].arg;
	if (ka == KA_NONE)
		return 1;
	if (ka == KA_NOT || ka == KA_OR) {
		if (parse_key(sp, args, count, pos, depth + 1, &key->children) < 0)
			return -1;
		if (ka == KA_OR &&
		    parse_key(sp, args, count, pos, depth + 1, &key->children->next) < 0)
			return -1;
		return 1;
	}
	if (*pos >= count)
		return imap_command_error(cmd, sp->error_r, "Missing argument for %s",
					  search_keys[k].name);
	const struct imap_arg *a = &args[(*pos)++];
	const char *s;
	size_t len;
	switch (ka) {
	case KA_STRING:
		if (!imap_arg_get_astring(a, &key->str, &key->str_len))
			return imap_command_error(cmd, sp->error_r, "Invalid string for %s",
						  search_keys[k].name);
		return 1;
	case KA_HEADER:
		if (!imap_arg_get_astring(a, &s, &len) || len == 0)
			return search_error(sp, "Invalid header name for HEADER");
		key->field = imap_command_upper(cmd, s);
		if (*pos >= count || !imap_arg_get_astring(&args[*pos], &key->str, &key->str_len))
			return search_error(sp, "Usage: HEADER field-name string");
		(*pos)++;
		return 1;
	case KA_DATE:
		if (a->type == IMAP_ARG_QUOTED || a->type == IMAP_ARG_ATOM)
			return imap_date_parse_date(a->str, a->len, &key->date, sp->error_r);
		return search_error(sp, "Invalid date (expected d-Mon-yyyy)");
	case KA_NUMBER:
		if (!imap_arg_get_number64(a, &key->number))
			return imap_command_error(cmd, sp->error_r, "Invalid number for %s",
						  search_keys[k].name);
		return 1;
	case KA_NZ_NUMBER: {
		uint32_t n;
		if (!imap_arg_get_nz_number(a, &n))
			return imap_command_error(cmd, sp->error_r, "Invalid interval for %s",
						  search_keys[k].name);
		key->number = n;
		return 1;
	}
	case KA_SEQSET:
		return imap_parse_seqset_arg(cmd, a, &key->seqset, sp->error_r);
	case KA_FLAG:
		if (a->type != IMAP_ARG_ATOM || a->atom_flags != 0)
			return search_error(sp, "Invalid keyword");
		key->str = a->str;
		key->str_len = a->len;
		return 1;
	case KA_OBJECTID:
		if (!imap_arg_get_atom(a, &s) || !objectid_ok(s, a->len))
			return search_error(sp, "Invalid object id");
		key->str = s;
		key->str_len = a->len;
		return 1;
	case KA_MODSEQ:
		if (a->type != IMAP_ARG_NUMBER) {
			/* entry-name entry-type-req mod-sequence-valzer */
			if (!imap_arg_get_string(a, &s, &len) || strncasecmp(s, "/flags/", 7) != 0)
				return search_error(sp,
						    "Usage: MODSEQ [\"/flags/name\" priv|shared|all] "
						    "mod-sequence");
			key->modseq_entry = s;
			if (*pos + 1 >= count)
				return search_error(sp, "Usage: MODSEQ [entry type] mod-sequence");
			a = &args[(*pos)++];
			if (imap_arg_atom_eq(a, "priv"))
				key->modseq_entry_type = IMAP_MODSEQ_ENTRY_PRIV;
			else if (imap_arg_atom_eq(a, "shared"))
				key->modseq_entry_type = IMAP_MODSEQ_ENTRY_SHARED;
			else if (imap_arg_atom_eq(a, "all"))
				key->modseq_entry_type = IMAP_MODSEQ_ENTRY_ALL;
			else
				return search_error(sp, "MODSEQ entry type must be priv, shared "
							"or all");
			a = &args[(*pos)++];
		}
		if (!imap_arg_get_number64(a, &key->number))
			return search_error(sp, "Invalid mod-sequence for MODSEQ");
		return 1;
	default:
		return search_error(sp, "Invalid search key");
	}
}

/* [CHARSET x] keys..., from args[*pos] */
static int parse_program(struct imap_command *cmd, const struct imap_arg *args, unsigned count,
			 unsigned pos, bool charset_required, const char **charset_r,
			 struct imap_search_key **keys_r, const char **error_r)
{
	const char *s;
	size_t len;
	if (charset_required) {
		if (pos >= count || !imap_arg_get_astring(&args[pos], &s, &len) || len == 0)
			return imap_command_error(cmd, error_r, "Missing charset");
		*charset_r = imap_command_upper(cmd, s);
		pos++;
	} else if (pos < count && imap_arg_atom_eq(&args[pos], "CHARSET")) {
		if (pos + 1 >= count || !imap_arg_get_astring(&args[pos + 1], &s, &len) ||
		    len == 0)
			return imap_command_error(cmd, error_r, "Usage: CHARSET name");
		*charset_r = imap_command_upper(cmd, s);
		pos += 2;
	}
	struct search_parse sp = {.cmd = cmd, .error_r = error_r};
	if (pos >= count)
		return imap_command_error(cmd, error_r, "Missing search keys");
	return parse_and(&sp, args + pos, count - pos, 0, keys_r);
}

static const struct {
	const char *name;
	unsigned bit;
} search_return[] = {
	{"MIN", IMAP_SEARCH_RET_MIN},	  {"MAX", IMAP_SEARCH_RET_MAX},
	{"ALL", IMAP_SEARCH_RET_ALL},	  {"COUNT", IMAP_SEARCH_RET_COUNT},
	{"SAVE", IMAP_SEARCH_RET_SAVE},
};

IMAP_PARSER_FN(imap_parse_search)
{
	struct imap_cmd_search *s = &cmd->u.search;
	unsigned pos = 0;
	if (count > 0 && imap_arg_atom_eq(&args[0], "RETURN")) {
		const struct imap_arg *items;
		unsigned n;
		if (count < 2 || !imap_arg_get_list(&args[1], &items, &n))
			return imap_command_error(cmd, error_r, "Usage: SEARCH RETURN (options) keys");
		for (unsigned i = 0; i < n; i++) {
			unsigned bit = 0;
			for (size_t k = 0; k < sizeof(search_return) / sizeof(search_return[0]); k++) {
				if (imap_arg_atom_eq(&items[i], search_return[k].name))
					bit = search_return[k].bit;
			}
			if (bit == 0) {
				const char *name = "";
				imap_arg_get_atom(&items[i], &name);
				return imap_command_error(cmd, error_r,
							  "Unknown SEARCH return option: %s", name);
			}
			s->ret |= bit;
		}
		/* RETURN () is RETURN (ALL) (RFC 4731) */
		if (s->ret == 0)
			s->ret = IMAP_SEARCH_RET_ALL;
		s->esearch = true;
		pos = 2;
	}
	return parse_program(cmd, args, count, pos, false, &s->charset, &s->keys, error_r);
}

static const struct {
	const char *name;
	enum imap_sort_key key;
} sort_keys[] = {
	{"ARRIVAL", IMAP_SORT_ARRIVAL},	      {"CC", IMAP_SORT_CC},
	{"DATE", IMAP_SORT_DATE},	      {"FROM", IMAP_SORT_FROM},
	{"SIZE", IMAP_SORT_SIZE},	      {"SUBJECT", IMAP_SORT_SUBJECT},
	{"TO", IMAP_SORT_TO},		      {"DISPLAYFROM", IMAP_SORT_DISPLAYFROM},
	{"DISPLAYTO", IMAP_SORT_DISPLAYTO},
};

IMAP_PARSER_FN(imap_parse_sort)
{
	struct imap_cmd_sort *s = &cmd->u.sort;
	const struct imap_arg *items;
	unsigned n;
	if (count < 3 || !imap_arg_get_list(&args[0], &items, &n) || n == 0)
		return imap_command_error(cmd, error_r, "Usage: SORT (criteria) charset keys");
	if (n > IMAP_MAX_SORT_CRITERIA)
		return imap_command_error(cmd, error_r, "Too many sort criteria");
	s->criteria = imap_arena_zalloc(cmd->arena, n * sizeof(*s->criteria));
	bool reverse = false;
	for (unsigned i = 0; i < n; i++) {
		if (imap_arg_atom_eq(&items[i], "REVERSE")) {
			if (reverse)
				return imap_command_error(cmd, error_r, "REVERSE given twice");
			reverse = true;
			continue;
		}
		size_t k;
		for (k = 0; k < sizeof(sort_keys) / sizeof(sort_keys[0]); k++) {
			if (imap_arg_atom_eq(&items[i], sort_keys[k].name))
				break;
		}
		if (k == sizeof(sort_keys) / sizeof(sort_keys[0])) {
			const char *name = "";
			imap_arg_get_atom(&items[i], &name);
			return imap_command_error(cmd, error_r, "Unknown sort criterion: %s", name);
		}
		s->criteria[s->count].key = sort_keys[k].key;
		s->criteria[s->count++].reverse = reverse;
		reverse = false;
	}
	if (reverse || s->count == 0)
		return imap_command_error(cmd, error_r, "REVERSE must precede a sort key");
	return parse_program(cmd, args, count, 1, true, &s->charset, &s->keys, error_r);
}

IMAP_PARSER_FN(imap_parse_thread)
{
	struct imap_cmd_thread *t = &cmd->u.thread;
	if (count < 3)
		return imap_command_error(cmd, error_r, "Usage: THREAD algorithm charset keys");
	if (imap_arg_atom_eq(&args[0], "REFERENCES"))
		t->algorithm = IMAP_THREAD_REFERENCES;
	else if (imap_arg_atom_eq(&args[0], "ORDEREDSUBJECT"))
		t->algorithm = IMAP_THREAD_ORDEREDSUBJECT;
	else
		return imap_command_error(cmd, error_r, "Unknown threading algorithm");
	return parse_program(cmd, args, count, 1, true, &t->charset, &t->keys, error_r);
}

/* ---- tree helpers ---- */

struct fmt {
	char *buf;
	size_t len, cap;
};

static void fmt_put(struct fmt *f, const char *s, size_t n)
{
	if (f->len + n + 1 > f->cap) {
		f->cap = (f->len + n + 1) * 2;
		f->buf = xrealloc(f->buf, f->cap);
	}
	memcpy(f->buf + f->len, s, n);
	f->len += n;
	f->buf[f->len] = '\0';
}

static void fmt_str(struct fmt *f, const char *s)
{
	fmt_put(f, s, strlen(s));
}

static void format_key(struct fmt *f, const struct imap_search_key *key)
{
	char tmp[64];
	if (key->type == IMAP_SEARCH_AND) {
		fmt_str(f, "(");
		for (const struct imap_search_key *c = key->children; c != NULL; c = c->next) {
			if (c != key->children)
				fmt_str(f, " ");
			format_key(f, c);
		}
		fmt_str(f, ")");
		return;
	}
	if (key->type == IMAP_SEARCH_SEQSET) {
		char *s = imap_seqset_format(&key->seqset);
		fmt_str(f, s);
		free(s);
		return;
	}
	fmt_str(f, imap_search_type_name(key->type));
	switch (key->type) {
	case IMAP_SEARCH_NOT:
	case IMAP_SEARCH_OR:
		for (const struct imap_search_key *c = key->children; c != NULL; c = c->next) {
			fmt_str(f, " ");
			format_key(f, c);
		}
		return;
	case IMAP_SEARCH_UID: {
		char *s = imap_seqset_format(&key->seqset);
		fmt_str(f, " ");
		fmt_str(f, s);
		free(s);
		return;
	}
	case IMAP_SEARCH_BEFORE:
	case IMAP_SEARCH_ON:
	case IMAP_SEARCH_SINCE:
	case IMAP_SEARCH_SENTBEFORE:
	case IMAP_SEARCH_SENTON:
	case IMAP_SEARCH_SENTSINCE:
	case IMAP_SEARCH_SAVEDATEBEFORE:
	case IMAP_SEARCH_SAVEDATEON:
	case IMAP_SEARCH_SAVEDATESINCE: {
		struct tm tm;
		gmtime_r(&key->date, &tm);
		strftime(tmp, sizeof(tmp), " %Y-%m-%d", &tm);
		fmt_str(f, tmp);
		return;
	}
	case IMAP_SEARCH_LARGER:
	case IMAP_SEARCH_SMALLER:
	case IMAP_SEARCH_OLDER:
	case IMAP_SEARCH_YOUNGER:
	case IMAP_SEARCH_MODSEQ:
		if (key->modseq_entry != NULL) {
			fmt_str(f, " \"");
			fmt_str(f, key->modseq_entry);
			fmt_str(f, "\"");
			fmt_str(f, key->modseq_entry_type == IMAP_MODSEQ_ENTRY_PRIV     ? " priv"
				   : key->modseq_entry_type == IMAP_MODSEQ_ENTRY_SHARED ? " shared"
											: " all");
		}
		snprintf(tmp, sizeof(tmp), " %llu", (unsigned long long)key->number);
		fmt_str(f, tmp);
		return;
	case IMAP_SEARCH_HEADER:
		fmt_str(f, " ");
		fmt_str(f, key->field);
		/* fall through */
	default:
		if (key->str != NULL) {
			fmt_str(f, " \"");
			fmt_put(f, key->str, key->str_len);
			fmt_str(f, "\"");
		}
		return;
	}
}

char *imap_search_format(const struct imap_search_key *key)
{
	struct fmt f = {0};
	fmt_str(&f, "");
	format_key(&f, key);
	return f.buf;
}

bool imap_search_uses_saved(const struct imap_search_key *key)
{
	for (; key != NULL; key = key->next) {
		if ((key->type == IMAP_SEARCH_SEQSET || key->type == IMAP_SEARCH_UID) &&
		    key->seqset.saved)
			return true;
		if (imap_search_uses_saved(key->children))
			return true;
	}
	return false;
}

bool imap_search_has_modseq(const struct imap_search_key *key)
{
	for (; key != NULL; key = key->next) {
		if (key->type == IMAP_SEARCH_MODSEQ || imap_search_has_modseq(key->children))
			return true;
	}
	return false;
}
