#include "proto/imap/imap_arg.h"

#include <string.h>
#include <strings.h>

bool imap_arg_atom_eq(const struct imap_arg *arg, const char *name)
{
	return arg->type == IMAP_ARG_ATOM && strcasecmp(arg->str, name) == 0;
}

bool imap_arg_get_atom(const struct imap_arg *arg, const char **str_r)
{
	if (arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_NUMBER &&
	    arg->type != IMAP_ARG_NIL)
		return false;
	*str_r = arg->str;
	return true;
}

bool imap_arg_get_string(const struct imap_arg *arg, const char **str_r, size_t *len_r)
{
	if (arg->type != IMAP_ARG_QUOTED && arg->type != IMAP_ARG_LITERAL)
		return false;
	if (arg->literal8 || memchr(arg->str, '\0', arg->len) != NULL)
		return false;
	*str_r = arg->str;
	*len_r = arg->len;
	return true;
}

bool imap_arg_get_astring(const struct imap_arg *arg, const char **str_r, size_t *len_r)
{
	switch (arg->type) {
	case IMAP_ARG_ATOM:
		if ((arg->atom_flags & (IMAP_ATOM_WILDCARD | IMAP_ATOM_BACKSLASH)) != 0)
			return false;
		/* fall through */
	case IMAP_ARG_NUMBER:
	case IMAP_ARG_NIL:
		*str_r = arg->str;
		*len_r = arg->len;
		return true;
	case IMAP_ARG_QUOTED:
	case IMAP_ARG_LITERAL:
		return imap_arg_get_string(arg, str_r, len_r);
	default:
		return false;
	}
}

bool imap_arg_get_nstring(const struct imap_arg *arg, const char **str_r, size_t *len_r)
{
	if (arg->type == IMAP_ARG_NIL) {
		*str_r = NULL;
		*len_r = 0;
		return true;
	}
	return imap_arg_get_string(arg, str_r, len_r);
}

bool imap_arg_get_number64(const struct imap_arg *arg, uint64_t *n_r)
{
	/* number64 is at most 2^63-1 (RFC 9051) */
	if (arg->type != IMAP_ARG_NUMBER || arg->number > INT64_MAX)
		return false;
	*n_r = arg->number;
	return true;
}

bool imap_arg_get_number(const struct imap_arg *arg, uint32_t *n_r)
{
	if (arg->type != IMAP_ARG_NUMBER || arg->number > UINT32_MAX)
		return false;
	*n_r = (uint32_t)arg->number;
	return true;
}

bool imap_arg_get_nz_number(const struct imap_arg *arg, uint32_t *n_r)
{
	return imap_arg_get_number(arg, n_r) && *n_r != 0;
}

bool imap_arg_get_modseq(const struct imap_arg *arg, uint64_t *n_r)
{
	return imap_arg_get_number64(arg, n_r) && *n_r != 0;
}

bool imap_arg_get_list(const struct imap_arg *arg, const struct imap_arg **items_r,
		       unsigned *count_r)
{
	if (arg->type != IMAP_ARG_LIST)
		return false;
	*items_r = arg->list;
	*count_r = arg->list_count;
	return true;
}
