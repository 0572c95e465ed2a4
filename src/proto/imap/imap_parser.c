#include "proto/imap/imap_parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "proto/imap/imap_arena.h"
#include "proto/imap/imap_utf7.h"

/* Lines arrive whole (the connection splits them), so the parser resumes
 * at line and literal boundaries: the open lists of the command being read
 * are kept on a stack between calls, and a literal's bytes are collected in
 * the arena as they arrive. */

enum parser_state {
	PS_START,	 /* the next line starts a command */
	PS_ARGS,	 /* the next line continues a command after a literal */
	PS_LITERAL,	 /* literal bytes due */
	PS_SKIP_LITERAL, /* dropping a literal after an error */
	PS_SKIP_LINE,	 /* after an error: the next line may announce another literal */
};

struct node {
	struct imap_arg arg;
	struct node *next;
};

struct container {
	char kind; /* 0 top, '(' list, '[' section */
	struct node *head, *tail;
	unsigned count;
	struct imap_arg *owner; /* the LIST / SECTION arg receiving the items */
};

struct imap_parser {
	struct imap_parser_limits limits;
	struct imap_parse_ctx ctx;
	struct imap_arena *arena;
	enum parser_state state;

	struct container *stack; /* max_depth + 1 entries */
	unsigned depth;		 /* index of the innermost container */
	bool need_sep;		 /* a token just ended */

	const struct imap_command_def *def;
	const char *tag;
	bool uid;
	size_t cmd_size, append_total, discarded;
	unsigned nargs;

	struct imap_arg *lit_arg;
	unsigned char *lit_buf;
	size_t lit_size, lit_got;
	bool lit_stream, lit_nul;
	unsigned stream_count;
	size_t skip_left;

	struct imap_parse_error error; /* pending until the command ends */
};

void imap_parser_limits_default(struct imap_parser_limits *limits_r)
{
	memset(limits_r, 0, sizeof(*limits_r));
	limits_r->max_command = IMAP_PARSER_DEFAULT_MAX_COMMAND;
	limits_r->max_literal = IMAP_PARSER_DEFAULT_MAX_LITERAL;
	limits_r->max_message = IMAP_PARSER_DEFAULT_MAX_MESSAGE;
	limits_r->max_append_total = IMAP_PARSER_DEFAULT_MAX_APPEND_TOTAL;
	limits_r->max_discard = IMAP_PARSER_DEFAULT_MAX_DISCARD;
	limits_r->max_depth = IMAP_PARSER_DEFAULT_MAX_DEPTH;
	limits_r->max_args = IMAP_PARSER_DEFAULT_MAX_ARGS;
}

static void apply_limits(struct imap_parser *p, const struct imap_parser_limits *l)
{
	struct imap_parser_limits d;
	imap_parser_limits_default(&d);
	if (l != NULL) {
		d.literal_minus = l->literal_minus;
		d.stream_messages = l->stream_messages;
#define TAKE(f) if (l->f != 0) d.f = l->f
		TAKE(max_command);
		TAKE(max_literal);
		TAKE(max_message);
		TAKE(max_append_total);
		TAKE(max_discard);
		TAKE(max_depth);
		TAKE(max_args);
#undef TAKE
	}
	free(p->stack);
	p->limits = d;
	p->stack = xcalloc(d.max_depth + 1, sizeof(*p->stack));
}

struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));
	apply_limits(p, limits);
	p->arena = imap_arena_new(IMAP_PARSER_ARENA_BLOCK);
	return p;
}

void imap_parser_free(struct imap_parser **parser)
{
	if (*parser == NULL)
		return;
	imap_arena_free(&(*parser)->arena);
	free((*parser)->stack);
	free(*parser);
	*parser = NULL;
}

void imap_parser_set_ctx(struct imap_parser *parser, const struct imap_parse_ctx *ctx)
{
	parser->ctx = *ctx;
}

void imap_parser_set_limits(struct imap_parser *parser, const struct imap_parser_limits *limits)
{
	/* the stack is reallocated: only between commands */
	if (parser->state != PS_START)
		imap_parser_reset(parser);
	apply_limits(parser, limits);
}

void imap_parser_reset(struct imap_parser *parser)
{
	parser->state = PS_START;
	parser->depth = 0;
	parser->def = NULL;
	parser->tag = NULL;
	parser->lit_arg = NULL;
	parser->lit_stream = false;
	parser->stream_count = 0;
	parser->skip_left = 0;
	memset(&parser->error, 0, sizeof(parser->error));
}

size_t imap_parser_literal_pending(const struct imap_parser *parser)
{
	if (parser->state == PS_LITERAL)
		return parser->lit_size - parser->lit_got;
	if (parser->state == PS_SKIP_LITERAL)
		return parser->skip_left;
	return 0;
}

bool imap_parser_idle(const struct imap_parser *parser)
{
	return parser->state == PS_START;
}

bool imap_parser_is_done(const char *line, size_t len)
{
	return len == 4 && strncasecmp(line, "DONE", 4) == 0;
}

static void start_command(struct imap_parser *p)
{
	imap_arena_clear(p->arena);
	imap_parser_reset(p);
	p->uid = false;
	p->cmd_size = p->append_total = p->discarded = 0;
	p->nargs = 0;
	p->need_sep = false;
	memset(&p->stack[0], 0, sizeof(p->stack[0]));
}

/* record an error for the command being read; returns -1 */
static int set_error(struct imap_parser *p, enum imap_parse_limit limit, const char *code,
		     const char *text)
{
	p->error.tag = p->tag;
	p->error.def = p->def;
	p->error.code = code;
	p->error.text = text;
	p->error.limit = limit;
	p->error.bye = false;
	return -1;
}

static int report_error(struct imap_parser *p, struct imap_parse_result *r)
{
	r->event = IMAP_PARSE_ERROR;
	r->error = p->error;
	p->state = PS_START;
	p->depth = 0;
	return -1;
}

static bool tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"' &&
	       c != '\\' && c != '%' && c != '*' && c != '+';
}

/* ATOM-CHAR plus what the generic tree keeps in atoms ("%", "*", "]") */
static bool atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"' && c != '\\';
}

static struct imap_arg *add_arg(struct imap_parser *p, enum imap_arg_type type)
{
	if (++p->nargs > p->limits.max_args)
		return NULL;
	struct container *c = &p->stack[p->depth];
	struct node *n = imap_arena_zalloc(p->arena, sizeof(*n));
	n->arg.type = type;
	if (c->tail == NULL)
		c->head = n;
	else
		c->tail->next = n;
	c->tail = n;
	c->count++;
	return &n->arg;
}

static struct imap_arg *finish_container(struct imap_parser *p, struct container *c)
{
	struct imap_arg *items = imap_arena_alloc(p->arena, (c->count + 1) * sizeof(*items));
	unsigned i = 0;
	for (struct node *n = c->head; n != NULL; n = n->next)
		items[i++] = n->arg;
	return items;
}

static int push(struct imap_parser *p, char kind, struct imap_arg *owner)
{
	if (p->depth + 1 > p->limits.max_depth)
		return set_error(p, IMAP_LIMIT_DEPTH, "LIMIT",
				 imap_arena_printf(p->arena, "Lists nested too deeply (max %u)",
						   p->limits.max_depth));
	p->depth++;
	struct container *c = &p->stack[p->depth];
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->owner = owner;
	return 0;
}

static void pop(struct imap_parser *p)
{
	struct container *c = &p->stack[p->depth];
	c->owner->list = finish_container(p, c);
	c->owner->list_count = c->count;
	p->depth--;
}

static int too_many_args(struct imap_parser *p)
{
	return set_error(p, IMAP_LIMIT_ARGS, "LIMIT",
			 imap_arena_printf(p->arena, "Too many arguments (max %u)",
					   p->limits.max_args));
}

/* "<offset.count>" after a section */
static int parse_partial(struct imap_parser *p, const char *line, size_t len, size_t *i,
			 struct imap_arg *arg)
{
	uint64_t v[2] = {0, 0};
	size_t j = *i + 1;
	for (int k = 0; k < 2; k++) {
		size_t start = j;
		while (j < len && line[j] >= '0' && line[j] <= '9' && j - start < 11) {
			v[k] = v[k] * 10 + (uint64_t)(line[j] - '0');
			j++;
		}
		if (j == start || v[k] > UINT32_MAX || j == len ||
		    line[j] != (k == 0 ? '.' : '>'))
			return set_error(p, IMAP_LIMIT_NONE, NULL,
					 "Invalid partial range (expected <offset.count>)");
		j++;
	}
	if (v[1] == 0)
		return set_error(p, IMAP_LIMIT_NONE, NULL, "Partial count must not be 0");
	arg->has_partial = true;
	arg->partial_offset = (uint32_t)v[0];
	arg->partial_count = (uint32_t)v[1];
	*i = j;
	return 0;
}

static int parse_quoted(struct imap_parser *p, const char *line, size_t len, size_t *i)
{
	size_t j = *i + 1, n = 0;
	/* the unescaped string is never longer than the line */
	char *out = imap_arena_alloc(p->arena, len - *i);
	bool eightbit = false;
	for (;;) {
		if (j == len)
			return set_error(p, IMAP_LIMIT_NONE, NULL, "Missing closing quote");
		unsigned char c = (unsigned char)line[j++];
		if (c == '"')
			break;
		if (c == '\\') {
			if (j == len || (line[j] != '"' && line[j] != '\\'))
				return set_error(p, IMAP_LIMIT_NONE, NULL,
						 "Invalid escape in quoted string (only \\\" and "
						 "\\\\)");
			c = (unsigned char)line[j++];
		} else if (c == '\0') {
			return set_error(p, IMAP_LIMIT_NONE, NULL, "NUL in quoted string");
		} else if (c >= 0x80) {
			eightbit = true;
		}
		out[n++] = (char)c;
	}
	out[n] = '\0';
	if (eightbit && !imap_utf8_valid(out, n))
		return set_error(p, IMAP_LIMIT_NONE, NULL,
				 "8-bit data in a quoted string must be UTF-8");
	struct imap_arg *arg = add_arg(p, IMAP_ARG_QUOTED);
	if (arg == NULL)
		return too_many_args(p);
	arg->str = out;
	arg->len = n;
	arg->eightbit = eightbit;
	*i = j;
	return 0;
}

static int parse_atom(struct imap_parser *p, const char *line, size_t len, size_t *i)
{
	struct container *top = &p->stack[p->depth];
	bool sections = p->def != NULL && (p->def->flags & IMAP_CMD_FLAG_SECTIONS) != 0;
	size_t start = *i, j = *i;
	unsigned flags = 0;
	if (line[j] == '\\') {
		flags |= IMAP_ATOM_BACKSLASH;
		j++;
	}
	while (j < len && atom_char((unsigned char)line[j])) {
		char c = line[j];
		if (c == ']') {
			if (top->kind == '[')
				break;
			flags |= IMAP_ATOM_BRACKET;
		} else if (c == '[' && sections && j > start) {
			break;
		} else if (c == '%' || c == '*') {
			flags |= IMAP_ATOM_WILDCARD;
		}
		j++;
	}
	if (j == start || (j == start + 1 && (flags & IMAP_ATOM_BACKSLASH) != 0 &&
			   (j == len || line[j] != '*'))) {
		unsigned char c = (unsigned char)line[j];
		if (flags & IMAP_ATOM_BACKSLASH)
			return set_error(p, IMAP_LIMIT_NONE, NULL, "Missing flag name after \\");
		if (c == '\0')
			return set_error(p, IMAP_LIMIT_NONE, NULL, "NUL in command line");
		if (c >= 0x80)
			return set_error(p, IMAP_LIMIT_NONE, NULL,
					 "8-bit data must be sent as a quoted string or a literal");
		if (c == '\\')
			return set_error(p, IMAP_LIMIT_NONE, NULL, "Unexpected \\");
		if (c == ')' || c == ']')
			return set_error(p, IMAP_LIMIT_NONE, NULL,
					 imap_arena_printf(p->arena, "Unexpected '%c'", c));
		return set_error(p, IMAP_LIMIT_NONE, NULL, "Invalid character in command line");
	}
	if (j == start + 1 && (flags & IMAP_ATOM_BACKSLASH) && line[j] == '*') {
		j++; /* "\*" */
	}
	struct imap_arg *arg;
	if (j < len && line[j] == '[' && sections) {
		arg = add_arg(p, IMAP_ARG_SECTION);
		if (arg == NULL)
			return too_many_args(p);
		arg->str = imap_arena_strndup(p->arena, line + start, j - start);
		arg->len = j - start;
		*i = j + 1;
		return push(p, '[', arg);
	}
	size_t n = j - start;
	const char *s = line + start;
	bool digits = n <= 20 && flags == 0;
	uint64_t v = 0;
	for (size_t k = 0; digits && k < n; k++) {
		if (s[k] < '0' || s[k] > '9' || v > (UINT64_MAX - 9) / 10)
			digits = false;
		else
			v = v * 10 + (uint64_t)(s[k] - '0');
	}
	enum imap_arg_type type = digits		   ? IMAP_ARG_NUMBER
				  : n == 3 && strncasecmp(s, "NIL", 3) == 0 ? IMAP_ARG_NIL
									    : IMAP_ARG_ATOM;
	arg = add_arg(p, type);
	if (arg == NULL)
		return too_many_args(p);
	arg->str = imap_arena_strndup(p->arena, s, n);
	arg->len = n;
	arg->number = v;
	arg->atom_flags = flags;
	*i = j;
	p->need_sep = true;
	return 0;
}

static bool is_message_literal(const struct imap_parser *p)
{
	if (p->def == NULL || (p->def->flags & IMAP_CMD_FLAG_MESSAGES) == 0)
		return false;
	/* APPEND: the first top-level argument is the mailbox */
	return p->depth > 0 || p->stack[0].count >= 1;
}

/* "{N}", "{N+}", "~{N}", "~{N+}" ending the line: 1 with the size, 0 when
 * the line does not end in one */
static int trailing_literal(const char *line, size_t len, uint64_t *size_r, bool *sync_r,
			    bool *lit8_r)
{
	if (len < 3 || line[len - 1] != '}')
		return 0;
	size_t i = len - 1;
	*sync_r = true;
	if (line[i - 1] == '+') {
		*sync_r = false;
		i--;
	}
	size_t end = i;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
		i--;
	if (i == 0 || i == end || line[i - 1] != '{')
		return 0;
	uint64_t v = 0;
	for (size_t k = i; k < end; k++) {
		if (v > (UINT64_MAX - 9) / 10)
			v = UINT64_MAX;
		else
			v = v * 10 + (uint64_t)(line[k] - '0');
	}
	*size_r = v;
	*lit8_r = i >= 2 && line[i - 2] == '~';
	return 1;
}

/* A literal announced at line[*i]. Returns 1 (literal accepted, due), -1. */
static int parse_literal(struct imap_parser *p, const char *line, size_t len, size_t *i,
			 struct imap_parse_result *r)
{
	size_t j = *i;
	bool lit8 = line[j] == '~', sync = true;
	if (lit8)
		j++;
	j++; /* '{' */
	size_t digits = j;
	uint64_t size = 0;
	while (j < len && line[j] >= '0' && line[j] <= '9') {
		size = size > (UINT64_MAX - 9) / 10 ? UINT64_MAX : size * 10 + (uint64_t)(line[j] - '0');
		j++;
	}
	if (j == digits)
		return set_error(p, IMAP_LIMIT_NONE, NULL, "Invalid literal size");
	if (j < len && line[j] == '+') {
		sync = false;
		j++;
	}
	if (j == len || line[j] != '}')
		return set_error(p, IMAP_LIMIT_NONE, NULL,
				 "Invalid literal (expected {N} or {N+})");
	if (j + 1 != len)
		return set_error(p, IMAP_LIMIT_NONE, NULL,
				 "A literal announcement must end the line");
	bool message = is_message_literal(p);
	if (!sync && p->limits.literal_minus && size > IMAP_LITERAL_MINUS_MAX)
		return set_error(p, IMAP_LIMIT_LITERAL_MINUS, "TOOBIG",
				 "Non-synchronising literal larger than 4096 bytes (LITERAL-)");
	if (message) {
		if (size > p->limits.max_message)
			return set_error(p, IMAP_LIMIT_MESSAGE, "TOOBIG",
					 imap_arena_printf(p->arena,
							   "Message too large (APPENDLIMIT is %zu bytes)",
							   p->limits.max_message));
		if (size + p->append_total > p->limits.max_append_total)
			return set_error(p, IMAP_LIMIT_APPEND_TOTAL, "TOOBIG",
					 imap_arena_printf(p->arena,
							   "Messages of one APPEND too large "
							   "(max %zu bytes)",
							   p->limits.max_append_total));
		p->append_total += size;
	} else {
		if (size > p->limits.max_literal)
			return set_error(p, IMAP_LIMIT_LITERAL, "TOOBIG",
					 imap_arena_printf(p->arena,
							   "Literal too large (max %zu bytes)",
							   p->limits.max_literal));
		if (size + p->cmd_size > p->limits.max_command)
			return set_error(p, IMAP_LIMIT_COMMAND, "TOOBIG",
					 imap_arena_printf(p->arena,
							   "Command too long (max %zu bytes)",
							   p->limits.max_command));
		p->cmd_size += size;
	}
	struct imap_arg *arg = add_arg(p, IMAP_ARG_LITERAL);
	if (arg == NULL)
		return too_many_args(p);
	arg->literal8 = lit8;
	arg->literal_nonsync = !sync;
	p->lit_arg = arg;
	p->lit_size = (size_t)size;
	p->lit_got = 0;
	p->lit_stream = message && p->limits.stream_messages;
	p->lit_nul = false;
	if (p->lit_stream) {
		p->lit_buf = NULL;
		arg->str = "";
		arg->streamed = true;
		arg->stream_index = p->stream_count++;
		r->literal_stream = true;
		r->literal_index = arg->stream_index;
	} else {
		p->lit_buf = imap_arena_alloc(p->arena, p->lit_size + 1);
		p->lit_buf[p->lit_size] = '\0';
		arg->str = (const char *)p->lit_buf;
	}
	arg->len = p->lit_size;
	*i = len;
	p->need_sep = true;
	r->event = IMAP_PARSE_LITERAL;
	r->literal_size = p->lit_size;
	r->literal_sync = sync;
	r->literal8 = lit8;
	p->state = p->lit_size > 0 ? PS_LITERAL : PS_ARGS;
	return 1;
}

/* Tokens of line[i..len). Returns 1 when the command is complete, 0 when
 * a literal is due (r filled), -1 on error (p->error). */
static int parse_tokens(struct imap_parser *p, const char *line, size_t len, size_t i,
			struct imap_parse_result *r)
{
	for (;;) {
		struct container *top = &p->stack[p->depth];
		if (i == len) {
			if (p->depth > 0)
				return set_error(p, IMAP_LIMIT_NONE, NULL,
						 top->kind == '(' ? "Missing ')'" : "Missing ']'");
			return 1;
		}
		char c = line[i];
		if ((c == ')' && top->kind == '(') || (c == ']' && top->kind == '[')) {
			if (!p->need_sep && top->count > 0)
				return set_error(p, IMAP_LIMIT_NONE, NULL,
						 imap_arena_printf(p->arena,
								   "Extra space before '%c'", c));
			struct imap_arg *owner = top->owner;
			pop(p);
			i++;
			if (c == ']' && i < len && line[i] == '<' &&
			    parse_partial(p, line, len, &i, owner) < 0)
				return -1;
			p->need_sep = true;
			continue;
		}
		if (p->need_sep) {
			if (c != ' ') {
				if (c == ')' || c == ']')
					return set_error(p, IMAP_LIMIT_NONE, NULL,
							 imap_arena_printf(p->arena,
									   "Unexpected '%c'", c));
				if ((unsigned char)c >= 0x80)
					return set_error(p, IMAP_LIMIT_NONE, NULL,
							 "8-bit data must be sent as a quoted "
							 "string or a literal");
				if (c == '\0')
					return set_error(p, IMAP_LIMIT_NONE, NULL,
							 "NUL in command line");
				return set_error(p, IMAP_LIMIT_NONE, NULL,
						 "Missing space between arguments");
			}
			i++;
			p->need_sep = false;
			if (i == len)
				return set_error(p, IMAP_LIMIT_NONE, NULL,
						 "Extra space at the end of the line");
			if (line[i] == ' ')
				return set_error(p, IMAP_LIMIT_NONE, NULL,
						 "Extra space between arguments");
			continue;
		}
		if (c == '(') {
			struct imap_arg *arg = add_arg(p, IMAP_ARG_LIST);
			if (arg == NULL)
				return too_many_args(p);
			if (push(p, '(', arg) < 0)
				return -1;
			i++;
			continue;
		}
		if (c == ' ')
			return set_error(p, IMAP_LIMIT_NONE, NULL, "Extra space between arguments");
		if (c == '"') {
			if (parse_quoted(p, line, len, &i) < 0)
				return -1;
			p->need_sep = true;
			continue;
		}
		if (c == '{' || (c == '~' && i + 1 < len && line[i + 1] == '{')) {
			int ret = parse_literal(p, line, len, &i, r);
			return ret < 0 ? -1 : 0;
		}
		if (parse_atom(p, line, len, &i) < 0)
			return -1;
		/* a section was opened: its items follow without a space */
		if (p->stack[p->depth].kind == '[' && line[i - 1] == '[')
			p->need_sep = false;
	}
}

/* tag, command name, UID; returns the index after them or -1 */
static long parse_head(struct imap_parser *p, const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && tag_char((unsigned char)line[i]))
		i++;
	if (i == 0 || i > IMAP_PARSER_MAX_TAG || (i < len && line[i] != ' ')) {
		set_error(p, IMAP_LIMIT_NONE, NULL,
			  len == 0 ? "Empty command line" : "Missing or invalid tag");
		return -1;
	}
	p->tag = imap_arena_strndup(p->arena, line, i);
	if (i == len) {
		set_error(p, IMAP_LIMIT_NONE, NULL, "Missing command");
		return -1;
	}
	i++;
	char name[IMAP_PARSER_MAX_COMMAND_NAME * 2 + 8];
	size_t n = 0;
	for (int word = 0; word < 2; word++) {
		size_t start = i;
		while (i < len && atom_char((unsigned char)line[i]) && line[i] != '[' &&
		       line[i] != ']' && line[i] != '%' && line[i] != '*')
			i++;
		if (i == start || (i < len && line[i] != ' ')) {
			set_error(p, IMAP_LIMIT_NONE, NULL,
				  word == 0 ? "Missing or invalid command name"
					    : "Missing or invalid command name after UID");
			return -1;
		}
		if (i - start > IMAP_PARSER_MAX_COMMAND_NAME) {
			set_error(p, IMAP_LIMIT_NONE, NULL, "Command name too long");
			return -1;
		}
		for (size_t k = start; k < i; k++)
			name[n++] = (char)(line[k] >= 'a' && line[k] <= 'z' ? line[k] - 32 : line[k]);
		name[n] = '\0';
		if (word == 0 && strcmp(name, "UID") == 0) {
			if (i == len) {
				set_error(p, IMAP_LIMIT_NONE, NULL, "Missing command after UID");
				return -1;
			}
			name[n++] = ' ';
			i++;
			p->uid = true;
			continue;
		}
		break;
	}
	p->def = imap_command_lookup(name);
	if (p->def == NULL) {
		set_error(p, IMAP_LIMIT_NONE, "CLIENTBUG",
			  imap_arena_printf(p->arena, "Unknown command: %s", name));
		return -1;
	}
	return (long)i;
}

/* an error in a line: drop a non-synchronising literal the client sends
 * anyway, or report now */
static int line_failed(struct imap_parser *p, const char *line, size_t len,
		       struct imap_parse_result *r)
{
	uint64_t size;
	bool sync, lit8;
	if (trailing_literal(line, len, &size, &sync, &lit8) == 1 && !sync) {
		if (size > p->limits.max_discard - p->discarded) {
			p->error.bye = true;
			if (p->error.code == NULL)
				p->error.code = "TOOBIG";
			return report_error(p, r);
		}
		p->discarded += (size_t)size;
		p->skip_left = (size_t)size;
		p->state = size > 0 ? PS_SKIP_LITERAL : PS_SKIP_LINE;
		r->event = IMAP_PARSE_LITERAL;
		r->literal_size = (size_t)size;
		r->literal_sync = false;
		r->literal8 = lit8;
		r->literal_skip = true;
		return 0;
	}
	return report_error(p, r);
}

static int command_done(struct imap_parser *p, struct imap_parse_result *r)
{
	struct imap_command *cmd = imap_arena_zalloc(p->arena, sizeof(*cmd));
	cmd->tag = p->tag;
	cmd->def = p->def;
	cmd->name = p->def->name;
	cmd->uid = p->uid;
	cmd->args = finish_container(p, &p->stack[0]);
	cmd->arg_count = p->stack[0].count;
	cmd->arena = p->arena;
	cmd->ctx = &p->ctx;
	const char *error;
	if (imap_command_parse(cmd, &error) < 0) {
		set_error(p, IMAP_LIMIT_NONE, NULL, error);
		return report_error(p, r);
	}
	p->state = PS_START;
	r->event = IMAP_PARSE_COMMAND;
	r->command = cmd;
	return 1;
}

int imap_parser_line(struct imap_parser *p, const char *line, size_t len,
		     struct imap_parse_result *r)
{
	memset(r, 0, sizeof(*r));
	switch (p->state) {
	case PS_LITERAL:
	case PS_SKIP_LITERAL:
		/* the caller lost track of the literal: nothing can be trusted */
		imap_parser_reset(p);
		set_error(p, IMAP_LIMIT_NONE, NULL, "Literal data expected");
		p->error.bye = true;
		return report_error(p, r);
	case PS_SKIP_LINE:
		return line_failed(p, line, len, r);
	case PS_START:
		start_command(p);
		break;
	case PS_ARGS:
		break;
	}
	p->cmd_size += len + 2;
	if (p->cmd_size > p->limits.max_command) {
		set_error(p, IMAP_LIMIT_COMMAND, "TOOBIG",
			  imap_arena_printf(p->arena, "Command too long (max %zu bytes)",
					    p->limits.max_command));
		return line_failed(p, line, len, r);
	}
	size_t i = 0;
	if (p->state == PS_START) {
		long head = parse_head(p, line, len);
		if (head < 0)
			return line_failed(p, line, len, r);
		i = (size_t)head;
		p->state = PS_ARGS;
		p->need_sep = true;
	}
	int ret = parse_tokens(p, line, len, i, r);
	if (ret < 0)
		return line_failed(p, line, len, r);
	if (ret == 0)
		return 0;
	return command_done(p, r);
}

int imap_parser_literal(struct imap_parser *p, const void *data, size_t len,
			struct imap_parse_result *r)
{
	memset(r, 0, sizeof(*r));
	if (p->state == PS_SKIP_LITERAL) {
		size_t n = len < p->skip_left ? len : p->skip_left;
		p->skip_left -= n;
		if (p->skip_left == 0)
			p->state = PS_SKIP_LINE;
		return 0;
	}
	if (p->state != PS_LITERAL) {
		imap_parser_reset(p);
		set_error(p, IMAP_LIMIT_NONE, NULL, "Unexpected literal data");
		p->error.bye = true;
		return report_error(p, r);
	}
	size_t n = len < p->lit_size - p->lit_got ? len : p->lit_size - p->lit_got;
	if (p->lit_stream) {
		/* the caller keeps the bytes: only what the checks below need */
		if (!p->lit_nul && memchr(data, '\0', n) != NULL)
			p->lit_nul = true;
		if (!p->lit_arg->eightbit)
			for (size_t k = 0; k < n; k++)
				if (((const unsigned char *)data)[k] >= 0x80) {
					p->lit_arg->eightbit = true;
					break;
				}
	} else {
		memcpy(p->lit_buf + p->lit_got, data, n);
	}
	p->lit_got += n;
	if (p->lit_got < p->lit_size)
		return 0;
	struct imap_arg *arg = p->lit_arg;
	p->lit_arg = NULL;
	p->state = PS_ARGS;
	if (p->lit_stream) {
		p->lit_stream = false;
		if (!arg->literal8 && p->lit_nul) {
			set_error(p, IMAP_LIMIT_NONE, NULL, "NUL in literal (use literal8 ~{N})");
			p->state = PS_SKIP_LINE;
		}
		return 0;
	}
	if (!arg->literal8 && memchr(p->lit_buf, '\0', p->lit_size) != NULL) {
		/* the rest of the command still arrives: skip it */
		set_error(p, IMAP_LIMIT_NONE, NULL, "NUL in literal (use literal8 ~{N})");
		p->state = PS_SKIP_LINE;
		return 0;
	}
	for (size_t k = 0; k < p->lit_size; k++) {
		if (p->lit_buf[k] >= 0x80) {
			arg->eightbit = true;
			break;
		}
	}
	return 0;
}

int imap_parser_line_too_long(struct imap_parser *p, struct imap_parse_result *r)
{
	memset(r, 0, sizeof(*r));
	const char *tag = p->state == PS_START ? NULL : p->tag;
	const struct imap_command_def *def = p->state == PS_START ? NULL : p->def;
	imap_parser_reset(p);
	p->error.tag = tag;
	p->error.def = def;
	p->error.code = "TOOBIG";
	p->error.text = "Command line too long";
	p->error.limit = IMAP_LIMIT_LINE;
	return report_error(p, r);
}
