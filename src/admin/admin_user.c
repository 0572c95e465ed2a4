#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "admin/admin.h"
#include "directory/directory.h"
#include "directory/password.h"
#include "directory/password_scram.h"
#include "lib/settings.h"
#include "lib/xalloc.h"

/* `posternctl user ...`: the directory's users. Every command validates all
 * of its input before it changes anything; a password is read from the
 * first line of standard input (or, on a terminal, typed twice unechoed). */

static void admin_user_usage(FILE *out)
{
	fprintf(out,
		"usage: posternctl user add NAME [--kind user|shared|guest|admin] [--backend B]\n"
		"                           [--quota SIZE] [--save-sent on|off|default]\n"
		"                           [--password-hash HASH [--scram-sha-256 KEYS]\n"
		"                           | --no-password]\n"
		"       posternctl user del NAME\n"
		"       posternctl user list\n"
		"       posternctl user show NAME\n"
		"       posternctl user passwd NAME\n"
		"       posternctl user set NAME FIELD=VALUE... [--kick]\n"
		"  The password is read from standard input (first line), or asked twice on a\n"
		"  terminal, and stored as a yescrypt hash and SCRAM-SHA-256 keys. An imported\n"
		"  HASH may come with the SCRAM-SHA-256 KEYS of the same password\n"
		"  (SCRAM-SHA-256$I:SALT$STOREDKEY:SERVERKEY, or Dovecot's\n"
		"  {SCRAM-SHA-256}I,SALT,STOREDKEY,SERVERKEY); without them the keys are made\n"
		"  at the user's next PLAIN or LOGIN login.\n"
		"  SIZE is bytes or a number with K, M, G or T, or 'unlimited'.\n"
		"  set fields: pop3=on|off imap4=on|off smtp=on|off kind=KIND backend=B\n"
		"              quota=SIZE|unlimited send-as=ADDRESS,ADDRESS...\n"
		"              save-sent=on|off|default (a copy of each message the user\n"
		"              submits goes to the Sent folder; default: the submission\n"
		"              service's save-sent setting)\n"
		"  --FIELD VALUE and --FIELD=VALUE are accepted too.\n"
		"  --kick ends the user's open sessions now (otherwise changes apply to\n"
		"  the next login).\n");
}

static void admin_user_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void admin_user_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("posternctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* "10M" -> bytes. 0 means unlimited. Returns 0 or -1 with *error_r. */
static int admin_user_parse_quota(const char *text, unsigned long long *bytes_r, char **error_r)
{
	if (strcasecmp(text, "unlimited") == 0) {
		*bytes_r = 0;
		return 0;
	}
	size_t len = strlen(text);
	unsigned shift = 0;
	if (len > 0 && !isdigit((unsigned char)text[len - 1])) {
		switch (toupper((unsigned char)text[len - 1])) {
		case 'K':
			shift = 10;
			break;
		case 'M':
			shift = 20;
			break;
		case 'G':
			shift = 30;
			break;
		case 'T':
			shift = 40;
			break;
		default:
			shift = 99;
		}
		len--;
	}
	unsigned long long n = 0;
	bool ok = len > 0 && len <= 15 && shift != 99;
	for (size_t i = 0; ok && i < len; i++) {
		ok = isdigit((unsigned char)text[i]) != 0;
		n = n * 10 + (unsigned long long)(text[i] - '0');
	}
	if (ok)
		ok = n > 0 && n <= ((unsigned long long)INT64_MAX >> shift);
	if (!ok) {
		*error_r = xasprintf("quota: must be a size such as 500M, 2G or 1073741824 (bytes, "
				     "or K, M, G, T), or 'unlimited' (got '%s')",
				     text);
		return -1;
	}
	*bytes_r = n << shift;
	return 0;
}

static void admin_user_format_quota(unsigned long long bytes, char *buf, size_t size)
{
	static const char units[] = "TGMK";
	if (bytes == 0) {
		snprintf(buf, size, "unlimited");
		return;
	}
	for (int i = 0; i < 4; i++) {
		unsigned shift = (unsigned)(40 - 10 * i);
		if (bytes % (1ULL << shift) == 0) {
			snprintf(buf, size, "%llu%c", bytes >> shift, units[i]);
			return;
		}
	}
	snprintf(buf, size, "%llu", bytes);
}

/* on/off for the protocol switches */
static int admin_user_parse_switch(const char *field, const char *text, bool *on_r, char **error_r)
{
	if (settings_parse_bool(text, on_r) == 0)
		return 0;
	*error_r = xasprintf("%s: must be on or off (got '%s')", field, text);
	return -1;
}

/* Read one line of at most PASSWORD_MAX_LENGTH bytes from fd 0 without the
 * newline. Returns 1, 0 on immediate end of input, -1 on error. */
static int admin_user_read_line(char *buf, size_t size, char **error_r)
{
	size_t len = 0;
	for (;;) {
		char c;
		ssize_t n = read(STDIN_FILENO, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = xasprintf("reading the password: %s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			if (len == 0)
				return 0;
			break;
		}
		if (c == '\n')
			break;
		if (len + 1 >= size) {
			*error_r =
			    xasprintf("the password is longer than %d bytes", PASSWORD_MAX_LENGTH);
			return -1;
		}
		buf[len++] = c;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		*error_r = xstrdup("the password holds a NUL byte");
		return -1;
	}
	return 1;
}

/* One unechoed line from the terminal after a prompt on stderr. */
static int admin_user_read_tty(const char *prompt, char *buf, size_t size, char **error_r)
{
	struct termios old, quiet;
	bool restore = tcgetattr(STDIN_FILENO, &old) == 0;
	if (restore) {
		/* echo off first, then prompt: what is typed after the prompt
		 * is never echoed and never flushed away */
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	fputs(prompt, stderr);
	fflush(stderr);
	int ret = admin_user_read_line(buf, size, error_r);
	if (restore)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &old);
	return ret;
}

/* Ask for a new password, hash it and derive its SCRAM-SHA-256 keys.
 * Returns 0 with *hash_r and *scram_r (NULL, after a warning, when SASLprep
 * refuses the password), or -1 with *error_r. */
static int admin_user_read_password(const char *name, char **hash_r, char **scram_r,
				    char **error_r)
{
	char pw[PASSWORD_MAX_LENGTH + 2], again[PASSWORD_MAX_LENGTH + 2];
	int ret;
	if (isatty(STDIN_FILENO)) {
		char *prompt = xasprintf("New password for %s: ", name);
		ret = admin_user_read_tty(prompt, pw, sizeof(pw), error_r);
		free(prompt);
		if (ret == 1)
			ret = admin_user_read_tty("Retype the password: ", again, sizeof(again),
						  error_r);
		if (ret == 1 && strcmp(pw, again) != 0) {
			*error_r = xstrdup("the two passwords differ; nothing changed");
			ret = -1;
		}
		OPENSSL_cleanse(again, sizeof(again));
	} else {
		ret = admin_user_read_line(pw, sizeof(pw), error_r);
	}
	if (ret == 0 || (ret == 1 && pw[0] == '\0')) {
		*error_r = xstrdup("the password is empty (give it on the first line of standard "
				   "input)");
		ret = -1;
	}
	if (ret == 1)
		ret = password_hash(pw, hash_r, error_r) < 0 ? -1 : 0;
	if (ret == 0) {
		char *why = NULL;
		int k = password_scram_make(pw, scram_r, &why);
		if (k < 0) {
			free(*hash_r);
			*hash_r = NULL;
			*error_r = why;
			ret = -1;
		} else if (k == 0) {
			fprintf(stderr,
				"posternctl: warning: %s; no SCRAM-SHA-256 keys are stored, so "
				"the user can log in with PLAIN and LOGIN only\n",
				why);
			free(why);
		}
	}
	OPENSSL_cleanse(pw, sizeof(pw));
	return ret;
}

/* Check a name given on the command line; prints the error. */
static bool admin_user_name_ok(const char *name)
{
	char *error = NULL;
	if (directory_user_name_check(name, &error) == 0)
		return true;
	admin_user_error("%s", error);
	free(error);
	return false;
}

static struct directory *admin_user_open(const char *datadir, bool readonly)
{
	struct directory *dir = NULL;
	char *error = NULL;
	if (directory_open(datadir, readonly, &dir, &error) < 0) {
		admin_user_error("%s", error);
		free(error);
	}
	return dir;
}

/* After a change: tell a running master. 0 or 1 (its reload failed). */
static int admin_user_notify(const char *datadir)
{
	return admin_notify_reload(datadir) < 0 ? 1 : 0;
}

static int admin_user_add(const char *datadir, int argc, char **argv)
{
	const char *name = NULL, *kind_text = "user", *backend = NULL, *quota = NULL;
	const char *import_hash = NULL, *import_scram = NULL, *save_sent = NULL;
	bool no_password = false;
	for (int i = 1; i < argc; i++) {
		const char *opts[] = {"--kind", "--backend", "--quota", "--password-hash",
				      "--scram-sha-256", "--save-sent"};
		const char **targets[] = {&kind_text, &backend, &quota, &import_hash, &import_scram,
					  &save_sent};
		bool matched = false;
		for (size_t k = 0; k < 6 && !matched; k++) {
			size_t n = strlen(opts[k]);
			if (strcmp(argv[i], opts[k]) == 0) {
				if (i + 1 >= argc) {
					admin_user_error("user add: %s needs a value", opts[k]);
					return 2;
				}
				*targets[k] = argv[++i];
				matched = true;
			} else if (strncmp(argv[i], opts[k], n) == 0 && argv[i][n] == '=') {
				*targets[k] = argv[i] + n + 1;
				matched = true;
			}
		}
		if (matched)
			continue;
		if (strcmp(argv[i], "--no-password") == 0) {
			no_password = true;
		} else if (strncmp(argv[i], "--", 2) == 0 || name != NULL) {
			admin_user_error("user add: unexpected argument '%s'", argv[i]);
			admin_user_usage(stderr);
			return 2;
		} else {
			name = argv[i];
		}
	}
	if (name == NULL) {
		admin_user_usage(stderr);
		return 2;
	}
	if (no_password && import_hash != NULL) {
		admin_user_error("user add: --password-hash and --no-password exclude each other");
		return 2;
	}
	if (import_scram != NULL && import_hash == NULL) {
		admin_user_error("user add: --scram-sha-256 comes with --password-hash (the keys "
				 "of the same password)");
		return 2;
	}
	if (!admin_user_name_ok(name))
		return 1;

	char *error = NULL;
	enum directory_user_kind kind;
	enum directory_save_sent save = DIRECTORY_SAVE_SENT_DEFAULT;
	unsigned long long quota_bytes = 0;
	if (directory_kind_parse(kind_text, &kind, &error) < 0 ||
	    (save_sent != NULL && directory_save_sent_parse(save_sent, &save, &error) < 0) ||
	    (quota != NULL && admin_user_parse_quota(quota, &quota_bytes, &error) < 0) ||
	    (import_hash != NULL && password_hash_check(import_hash, &error) < 0)) {
		admin_user_error("user add: %s", error);
		free(error);
		return 1;
	}
	char *scram = NULL;
	if (import_scram != NULL && password_scram_normalise(import_scram, &scram, &error) < 0) {
		admin_user_error("user add: --scram-sha-256: %s", error);
		free(error);
		return 1;
	}
	struct directory *dir = admin_user_open(datadir, false);
	if (dir == NULL) {
		free(scram);
		return 1;
	}

	/* refuse a taken name or a missing back end before asking for a password */
	struct directory_user *existing = NULL;
	struct directory_backend *b = NULL;
	int found = directory_user_get(dir, name, &existing, &error);
	if (found != 0) {
		if (found > 0)
			admin_user_error("user '%s' already exists%s%s%s", name,
					 strcmp(existing->name, name) != 0 ? " (as '" : "",
					 strcmp(existing->name, name) != 0 ? existing->name : "",
					 strcmp(existing->name, name) != 0
					     ? "'; names ignore letter case)"
					     : "");
		else
			admin_user_error("%s", error);
		free(error);
		directory_user_free(&existing);
		directory_close(&dir);
		free(scram);
		return 1;
	}
	if (backend != NULL) {
		int r = directory_backend_get(dir, backend, &b, &error);
		directory_backend_free(&b);
		if (r <= 0) {
			if (r == 0)
				admin_user_error("back end '%s' does not exist", backend);
			else
				admin_user_error("%s", error);
			free(error);
			directory_close(&dir);
			free(scram);
			return 1;
		}
	}

	struct directory_user u;
	directory_user_init(&u, name, kind);
	u.quota_bytes = quota_bytes;
	u.save_sent = save;
	if (backend != NULL) {
		free(u.backend);
		u.backend = xstrdup(backend);
	}
	int result = 1;
	if (import_hash != NULL) {
		u.password_hash = xstrdup(import_hash);
		u.scram_sha256 = scram;
		scram = NULL;
	} else if (!no_password &&
		   admin_user_read_password(name, &u.password_hash, &u.scram_sha256, &error) < 0) {
		goto out;
	}
	int r = directory_user_add(dir, &u, &error);
	if (r != 1)
		goto out;
	printf("user %s added (kind %s, back end %s%s)\n", u.name, directory_kind_name(u.kind),
	       u.backend, u.password_hash == NULL ? ", no password" : "");
	result = 0;
out:
	if (error != NULL) {
		admin_user_error("user add: %s", error);
		free(error);
	}
	directory_user_clear(&u);
	directory_close(&dir);
	free(scram);
	return result == 0 ? admin_user_notify(datadir) : result;
}

static int admin_user_del(const char *datadir, int argc, char **argv)
{
	if (argc != 2) {
		admin_user_usage(stderr);
		return 2;
	}
	if (!admin_user_name_ok(argv[1]))
		return 1;
	struct directory *dir = admin_user_open(datadir, false);
	if (dir == NULL)
		return 1;
	char *error = NULL;
	int r = directory_user_del(dir, argv[1], &error);
	directory_close(&dir);
	if (r < 0) {
		admin_user_error("%s", error);
		free(error);
		return 1;
	}
	if (r == 0) {
		admin_user_error("no such user '%s'", argv[1]);
		return 1;
	}
	printf("user %s deleted\n", argv[1]);
	/* a deleted account keeps no session open */
	int result = admin_user_notify(datadir);
	if (admin_kick_user(datadir, argv[1]) < 0)
		result = 1;
	return result;
}

static int admin_user_list(const char *datadir, int argc, char **argv)
{
	if (argc != 1) {
		admin_user_usage(stderr);
		return 2;
	}
	struct directory *dir = admin_user_open(datadir, true);
	if (dir == NULL)
		return 1;
	struct directory_user *users;
	size_t count;
	char *error = NULL;
	int r = directory_user_list(dir, &users, &count, &error);
	directory_close(&dir);
	if (r < 0) {
		admin_user_error("%s", error);
		free(error);
		return 1;
	}
	int wname = 4, wbackend = 7;
	for (size_t i = 0; i < count; i++) {
		int n = (int)strlen(users[i].name), b = (int)strlen(users[i].backend);
		wname = n > wname ? n : wname;
		wbackend = b > wbackend ? b : wbackend;
	}
	printf("%-*s  %-6s  %-4s  %-5s  %-4s  %-*s  %-9s  %s\n", wname, "name", "kind", "pop3",
	       "imap4", "smtp", wbackend, "backend", "quota", "save-sent");
	for (size_t i = 0; i < count; i++) {
		const struct directory_user *u = &users[i];
		char quota[32];
		admin_user_format_quota(u->quota_bytes, quota, sizeof(quota));
		printf("%-*s  %-6s  %-4s  %-5s  %-4s  %-*s  %-9s  %s\n", wname, u->name,
		       directory_kind_name(u->kind), u->pop3_enabled ? "on" : "off",
		       u->imap4_enabled ? "on" : "off", u->smtp_enabled ? "on" : "off", wbackend,
		       u->backend, quota, directory_save_sent_name(u->save_sent));
	}
	directory_user_list_free(&users, count);
	return 0;
}

static int admin_user_show(const char *datadir, int argc, char **argv)
{
	if (argc != 2) {
		admin_user_usage(stderr);
		return 2;
	}
	if (!admin_user_name_ok(argv[1]))
		return 1;
	struct directory *dir = admin_user_open(datadir, true);
	if (dir == NULL)
		return 1;
	struct directory_user *u;
	char *error = NULL;
	int r = directory_user_get(dir, argv[1], &u, &error);
	directory_close(&dir);
	if (r <= 0) {
		if (r == 0)
			admin_user_error("no such user '%s'", argv[1]);
		else
			admin_user_error("%s", error);
		free(error);
		return 1;
	}
	char quota[32], created[32];
	admin_user_format_quota(u->quota_bytes, quota, sizeof(quota));
	time_t t = (time_t)u->created;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("name: %s\n", u->name);
	printf("kind: %s\n", directory_kind_name(u->kind));
	printf("pop3: %s\n", u->pop3_enabled ? "on" : "off");
	printf("imap4: %s\n", u->imap4_enabled ? "on" : "off");
	printf("smtp: %s\n", u->smtp_enabled ? "on" : "off");
	printf("backend: %s\n", u->backend);
	printf("quota: %s\n", quota);
	printf("send-as: %s\n", u->send_as);
	printf("save-sent: %s\n", directory_save_sent_name(u->save_sent));
	printf("password: %s\n", u->password_hash != NULL ? "set" : "none");
	printf("password-scheme: %s\n",
	       u->password_hash != NULL ? password_scheme(u->password_hash) : "none");
	struct password_scram keys;
	char *kerror = NULL;
	if (u->scram_sha256 == NULL)
		printf("scram-sha-256: none%s\n",
		       u->password_hash != NULL ? " (made at the next PLAIN or LOGIN login)" : "");
	else if (password_scram_parse(u->scram_sha256, &keys, &kerror) == 0)
		printf("scram-sha-256: set (%u iterations)\n", keys.iterations);
	else
		printf("scram-sha-256: unusable (%s)\n", kerror);
	free(kerror);
	printf("created: %s\n", created);
	directory_user_free(&u);
	return 0;
}

static int admin_user_passwd(const char *datadir, int argc, char **argv)
{
	if (argc != 2) {
		admin_user_usage(stderr);
		return 2;
	}
	if (!admin_user_name_ok(argv[1]))
		return 1;
	struct directory *dir = admin_user_open(datadir, false);
	if (dir == NULL)
		return 1;
	char *error = NULL, *hash = NULL, *scram = NULL;
	struct directory_user *u = NULL;
	int r = directory_user_get(dir, argv[1], &u, &error);
	directory_user_free(&u);
	if (r == 1 && admin_user_read_password(argv[1], &hash, &scram, &error) < 0)
		r = -1;
	if (r == 1)
		r = directory_user_set_credentials(dir, argv[1], hash, scram, &error);
	directory_close(&dir);
	free(hash);
	free(scram);
	if (r <= 0) {
		if (r == 0)
			admin_user_error("no such user '%s'", argv[1]);
		else
			admin_user_error("user passwd: %s", error);
		free(error);
		return 1;
	}
	printf("password of %s changed\n", argv[1]);
	return admin_user_notify(datadir);
}

static int admin_user_set(const char *datadir, int argc, char **argv)
{
	if (argc < 3) {
		admin_user_usage(stderr);
		return 2;
	}
	const char *name = argv[1];
	if (!admin_user_name_ok(name))
		return 1;
	static const struct {
		const char *key;
		enum directory_user_field field;
	} fields[] = {
	    {"pop3", DIRECTORY_FIELD_POP3},	  {"imap4", DIRECTORY_FIELD_IMAP4},
	    {"smtp", DIRECTORY_FIELD_SMTP},	  {"kind", DIRECTORY_FIELD_KIND},
	    {"backend", DIRECTORY_FIELD_BACKEND}, {"quota", DIRECTORY_FIELD_QUOTA},
	    {"send-as", DIRECTORY_FIELD_SEND_AS}, {"save-sent", DIRECTORY_FIELD_SAVE_SENT},
	};
	struct directory_user v;
	memset(&v, 0, sizeof(v));
	unsigned mask = 0;
	char *error = NULL;
	int result = 1;
	bool kick = false;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--kick") == 0) {
			kick = true;
			continue;
		}
		/* FIELD=VALUE, --FIELD=VALUE or --FIELD VALUE */
		const char *arg = argv[i];
		bool dashed = strncmp(arg, "--", 2) == 0;
		if (dashed)
			arg += 2;
		const char *eq = strchr(arg, '=');
		size_t klen = eq == NULL ? strlen(arg) : (size_t)(eq - arg);
		const char *value = eq == NULL ? NULL : eq + 1;
		size_t f = 0;
		while (f < sizeof(fields) / sizeof(fields[0]) &&
		       (strlen(fields[f].key) != klen || strncmp(fields[f].key, arg, klen) != 0))
			f++;
		if (f < sizeof(fields) / sizeof(fields[0]) && value == NULL && dashed &&
		    i + 1 < argc)
			value = argv[++i];
		if (f == sizeof(fields) / sizeof(fields[0]) || value == NULL) {
			admin_user_error(
			    "user set: '%s': expected FIELD=VALUE with FIELD one of pop3, "
			    "imap4, smtp, kind, backend, quota, send-as, save-sent",
			    argv[i]);
			goto out;
		}
		if ((mask & fields[f].field) != 0) {
			admin_user_error("user set: %s given twice", fields[f].key);
			goto out;
		}
		mask |= fields[f].field;
		int r = 0;
		switch (fields[f].field) {
		case DIRECTORY_FIELD_POP3:
			r = admin_user_parse_switch("pop3", value, &v.pop3_enabled, &error);
			break;
		case DIRECTORY_FIELD_IMAP4:
			r = admin_user_parse_switch("imap4", value, &v.imap4_enabled, &error);
			break;
		case DIRECTORY_FIELD_SMTP:
			r = admin_user_parse_switch("smtp", value, &v.smtp_enabled, &error);
			break;
		case DIRECTORY_FIELD_KIND:
			r = directory_kind_parse(value, &v.kind, &error);
			break;
		case DIRECTORY_FIELD_BACKEND:
			v.backend = xstrdup(value);
			break;
		case DIRECTORY_FIELD_QUOTA:
			r = admin_user_parse_quota(value, &v.quota_bytes, &error);
			break;
		case DIRECTORY_FIELD_SEND_AS: {
			char *norm = NULL;
			r = directory_send_as_normalise(value, &norm, &error);
			v.send_as = norm;
			break;
		}
		case DIRECTORY_FIELD_SAVE_SENT:
			r = directory_save_sent_parse(value, &v.save_sent, &error);
			break;
		}
		if (r < 0) {
			admin_user_error("user set: %s", error);
			free(error);
			goto out;
		}
	}
	struct directory *dir = admin_user_open(datadir, false);
	if (dir == NULL)
		goto out;
	int r = directory_user_set_fields(dir, name, mask, &v, &error);
	directory_close(&dir);
	if (r <= 0) {
		if (r == 0)
			admin_user_error("no such user '%s'", name);
		else
			admin_user_error("user set: %s", error);
		free(error);
		goto out;
	}
	printf("user %s changed\n", name);
	result = admin_user_notify(datadir);
	if (kick && admin_kick_user(datadir, name) < 0)
		result = 1;
out:
	free(v.backend);
	free(v.send_as);
	return result;
}

int admin_user_main(const char *datadir, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(const char *datadir, int argc, char **argv);
	} commands[] = {
	    {"add", admin_user_add},   {"del", admin_user_del},	      {"list", admin_user_list},
	    {"show", admin_user_show}, {"passwd", admin_user_passwd}, {"set", admin_user_set},
	};
	if (argc < 2) {
		admin_user_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		admin_user_usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(datadir, argc - 1, argv + 1);
	admin_user_error("user: unknown command '%s'", argv[1]);
	admin_user_usage(stderr);
	return 2;
}
