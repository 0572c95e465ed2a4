#ifndef POSTERN_IMAP_COMMAND_PRIVATE_H
#define POSTERN_IMAP_COMMAND_PRIVATE_H

#include "proto/imap/imap_command.h"

/* Typed parsers, one per command family file; see struct
 * imap_command_def for the contract. */
#define IMAP_PARSER_FN(name)                                                                 \
	int name(struct imap_command *cmd, const struct imap_arg *args, unsigned count,      \
		 const char **error_r)

/* imap_command.c */
IMAP_PARSER_FN(imap_parse_none);
IMAP_PARSER_FN(imap_parse_authenticate);
IMAP_PARSER_FN(imap_parse_login);
IMAP_PARSER_FN(imap_parse_enable);
IMAP_PARSER_FN(imap_parse_id);
IMAP_PARSER_FN(imap_parse_compress);
IMAP_PARSER_FN(imap_parse_getquota);
IMAP_PARSER_FN(imap_parse_setquota);
/* imap_parse_mailbox.c */
IMAP_PARSER_FN(imap_parse_select);
IMAP_PARSER_FN(imap_parse_create);
IMAP_PARSER_FN(imap_parse_one_mailbox);
IMAP_PARSER_FN(imap_parse_rename);
IMAP_PARSER_FN(imap_parse_list);
IMAP_PARSER_FN(imap_parse_lsub);
IMAP_PARSER_FN(imap_parse_status);
IMAP_PARSER_FN(imap_parse_append);
/* imap_parse_fetch.c */
IMAP_PARSER_FN(imap_parse_fetch);
IMAP_PARSER_FN(imap_parse_store);
IMAP_PARSER_FN(imap_parse_copy);
IMAP_PARSER_FN(imap_parse_uid_expunge);
/* imap_parse_search.c */
IMAP_PARSER_FN(imap_parse_search);
IMAP_PARSER_FN(imap_parse_sort);
IMAP_PARSER_FN(imap_parse_thread);

/* an upper-cased copy in the command's arena */
char *imap_command_upper(struct imap_command *cmd, const char *str);
/* a formatted error text in the command's arena; returns -1 */
int imap_command_error(struct imap_command *cmd, const char **error_r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* parse flags from args[0..count) (each a flag atom) */
int imap_parse_flags(struct imap_command *cmd, const struct imap_arg *args, unsigned count,
		     bool allow_recent, const char ***flags_r, unsigned *count_r,
		     const char **error_r);

#endif
