#include "proto/imap/imap_command.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto/imap/imap_arena.h"
#include "proto/imap/imap_command_private.h"
#include "proto/imap/imap_utf7.h"

#define ANY	IMAP_STATES_ANY
#define AUTHED	IMAP_STATES_AUTHED
#define NOAUTH	IMAP_STATE_NOT_AUTH
#define SEL	IMAP_STATE_SELECTED
#define F_UID	IMAP_CMD_FLAG_UID
#define F_SEC	IMAP_CMD_FLAG_SECTIONS
#define F_MSG	IMAP_CMD_FLAG_MESSAGES
#define F_SEQ	IMAP_CMD_FLAG_SEQ
#define F_BREAK IMAP_CMD_FLAG_BREAKS_PIPELINE

static const struct imap_command_def commands[] = {
	{"CAPABILITY", IMAP_CMD_CAPABILITY, imap_parse_none, ANY, 0},
	{"NOOP", IMAP_CMD_NOOP, imap_parse_none, ANY, 0},
	{"LOGOUT", IMAP_CMD_LOGOUT, imap_parse_none, ANY, 0},
	{"STARTTLS", IMAP_CMD_STARTTLS, imap_parse_none, NOAUTH, F_BREAK},
	{"AUTHENTICATE", IMAP_CMD_AUTHENTICATE, imap_parse_authenticate, NOAUTH, F_BREAK},
	{"LOGIN", IMAP_CMD_LOGIN, imap_parse_login, NOAUTH, 0},
	{"ID", IMAP_CMD_ID, imap_parse_id, ANY, 0},
	{"ENABLE", IMAP_CMD_ENABLE, imap_parse_enable, AUTHED, 0},
	{"SELECT", IMAP_CMD_SELECT, imap_parse_select, AUTHED, 0},
	{"EXAMINE", IMAP_CMD_EXAMINE, imap_parse_select, AUTHED, 0},
	{"CREATE", IMAP_CMD_CREATE, imap_parse_create, AUTHED, 0},
	{"DELETE", IMAP_CMD_DELETE, imap_parse_one_mailbox, AUTHED, 0},
	{"RENAME", IMAP_CMD_RENAME, imap_parse_rename, AUTHED, 0},
	{"SUBSCRIBE", IMAP_CMD_SUBSCRIBE, imap_parse_one_mailbox, AUTHED, 0},
	{"UNSUBSCRIBE", IMAP_CMD_UNSUBSCRIBE, imap_parse_one_mailbox, AUTHED, 0},
	{"LIST", IMAP_CMD_LIST, imap_parse_list, AUTHED, 0},
	{"LSUB", IMAP_CMD_LSUB, imap_parse_lsub, AUTHED, 0},
	{"NAMESPACE", IMAP_CMD_NAMESPACE, imap_parse_none, AUTHED, 0},
	{"STATUS", IMAP_CMD_STATUS, imap_parse_status, AUTHED, 0},
	{"APPEND", IMAP_CMD_APPEND, imap_parse_append, AUTHED, F_MSG},
	{"IDLE", IMAP_CMD_IDLE, imap_parse_none, AUTHED, F_BREAK},
	{"GETQUOTA", IMAP_CMD_GETQUOTA, imap_parse_getquota, AUTHED, 0},
	{"GETQUOTAROOT", IMAP_CMD_GETQUOTAROOT, imap_parse_one_mailbox, AUTHED, 0},
	{"SETQUOTA", IMAP_CMD_SETQUOTA, imap_parse_setquota, AUTHED, 0},
	{"COMPRESS", IMAP_CMD_COMPRESS, imap_parse_compress, AUTHED, F_BREAK},
	{"CHECK", IMAP_CMD_CHECK, imap_parse_none, SEL, 0},
	{"CLOSE", IMAP_CMD_CLOSE, imap_parse_none, SEL, 0},
	{"UNSELECT", IMAP_CMD_UNSELECT, imap_parse_none, SEL, 0},
	{"EXPUNGE", IMAP_CMD_EXPUNGE, imap_parse_none, SEL, 0},
	{"SEARCH", IMAP_CMD_SEARCH, imap_parse_search, SEL, F_SEQ},
	{"FETCH", IMAP_CMD_FETCH, imap_parse_fetch, SEL, F_SEQ | F_SEC},
	{"STORE", IMAP_CMD_STORE, imap_parse_store, SEL, F_SEQ},
	{"COPY", IMAP_CMD_COPY, imap_parse_copy, SEL, F_SEQ},
	{"MOVE", IMAP_CMD_MOVE, imap_parse_copy, SEL, F_SEQ},
	{"SORT", IMAP_CMD_SORT, imap_parse_sort, SEL, F_SEQ},
	{"THREAD", IMAP_CMD_THREAD, imap_parse_thread, SEL, F_SEQ},
	{"UID EXPUNGE", IMAP_CMD_EXPUNGE, imap_parse_uid_expunge, SEL, F_UID},
	{"UID SEARCH", IMAP_CMD_SEARCH, imap_parse_search, SEL, F_UID},
	{"UID FETCH", IMAP_CMD_FETCH, imap_parse_fetch, SEL, F_UID | F_SEC},
	{"UID STORE", IMAP_CMD_STORE, imap_parse_store, SEL, F_UID},
	{"UID COPY", IMAP_CMD_COPY, imap_parse_copy, SEL, F_UID},
	{"UID MOVE", IMAP_CMD_MOVE, imap_parse_copy, SEL, F_UID},
	{"UID SORT", IMAP_CMD_SORT, imap_parse_sort, SEL, F_UID},
	{"UID THREAD", IMAP_CMD_THREAD, imap_parse_thread, SEL, F_UID},
};

const struct imap_command_def *imap_command_lookup(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcasecmp(commands[i].name, name) == 0)
			return &commands[i];
	}
	return NULL;
}

const struct imap_command_def *imap_command_table(unsigned *count_r)
{
	*count_r = sizeof(commands) / sizeof(commands[0]);
	return commands;
}

bool imap_command_allowed(const struct imap_command_def *def, unsigned state)
{
	return (def->states & state) != 0;
}

int imap_command_parse(struct imap_command *cmd, const char **error_r)
{
	return cmd->def->parse(cmd, cmd->args, cmd->arg_count, error_r);
}

char *imap_command_upper(struct imap_command *cmd, const char *str)
{
	char *s = imap_arena_strdup(cmd->arena, str);
	for (char *p = s; *p != '\0'; p++) {
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 32);
	}
	return s;
}

int imap_command_error(struct imap_command *cmd, const char **error_r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	*error_r = imap_arena_strdup(cmd->arena, buf);
	return -1;
}

static bool list_char_ok(const struct imap_arg *arg, bool allow_wildcards)
{
	if (arg->type != IMAP_ARG_ATOM)
		return true;
	if ((arg->atom_flags & IMAP_ATOM_BACKSLASH) != 0)
		return false;
	return allow_wildcards || (arg->atom_flags & IMAP_ATOM_WILDCARD) == 0;
}

int imap_parse_mailbox_arg(struct imap_command *cmd, const struct imap_arg *arg,
			   bool allow_wildcards, struct imap_mailbox *mailbox_r,
			   const char **error_r)
{
	const char *str;
	size_t len;
	bool ok;
	if (arg->type == IMAP_ARG_QUOTED || arg->type == IMAP_ARG_LITERAL)
		ok = imap_arg_get_string(arg, &str, &len);
	else if (arg->type == IMAP_ARG_ATOM || arg->type == IMAP_ARG_NUMBER ||
		 arg->type == IMAP_ARG_NIL) {
		ok = list_char_ok(arg, allow_wildcards);
		str = arg->str;
		len = arg->len;
	} else {
		ok = false;
	}
	if (!ok) {
		*error_r = allow_wildcards ? "Invalid mailbox pattern" : "Invalid mailbox name";
		return -1;
	}
	mailbox_r->wire = str;
	if (len == 0) {
		mailbox_r->name = str;
		return 1;
	}
	if (cmd->ctx != NULL && cmd->ctx->utf8_accept) {
		if (!imap_utf8_mailbox_valid(str, len)) {
			*error_r = "Mailbox name is not valid UTF-8 or holds control characters";
			return -1;
		}
		mailbox_r->name = str;
	} else {
		char *name;
		if (imap_utf7_decode(str, len, cmd->arena, &name, error_r) < 0)
			return -1;
		if (!imap_utf8_mailbox_valid(name, strlen(name))) {
			*error_r = "Mailbox name holds control characters";
			return -1;
		}
		mailbox_r->name = name;
	}
	if (strcasecmp(mailbox_r->name, "INBOX") == 0)
		mailbox_r->name = "INBOX";
	return 1;
}

static const char *const system_flags[] = {"\\Answered", "\\Flagged", "\\Deleted",
					   "\\Seen",	 "\\Draft",   "\\Recent"};

int imap_parse_flags(struct imap_command *cmd, const struct imap_arg *args, unsigned count,
		     bool allow_recent, const char ***flags_r, unsigned *count_r,
		     const char **error_r)
{
	if (count > IMAP_MAX_FLAGS)
		return imap_command_error(cmd, error_r, "Too many flags (max %d)", IMAP_MAX_FLAGS);
	const char **flags = imap_arena_alloc(cmd->arena, (count + 1) * sizeof(*flags));
	for (unsigned i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];
		const char *s;
		if (!imap_arg_get_atom(a, &s) ||
		    (a->atom_flags & (IMAP_ATOM_WILDCARD | IMAP_ATOM_BRACKET)) != 0)
			return imap_command_error(cmd, error_r, "Invalid flag");
		flags[i] = s;
		if (s[0] != '\\')
			continue;
		for (size_t k = 0; k < sizeof(system_flags) / sizeof(system_flags[0]); k++) {
			if (strcasecmp(s, system_flags[k]) == 0)
				flags[i] = system_flags[k];
		}
		if (!allow_recent && flags[i] == system_flags[5])
			return imap_command_error(cmd, error_r, "\\Recent cannot be set");
	}
	flags[count] = NULL;
	*flags_r = flags;
	*count_r = count;
	return 1;
}

int imap_parse_flag_list(struct imap_command *cmd, const struct imap_arg *arg, bool allow_recent,
			 const char ***flags_r, unsigned *count_r, const char **error_r)
{
	const struct imap_arg *items;
	unsigned n;
	if (!imap_arg_get_list(arg, &items, &n)) {
		*error_r = "Expected a flag list (...)";
		return -1;
	}
	return imap_parse_flags(cmd, items, n, allow_recent, flags_r, count_r, error_r);
}

int imap_parse_seqset_arg(struct imap_command *cmd, const struct imap_arg *arg,
			  struct imap_seqset *set_r, const char **error_r)
{
	imap_seqset_init(set_r, cmd->arena);
	if (arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_NUMBER) {
		*error_r = "Invalid sequence set";
		return -1;
	}
	return imap_seqset_parse(set_r, arg->str, arg->len, true, error_r);
}

int imap_parse_none(struct imap_command *cmd, const struct imap_arg *args, unsigned count,
		    const char **error_r)
{
	if (count != 0)
		return imap_command_error(cmd, error_r, "%s takes no arguments", cmd->name);
	return 1;
}

static bool base64_valid(const char *s, size_t len)
{
	if (len % 4 != 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			   (c >= '0' && c <= '9') || c == '+' || c == '/';
		if (c == '=') {
			/* padding: only the last one or two characters */
			if (i < len - 2 || (i == len - 2 && s[len - 1] != '='))
				return false;
		} else if (!b64) {
			return false;
		}
	}
	return true;
}

int imap_parse_authenticate(struct imap_command *cmd, const struct imap_arg *args,
			    unsigned count, const char **error_r)
{
	const char *mech;
	if (count < 1 || count > 2 || !imap_arg_get_atom(&args[0], &mech) ||
	    args[0].atom_flags != 0)
		return imap_command_error(cmd, error_r,
					  "Usage: AUTHENTICATE mechanism [initial-response]");
	struct imap_cmd_authenticate *a = &cmd->u.authenticate;
	a->mechanism = imap_command_upper(cmd, mech);
	if (count == 2) {
		const char *ir;
		if (!imap_arg_get_atom(&args[1], &ir) || args[1].atom_flags != 0 ||
		    (strcmp(ir, "=") != 0 && !base64_valid(ir, args[1].len)))
			return imap_command_error(cmd, error_r,
						  "Initial response must be base64 or \"=\"");
		a->initial = ir;
	}
	return 1;
}

int imap_parse_login(struct imap_command *cmd, const struct imap_arg *args, unsigned count,
		     const char **error_r)
{
	struct imap_cmd_login *l = &cmd->u.login;
	if (count != 2 || !imap_arg_get_astring(&args[0], &l->user, &l->user_len) ||
	    !imap_arg_get_astring(&args[1], &l->password, &l->password_len))
		return imap_command_error(cmd, error_r, "Usage: LOGIN user password");
	return 1;
}

int imap_parse_enable(struct imap_command *cmd, const struct imap_arg *args, unsigned count,
		      const char **error_r)
{
	if (count == 0)
		return imap_command_error(cmd, error_r, "Usage: ENABLE capability...");
	if (count > IMAP_MAX_ENABLE)
		return imap_command_error(cmd, error_r, "Too many capabilities (max %d)",
					  IMAP_MAX_ENABLE);
	struct imap_cmd_enable *e = &cmd->u.enable;
	e->capabilities = imap_arena_alloc(cmd->arena, count * sizeof(*e->capabilities));
	for (unsigned i = 0; i < count; i++) {
		const char *s;
		if (!imap_arg_get_atom(&args[i], &s) ||
		    (args[i].atom_flags & ~IMAP_ATOM_BRACKET) != 0 ||
		    args[i].len > IMAP_MAX_CAPABILITY_NAME)
			return imap_command_error(cmd, error_r, "Invalid capability name");
		e->capabilities[i] = imap_command_upper(cmd, s);
	}
	e->count = count;
	return 1;
}

int imap_parse_id(struct imap_command *cmd, const struct imap_arg *args, unsigned count,
		  const char **error_r)
{
	struct imap_cmd_idparams *id = &cmd->u.id;
	const struct imap_arg *items;
	unsigned n;
	if (count != 1)
		return imap_command_error(cmd, error_r, "Usage: ID (field value ...) or ID NIL");
	if (args[0].type == IMAP_ARG_NIL) {
		id->nil = true;
		return 1;
	}
	if (!imap_arg_get_list(&args[0], &items, &n) || n % 2 != 0)
		return imap_command_error(cmd, error_r, "Usage: ID (field value ...) or ID NIL");
	if (n / 2 > IMAP_ID_MAX_PAIRS)
		return imap_command_error(cmd, error_r, "Too many ID fields (max %d)",
					  IMAP_ID_MAX_PAIRS);
	id->count = n / 2;
	id->fields = imap_arena_alloc(cmd->arena, (id->count + 1) * sizeof(char *));
	id->values = imap_arena_alloc(cmd->arena, (id->count + 1) * sizeof(char *));
	for (unsigned i = 0; i < id->count; i++) {
		const char *f, *v;
		size_t flen, vlen;
		if (!imap_arg_get_string(&items[2 * i], &f, &flen))
			return imap_command_error(cmd, error_r, "ID field names must be strings");
		if (flen > IMAP_ID_MAX_FIELD)
			return imap_command_error(cmd, error_r, "ID field name too long (max %d)",
						  IMAP_ID_MAX_FIELD);
		if (!imap_arg_get_nstring(&items[2 * i + 1], &v, &vlen))
			return imap_command_error(cmd, error_r,
						  "ID values must be strings or NIL");
		if (vlen > IMAP_ID_MAX_VALUE)
			return imap_command_error(cmd, error_r, "ID value too long (max %d)",
						  IMAP_ID_MAX_VALUE);
		for (unsigned k = 0; k < i; k++) {
			if (strcasecmp(id->fields[k], f) == 0)
				return imap_command_error(cmd, error_r,
							  "ID field given twice: %s", f);
		}
		id->fields[i] = f;
		id->values[i] = v;
	}
	return 1;
}

int imap_parse_compress(struct imap_command *cmd, const struct imap_arg *args, unsigned count,
			const char **error_r)
{
	if (count != 1 || args[0].type != IMAP_ARG_ATOM)
		return imap_command_error(cmd, error_r, "Usage: COMPRESS DEFLATE");
	if (!imap_arg_atom_eq(&args[0], "DEFLATE"))
		return imap_command_error(cmd, error_r, "Unknown compression mechanism: %s",
					  args[0].str);
	cmd->u.compress.mechanism = "DEFLATE";
	return 1;
}

int imap_parse_getquota(struct imap_command *cmd, const struct imap_arg *args, unsigned count,
			const char **error_r)
{
	size_t len;
	if (count != 1 || !imap_arg_get_astring(&args[0], &cmd->u.quota.root, &len))
		return imap_command_error(cmd, error_r, "Usage: GETQUOTA root");
	return 1;
}

int imap_parse_setquota(struct imap_command *cmd, const struct imap_arg *args, unsigned count,
			const char **error_r)
{
	struct imap_cmd_setquota *q = &cmd->u.setquota;
	const struct imap_arg *items;
	unsigned n;
	size_t len;
	if (count != 2 || !imap_arg_get_astring(&args[0], &q->root, &len) ||
	    !imap_arg_get_list(&args[1], &items, &n) || n % 2 != 0)
		return imap_command_error(cmd, error_r,
					  "Usage: SETQUOTA root (resource limit ...)");
	if (n / 2 > IMAP_MAX_QUOTA_RESOURCES)
		return imap_command_error(cmd, error_r, "Too many quota resources");
	q->count = n / 2;
	q->resources = imap_arena_zalloc(cmd->arena, (q->count + 1) * sizeof(*q->resources));
	for (unsigned i = 0; i < q->count; i++) {
		const char *name;
		if (!imap_arg_get_atom(&items[2 * i], &name) || items[2 * i].atom_flags != 0 ||
		    items[2 * i].type != IMAP_ARG_ATOM)
			return imap_command_error(cmd, error_r, "Invalid quota resource name");
		if (!imap_arg_get_number64(&items[2 * i + 1], &q->resources[i].limit))
			return imap_command_error(cmd, error_r, "Invalid quota limit");
		q->resources[i].name = imap_command_upper(cmd, name);
		for (unsigned k = 0; k < i; k++) {
			if (strcmp(q->resources[k].name, q->resources[i].name) == 0)
				return imap_command_error(cmd, error_r,
							  "Quota resource given twice: %s",
							  q->resources[i].name);
		}
	}
	return 1;
}
