#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "mail/mail_address.h"

/* A small tokeniser: atoms (with dots), quoted strings, domain literals and
 * the specials < > @ , : ; -- comments are skipped. */

enum tok { T_END, T_WORD, T_QUOTED, T_SPECIAL };

struct lexer {
	const char *s;
	char *text; /* current token's text */
	enum tok tok;
	char special;
};

static void lex_next(struct lexer *lx)
{
	free(lx->text);
	lx->text = NULL;
	const char *s = lx->s;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		if (*s != '(')
			break;
		int depth = 0;
		while (*s != '\0') {
			if (*s == '\\' && s[1] != '\0')
				s++;
			else if (*s == '(')
				depth++;
			else if (*s == ')' && --depth == 0) {
				s++;
				break;
			}
			s++;
		}
	}
	if (*s == '\0') {
		lx->tok = T_END;
	} else if (strchr("<>@,:;", *s) != NULL) {
		lx->tok = T_SPECIAL;
		lx->special = *s++;
	} else if (*s == '"') {
		s++;
		size_t cap = strlen(s) + 1, n = 0;
		lx->text = xmalloc(cap);
		while (*s != '\0' && *s != '"') {
			if (*s == '\\' && s[1] != '\0')
				s++;
			lx->text[n++] = *s++;
		}
		lx->text[n] = '\0';
		if (*s == '"')
			s++;
		lx->tok = T_QUOTED;
	} else if (*s == '[') {
		const char *start = s;
		while (*s != '\0' && *s != ']')
			s++;
		if (*s == ']')
			s++;
		lx->text = xstrndup(start, (size_t)(s - start));
		lx->tok = T_WORD;
	} else {
		const char *start = s;
		while (*s != '\0' && strchr("<>@,:;\"( \t\r\n[", *s) == NULL)
			s++;
		if (s == start)
			s++; /* a lone ')' or the like */
		lx->text = xstrndup(start, (size_t)(s - start));
		lx->tok = T_WORD;
	}
	lx->s = s;
}

static void cat(char **dst, const char *src, const char *sep)
{
	if (*dst == NULL) {
		*dst = xstrdup(src);
		return;
	}
	char *n = xasprintf("%s%s%s", *dst, sep, src);
	free(*dst);
	*dst = n;
}

static bool is_sp(const struct lexer *lx, char c)
{
	return lx->tok == T_SPECIAL && lx->special == c;
}

static struct mail_address *addr_new(struct mail_address ***tail)
{
	struct mail_address *a = xcalloc(1, sizeof(*a));
	**tail = a;
	*tail = &a->next;
	return a;
}

/* local@domain up to '>' (in angle brackets) or ',' ';' end. */
static void parse_spec(struct lexer *lx, struct mail_address *a, bool angle)
{
	char *local = NULL, *domain = NULL;
	bool at = false;
	if (angle && is_sp(lx, '@')) {
		/* obsolete route: @a,@b: */
		char *route = NULL;
		while (lx->tok != T_END && !is_sp(lx, ':') && !is_sp(lx, '>')) {
			cat(&route, lx->tok == T_SPECIAL ? (char[]){lx->special, 0} : lx->text, "");
			lex_next(lx);
		}
		if (is_sp(lx, ':')) {
			a->route = route;
			lex_next(lx);
		} else {
			free(route);
		}
	}
	while (lx->tok != T_END) {
		if (angle && is_sp(lx, '>'))
			break;
		if (!angle && (is_sp(lx, ',') || is_sp(lx, ';')))
			break;
		if (is_sp(lx, '@') && !at) {
			at = true;
		} else if (lx->tok == T_WORD || lx->tok == T_QUOTED) {
			cat(at ? &domain : &local, lx->text, "");
		} else if (angle && (is_sp(lx, ',') || is_sp(lx, ';'))) {
			break;
		}
		lex_next(lx);
	}
	if (angle && is_sp(lx, '>'))
		lex_next(lx);
	a->mailbox = local != NULL ? local : xstrdup("MISSING_MAILBOX");
	a->domain = domain != NULL ? domain : xstrdup("MISSING_DOMAIN");
}

struct mail_address *mail_address_parse(const char *value)
{
	struct mail_address *list = NULL, **tail = &list;
	struct lexer lx = {.s = value};
	bool in_group = false;
	unsigned count = 0;
	lex_next(&lx);
	while (lx.tok != T_END && count < 10000) {
		count++;
		if (is_sp(&lx, ',')) {
			lex_next(&lx);
			continue;
		}
		if (is_sp(&lx, ';')) {
			if (in_group) {
				addr_new(&tail);
				in_group = false;
			}
			lex_next(&lx);
			continue;
		}
		/* a phrase, then '<' (name-addr), ':' (group) or an addr-spec */
		const char *save = lx.s;
		char *save_text = lx.text != NULL ? xstrdup(lx.text) : NULL;
		enum tok save_tok = lx.tok;
		char save_special = lx.special;
		char *phrase = NULL;
		while (lx.tok == T_WORD || lx.tok == T_QUOTED) {
			cat(&phrase, lx.text, " ");
			lex_next(&lx);
		}
		if (is_sp(&lx, '<')) {
			lex_next(&lx);
			struct mail_address *a = addr_new(&tail);
			a->name = phrase;
			parse_spec(&lx, a, true);
			free(save_text);
		} else if (is_sp(&lx, ':') && !in_group && phrase != NULL) {
			lex_next(&lx);
			struct mail_address *a = addr_new(&tail);
			a->mailbox = phrase;
			in_group = true;
			free(save_text);
		} else {
			/* re-read as an addr-spec */
			free(phrase);
			free(lx.text);
			lx.s = save;
			lx.text = save_text;
			lx.tok = save_tok;
			lx.special = save_special;
			if (lx.tok == T_SPECIAL && !is_sp(&lx, '@')) {
				lex_next(&lx); /* stray special */
				continue;
			}
			struct mail_address *a = addr_new(&tail);
			parse_spec(&lx, a, false);
		}
	}
	if (in_group)
		addr_new(&tail);
	free(lx.text);
	return list;
}

void mail_address_free(struct mail_address **list)
{
	struct mail_address *a = *list;
	while (a != NULL) {
		struct mail_address *next = a->next;
		free(a->name);
		free(a->route);
		free(a->mailbox);
		free(a->domain);
		free(a);
		a = next;
	}
	*list = NULL;
}
