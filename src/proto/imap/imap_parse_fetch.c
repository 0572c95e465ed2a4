#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto/imap/imap_arena.h"
#include "proto/imap/imap_command_private.h"

/* Message commands: FETCH (every item, sections, partials, macros,
 * CHANGEDSINCE / VANISHED), STORE (UNCHANGEDSINCE), COPY, MOVE,
 * UID EXPUNGE. */

static const struct {
	const char *name;
	enum imap_fetch_kind kind;
} fetch_atoms[] = {
	{"FLAGS", IMAP_FETCH_FLAGS},
	{"INTERNALDATE", IMAP_FETCH_INTERNALDATE},
	{"RFC822", IMAP_FETCH_RFC822},
	{"RFC822.HEADER", IMAP_FETCH_RFC822_HEADER},
	{"RFC822.SIZE", IMAP_FETCH_RFC822_SIZE},
	{"RFC822.TEXT", IMAP_FETCH_RFC822_TEXT},
	{"ENVELOPE", IMAP_FETCH_ENVELOPE},
	{"BODY", IMAP_FETCH_BODY},
	{"BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE},
	{"UID", IMAP_FETCH_UID},
	{"MODSEQ", IMAP_FETCH_MODSEQ},
	{"SAVEDATE", IMAP_FETCH_SAVEDATE},
	{"EMAILID", IMAP_FETCH_EMAILID},
	{"THREADID", IMAP_FETCH_THREADID},
};

static const struct {
	const char *name;
	enum imap_fetch_kind items[5];
	unsigned count;
} fetch_macros[] = {
	{"ALL",
	 {IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE, IMAP_FETCH_RFC822_SIZE, IMAP_FETCH_ENVELOPE},
	 4},
	{"FAST", {IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE, IMAP_FETCH_RFC822_SIZE}, 3},
	{"FULL",
	 {IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE, IMAP_FETCH_RFC822_SIZE, IMAP_FETCH_ENVELOPE,
	  IMAP_FETCH_BODY},
	 5},
};

static bool header_field_name_ok(const char *s, size_t len)
{
	/* RFC 5322 field-name: printable ASCII except ":" */
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == ':')
			return false;
	}
	return true;
}

/* the text inside the brackets: part path, then HEADER / HEADER.FIELDS
 * [.NOT] (list) / MIME / TEXT */
static int parse_section(struct imap_command *cmd, const struct imap_arg *sec,
			 struct imap_fetch_item *item, bool binary, const char **error_r)
{
	const struct imap_arg *in = sec->list;
	unsigned n = sec->list_count;
	char canon[1024];
	size_t clen = 0;
	item->text = IMAP_SECTION_ALL;
	if (n == 0)
		goto done;
	const char *spec;
	if (!imap_arg_get_atom(&in[0], &spec) || in[0].atom_flags != 0)
		return imap_command_error(cmd, error_r, "Invalid section");
	const char *p = spec;
	while (*p >= '0' && *p <= '9') {
		uint64_t v = 0;
		while (*p >= '0' && *p <= '9' && v <= UINT32_MAX)
			v = v * 10 + (uint64_t)(*p++ - '0');
		if (v == 0 || v > UINT32_MAX)
			return imap_command_error(cmd, error_r, "Invalid section part number");
		if (item->part_count == IMAP_MAX_SECTION_PARTS)
			return imap_command_error(cmd, error_r, "Section part path too deep");
		item->parts[item->part_count++] = (uint32_t)v;
		if (*p == '\0')
			break;
		if (*p != '.')
			return imap_command_error(cmd, error_r, "Invalid section");
		p++;
		if (*p == '\0')
			return imap_command_error(cmd, error_r, "Invalid section");
	}
	if (*p != '\0') {
		if (binary)
			return imap_command_error(cmd, error_r,
						  "BINARY sections are part numbers only");
		if (strcasecmp(p, "HEADER") == 0)
			item->text = IMAP_SECTION_HEADER;
		else if (strcasecmp(p, "HEADER.FIELDS") == 0)
			item->text = IMAP_SECTION_HEADER_FIELDS;
		else if (strcasecmp(p, "HEADER.FIELDS.NOT") == 0)
			item->text = IMAP_SECTION_HEADER_FIELDS_NOT;
		else if (strcasecmp(p, "TEXT") == 0)
			item->text = IMAP_SECTION_TEXT;
		else if (strcasecmp(p, "MIME") == 0 && item->part_count > 0)
			item->text = IMAP_SECTION_MIME;
		else
			return imap_command_error(cmd, error_r, "Invalid section: %s", spec);
	}
	clen = (size_t)snprintf(canon, sizeof(canon), "%s", imap_command_upper(cmd, spec));
	bool fields = item->text == IMAP_SECTION_HEADER_FIELDS ||
		      item->text == IMAP_SECTION_HEADER_FIELDS_NOT;
	if (!fields) {
		if (n != 1)
			return imap_command_error(cmd, error_r, "Invalid section");
		goto done;
	}
	const struct imap_arg *names;
	unsigned nn;
	if (n != 2 || !imap_arg_get_list(&in[1], &names, &nn) || nn == 0)
		return imap_command_error(cmd, error_r,
					  "HEADER.FIELDS needs a list of header names");
	if (nn > IMAP_MAX_HEADER_FIELDS)
		return imap_command_error(cmd, error_r, "Too many header fields (max %d)",
					  IMAP_MAX_HEADER_FIELDS);
	item->fields = imap_arena_alloc(cmd->arena, (nn + 1) * sizeof(char *));
	item->field_count = nn;
	clen += (size_t)snprintf(canon + clen, sizeof(canon) - clen, " (");
	for (unsigned k = 0; k < nn; k++) {
		const char *s;
		size_t len;
		if (!imap_arg_get_astring(&names[k], &s, &len) || !header_field_name_ok(s, len))
			return imap_command_error(cmd, error_r, "Invalid header field name");
		item->fields[k] = imap_command_upper(cmd, s);
		if (clen < sizeof(canon))
			clen += (size_t)snprintf(canon + clen, sizeof(canon) - clen, "%s%s",
						 k > 0 ? " " : "", item->fields[k]);
	}
	item->fields[nn] = NULL;
	if (clen < sizeof(canon))
		clen += (size_t)snprintf(canon + clen, sizeof(canon) - clen, ")");
done:
	if (clen >= sizeof(canon))
		clen = sizeof(canon) - 1;
	canon[clen] = '\0';
	item->has_partial = sec->has_partial;
	item->partial_offset = sec->partial_offset;
	item->partial_count = sec->partial_count;
	/* the name the answer uses: no PEEK, partial shown as <offset> */
	const char *base = item->kind == IMAP_FETCH_BODY_SECTION ? "BODY"
			   : item->kind == IMAP_FETCH_BINARY	  ? "BINARY"
								  : "BINARY.SIZE";
	item->name = imap_arena_printf(cmd->arena, "%s[%s]", base, canon);
	return 1;
}

static int parse_fetch_item(struct imap_command *cmd, const struct imap_arg *arg,
			    struct imap_fetch_item *item, const char **error_r)
{
	memset(item, 0, sizeof(*item));
	if (arg->type == IMAP_ARG_SECTION) {
		const char *name = arg->str;
		bool binary = false;
		if (strcasecmp(name, "BODY") == 0) {
			item->kind = IMAP_FETCH_BODY_SECTION;
		} else if (strcasecmp(name, "BODY.PEEK") == 0) {
			item->kind = IMAP_FETCH_BODY_SECTION;
			item->peek = true;
		} else if (strcasecmp(name, "BINARY") == 0) {
			item->kind = IMAP_FETCH_BINARY;
			binary = true;
		} else if (strcasecmp(name, "BINARY.PEEK") == 0) {
			item->kind = IMAP_FETCH_BINARY;
			item->peek = true;
			binary = true;
		} else if (strcasecmp(name, "BINARY.SIZE") == 0) {
			item->kind = IMAP_FETCH_BINARY_SIZE;
			binary = true;
			if (arg->has_partial)
				return imap_command_error(cmd, error_r,
							  "BINARY.SIZE takes no partial range");
		} else {
			return imap_command_error(cmd, error_r, "Unknown FETCH item: %s[", name);
		}
		return parse_section(cmd, arg, item, binary, error_r);
	}
	const char *s;
	if (!imap_arg_get_atom(arg, &s) || arg->type != IMAP_ARG_ATOM)
		return imap_command_error(cmd, error_r, "Invalid FETCH item");
	for (size_t i = 0; i < sizeof(fetch_atoms) / sizeof(fetch_atoms[0]); i++) {
		if (strcasecmp(s, fetch_atoms[i].name) == 0) {
			item->kind = fetch_atoms[i].kind;
			item->name = fetch_atoms[i].name;
			return 1;
		}
	}
	if (strncasecmp(s, "BODY", 4) == 0 || strncasecmp(s, "BINARY", 6) == 0)
		return imap_command_error(cmd, error_r, "Invalid FETCH item: %s", s);
	return imap_command_error(cmd, error_r, "Unknown FETCH item: %s", s);
}

static int parse_fetch_modifiers(struct imap_command *cmd, const struct imap_arg *arg,
				 const char **error_r)
{
	struct imap_cmd_fetch *f = &cmd->u.fetch;
	const struct imap_arg *items;
	unsigned n;
	if (!imap_arg_get_list(arg, &items, &n) || n == 0)
		return imap_command_error(cmd, error_r, "Invalid FETCH modifiers");
	for (unsigned i = 0; i < n; i++) {
		if (imap_arg_atom_eq(&items[i], "CHANGEDSINCE")) {
			if (f->has_changedsince || i + 1 == n ||
			    !imap_arg_get_modseq(&items[i + 1], &f->changedsince))
				return imap_command_error(cmd, error_r,
							  "Usage: CHANGEDSINCE mod-sequence");
			f->has_changedsince = true;
			i++;
		} else if (imap_arg_atom_eq(&items[i], "VANISHED")) {
			if (!cmd->uid)
				return imap_command_error(cmd, error_r,
							  "VANISHED is allowed in UID FETCH only");
			f->vanished = true;
		} else {
			const char *name = "";
			imap_arg_get_atom(&items[i], &name);
			return imap_command_error(cmd, error_r, "Unknown FETCH modifier: %s", name);
		}
	}
	if (f->vanished && !f->has_changedsince)
		return imap_command_error(cmd, error_r, "VANISHED needs CHANGEDSINCE");
	return 1;
}

IMAP_PARSER_FN(imap_parse_fetch)
{
	struct imap_cmd_fetch *f = &cmd->u.fetch;
	const char *usage = "Usage: FETCH sequence-set (items) [(modifiers)]";
	if (count < 2 || count > 3)
		return imap_command_error(cmd, error_r, "%s", usage);
	if (imap_parse_seqset_arg(cmd, &args[0], &f->set, error_r) < 0)
		return -1;
	const struct imap_arg *items;
	unsigned n;
	if (args[1].type == IMAP_ARG_LIST) {
		imap_arg_get_list(&args[1], &items, &n);
		if (n == 0)
			return imap_command_error(cmd, error_r, "Empty FETCH item list");
	} else {
		items = &args[1];
		n = 1;
		for (size_t m = 0; m < sizeof(fetch_macros) / sizeof(fetch_macros[0]); m++) {
			if (!imap_arg_atom_eq(&args[1], fetch_macros[m].name))
				continue;
			f->macro = fetch_macros[m].name;
			f->count = fetch_macros[m].count;
			f->items = imap_arena_zalloc(cmd->arena, f->count * sizeof(*f->items));
			for (unsigned k = 0; k < f->count; k++)
				f->items[k].kind = fetch_macros[m].items[k];
		}
	}
	if (f->macro == NULL) {
		if (n > IMAP_MAX_FETCH_ITEMS)
			return imap_command_error(cmd, error_r, "Too many FETCH items (max %d)",
						  IMAP_MAX_FETCH_ITEMS);
		f->items = imap_arena_alloc(cmd->arena, n * sizeof(*f->items));
		f->count = n;
		for (unsigned k = 0; k < n; k++) {
			if (parse_fetch_item(cmd, &items[k], &f->items[k], error_r) < 0)
				return -1;
		}
	}
	if (count == 3 && parse_fetch_modifiers(cmd, &args[2], error_r) < 0)
		return -1;
	return 1;
}

IMAP_PARSER_FN(imap_parse_store)
{
	struct imap_cmd_store *s = &cmd->u.store;
	const char *usage = "Usage: STORE sequence-set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] "
			    "(flags)";
	unsigned i = 1;
	if (count < 3)
		return imap_command_error(cmd, error_r, "%s", usage);
	if (imap_parse_seqset_arg(cmd, &args[0], &s->set, error_r) < 0)
		return -1;
	if (args[1].type == IMAP_ARG_LIST) {
		const struct imap_arg *mods;
		unsigned n;
		imap_arg_get_list(&args[1], &mods, &n);
		if (n != 2 || !imap_arg_atom_eq(&mods[0], "UNCHANGEDSINCE") ||
		    !imap_arg_get_number64(&mods[1], &s->unchangedsince))
			return imap_command_error(cmd, error_r,
						  "Unknown STORE modifier (only UNCHANGEDSINCE)");
		s->has_unchangedsince = true;
		i++;
	}
	const char *item;
	if (i + 1 >= count || !imap_arg_get_atom(&args[i], &item) ||
	    args[i].type != IMAP_ARG_ATOM)
		return imap_command_error(cmd, error_r, "%s", usage);
	const char *p = item;
	s->mode = IMAP_STORE_REPLACE;
	if (*p == '+' || *p == '-')
		s->mode = *p++ == '+' ? IMAP_STORE_ADD : IMAP_STORE_REMOVE;
	if (strcasecmp(p, "FLAGS.SILENT") == 0)
		s->silent = true;
	else if (strcasecmp(p, "FLAGS") != 0)
		return imap_command_error(cmd, error_r, "Unknown STORE item: %s", item);
	i++;
	if (args[i].type == IMAP_ARG_LIST) {
		if (i + 1 != count)
			return imap_command_error(cmd, error_r, "%s", usage);
		return imap_parse_flag_list(cmd, &args[i], false, &s->flags, &s->flag_count,
					    error_r);
	}
	return imap_parse_flags(cmd, &args[i], count - i, false, &s->flags, &s->flag_count,
				error_r);
}

IMAP_PARSER_FN(imap_parse_copy)
{
	struct imap_cmd_copy *c = &cmd->u.copy;
	if (count != 2)
		return imap_command_error(cmd, error_r, "Usage: %s sequence-set mailbox",
					  cmd->name);
	if (imap_parse_seqset_arg(cmd, &args[0], &c->set, error_r) < 0)
		return -1;
	return imap_parse_mailbox_arg(cmd, &args[1], false, &c->mailbox, error_r);
}

IMAP_PARSER_FN(imap_parse_uid_expunge)
{
	if (count != 1)
		return imap_command_error(cmd, error_r, "Usage: UID EXPUNGE uid-set");
	return imap_parse_seqset_arg(cmd, &args[0], &cmd->u.expunge.set, error_r);
}
