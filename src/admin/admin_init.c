#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "admin/admin.h"
#include "directory/directory.h"
#include "directory/password.h"
#include "directory/password_scram.h"
#include "directory/settings_db.h"
#include "directory/tls_selfsigned.h"
#include "lib/net_addr.h"
#include "lib/settings.h"
#include "lib/xalloc.h"

/* `posternctl init`: create a new instance's data dir.
 *
 * All work happens in a temporary sibling directory that is renamed into
 * place at the end, so a failed init leaves nothing behind. When the target
 * exists but is empty, init works inside it and empties it again on
 * failure. */

#define DEMO_PASSWORD_LENGTH 16

struct admin_init_options {
	const char *domain;
	const char *hostname;
	const char *bind;
	unsigned port_offset;
	const char *demo_user;
};

/* One explicit setting that init stores as an instance default. */
struct admin_init_setting {
	const char *service;
	const char *key;
	char *value;
};

struct admin_init_plan {
	char *domain;
	char *hostname;
	char *bind_host; /* "127.0.0.1" or "[::1]", or NULL */
	unsigned port_offset;
	struct admin_init_setting *settings;
	size_t nsettings;
	char *backend_imap4, *backend_pop3;
};

static void admin_init_usage(FILE *out)
{
	fprintf(out,
		"usage: posternctl [-d DIR] init --domain DOMAIN [--hostname HOST] [--bind ADDR]\n"
		"                  [--port-offset N] [--demo-user NAME]\n"
		"  --domain DOMAIN   the mail domain of the instance (required)\n"
		"  --hostname HOST   the host name clients use (default: this machine's name)\n"
		"  --bind ADDR       listen on ADDR only (e.g. 127.0.0.1 or ::1) instead of all\n"
		"                    addresses\n"
		"  --port-offset N   add N to every default port (143 -> 10143 with 10000)\n"
		"  --demo-user NAME  add a user NAME with a random password and print it\n");
}

static void admin_init_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

static void admin_init_plan_free(struct admin_init_plan *plan)
{
	free(plan->domain);
	free(plan->hostname);
	free(plan->bind_host);
	for (size_t i = 0; i < plan->nsettings; i++)
		free(plan->settings[i].value);
	free(plan->settings);
	free(plan->backend_imap4);
	free(plan->backend_pop3);
}

static void admin_init_plan_add(struct admin_init_plan *plan, const char *service, const char *key,
				char *value)
{
	plan->settings = xrealloc(plan->settings, (plan->nsettings + 1) * sizeof(*plan->settings));
	plan->settings[plan->nsettings++] = (struct admin_init_setting){service, key, value};
}

/* "ADDR:PORT" with the plan's bind host. */
static char *admin_init_bind_addr(const struct admin_init_plan *plan, unsigned port)
{
	return xasprintf("%s:%u", plan->bind_host, port);
}

/* A port moved by the offset; -1 with *error_r when it leaves 1..65535. */
static int admin_init_port(const struct admin_init_plan *plan, unsigned port, unsigned *port_r,
			   char **error_r)
{
	unsigned p = port + plan->port_offset;
	if (p > 65535) {
		*error_r = xasprintf("--port-offset %u moves port %u to %u, beyond 65535",
				     plan->port_offset, port, p);
		return -1;
	}
	*port_r = p;
	return 0;
}

/* Rewrite one default binding list for --bind / --port-offset. With --bind,
 * the v4 and v6 pair of a port becomes one binding on ADDR. */
static int admin_init_rewrite_bindings(const struct admin_init_plan *plan, const char *list,
				       char **out_r, char **error_r)
{
	struct net_addr *addrs;
	size_t count;
	if (net_addr_parse_list(list, &addrs, &count, error_r) < 0)
		return -1;
	char *out = xstrdup("");
	for (size_t i = 0; i < count; i++) {
		struct sockaddr *sa = (struct sockaddr *)&addrs[i].ss;
		if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
			continue;
		in_port_t *portp = sa->sa_family == AF_INET
				       ? &((struct sockaddr_in *)sa)->sin_port
				       : &((struct sockaddr_in6 *)sa)->sin6_port;
		unsigned port;
		if (admin_init_port(plan, ntohs(*portp), &port, error_r) < 0) {
			free(out);
			free(addrs);
			return -1;
		}
		char *item;
		if (plan->bind_host != NULL) {
			item = admin_init_bind_addr(plan, port);
		} else {
			char buf[128];
			*portp = htons((uint16_t)port);
			item = xstrdup(net_addr_format(&addrs[i], buf, sizeof(buf)));
		}
		/* the v4/v6 pair collapses to one entry under --bind */
		char needle[160];
		snprintf(needle, sizeof(needle), "%s", item);
		bool dup = false;
		unsigned n;
		char **have = settings_list_split(out, &n);
		for (unsigned j = 0; j < n; j++)
			dup = dup || strcmp(have[j], needle) == 0;
		settings_list_free(&have);
		if (!dup) {
			char *s = xasprintf("%s%s%s", out, *out == '\0' ? "" : ", ", item);
			free(out);
			out = s;
		}
		free(item);
	}
	free(addrs);
	*out_r = out;
	return 0;
}

/* Work out every value init will store, before touching the disk, so that a
 * bad option fails without side effects. */
static int admin_init_make_plan(const struct admin_init_options *opt, struct admin_init_plan *plan,
				char **error_r)
{
	memset(plan, 0, sizeof(*plan));
	plan->port_offset = opt->port_offset;
	plan->domain = xstrdup(opt->domain);
	admin_init_lower(plan->domain);
	if (!settings_dns_name_valid(plan->domain)) {
		*error_r = xasprintf("--domain '%s' is not a valid DNS name", opt->domain);
		return -1;
	}
	if (opt->hostname != NULL) {
		plan->hostname = xstrdup(opt->hostname);
	} else {
		char host[HOST_NAME_MAX + 1] = "";
		if (gethostname(host, sizeof(host)) < 0)
			host[0] = '\0';
		host[HOST_NAME_MAX] = '\0';
		plan->hostname = xstrdup(host);
	}
	admin_init_lower(plan->hostname);
	if (!settings_dns_name_valid(plan->hostname)) {
		*error_r = xasprintf("host name '%s' is not a valid DNS name%s", plan->hostname,
				     opt->hostname == NULL ? " (give one with --hostname)" : "");
		return -1;
	}
	if (opt->bind != NULL) {
		char host[INET6_ADDRSTRLEN + 2];
		size_t len = strlen(opt->bind);
		const char *b = opt->bind;
		if (len >= 2 && b[0] == '[' && b[len - 1] == ']') {
			b++;
			len -= 2;
		}
		unsigned char buf[16];
		if (len >= sizeof(host)) {
			*error_r = xasprintf("--bind '%s' is not an IP address", opt->bind);
			return -1;
		}
		memcpy(host, b, len);
		host[len] = '\0';
		char text[INET6_ADDRSTRLEN];
		if (inet_pton(AF_INET, host, buf) == 1) {
			inet_ntop(AF_INET, buf, text, sizeof(text));
			plan->bind_host = xstrdup(text);
		} else if (inet_pton(AF_INET6, host, buf) == 1) {
			inet_ntop(AF_INET6, buf, text, sizeof(text));
			plan->bind_host = xasprintf("[%s]", text);
		} else {
			*error_r = xasprintf(
			    "--bind '%s' is not an IP address (e.g. 127.0.0.1 or ::1)", opt->bind);
			return -1;
		}
	}

	static const char *const binding_keys[] = {"ssl-bindings", "unencrypted-or-tls-bindings"};
	if (plan->bind_host != NULL || plan->port_offset != 0) {
		for (const char *const *s = settings_services; *s != NULL; s++) {
			for (size_t k = 0; k < 2; k++) {
				const char *def = settings_default(*s, binding_keys[k]);
				if (def == NULL || *def == '\0')
					continue;
				char *value;
				if (admin_init_rewrite_bindings(plan, def, &value, error_r) < 0)
					return -1;
				admin_init_plan_add(plan, *s, binding_keys[k], value);
			}
		}
	}

	/* what users inside are told to connect to */
	static const struct {
		const char *service;
		unsigned ssl_port, tls_port;
	} internal[] = {{"imap4", 993, 143}, {"pop3", 995, 110}, {"submission", 465, 587}};
	for (size_t i = 0; i < sizeof(internal) / sizeof(internal[0]); i++) {
		unsigned ssl, tls;
		if (admin_init_port(plan, internal[i].ssl_port, &ssl, error_r) < 0 ||
		    admin_init_port(plan, internal[i].tls_port, &tls, error_r) < 0)
			return -1;
		admin_init_plan_add(
		    plan, internal[i].service, "internal-connection-settings",
		    xasprintf("%s:%u:SSL, %s:%u:TLS", plan->hostname, ssl, plan->hostname, tls));
	}

	/* the local back end, as the front ends on this machine reach it */
	unsigned imap4, pop3;
	if (admin_init_port(plan, 1143, &imap4, error_r) < 0 ||
	    admin_init_port(plan, 1110, &pop3, error_r) < 0)
		return -1;
	const char *host = plan->bind_host != NULL ? plan->bind_host : "127.0.0.1";
	plan->backend_imap4 = xasprintf("%s:%u", host, imap4);
	plan->backend_pop3 = xasprintf("%s:%u", host, pop3);

	/* check every value against the schema now rather than half-way */
	for (size_t i = 0; i < plan->nsettings; i++) {
		char *norm;
		if (settings_validate(plan->settings[i].service, plan->settings[i].key,
				      plan->settings[i].value, &norm, error_r) < 0)
			return -1;
		free(norm);
	}
	return 0;
}

/* A random password of DEMO_PASSWORD_LENGTH characters that are easy to
 * read aloud (no 0/O, 1/l/I). */
static int admin_init_random_password(char *out, size_t size)
{
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	const unsigned n = sizeof(alphabet) - 1;
	size_t len = 0;
	while (len + 1 < size && len < DEMO_PASSWORD_LENGTH) {
		unsigned char b;
		if (RAND_bytes(&b, 1) != 1)
			return -1;
		/* rejection sampling keeps every character equally likely */
		if (b >= 256 - 256 % n)
			continue;
		out[len++] = alphabet[b % n];
	}
	out[len] = '\0';
	return 0;
}

static int admin_init_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Remove everything inside dir; dir itself too when remove_self. */
static void admin_init_cleanup(const char *dir, bool remove_self)
{
	if (remove_self) {
		nftw(dir, admin_init_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		return;
	}
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		nftw(p, admin_init_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		free(p);
	}
	closedir(d);
}

/* 1 when dir holds no entries, 0 when it holds some, -1 on error. */
static int admin_init_dir_empty(const char *dir, char **error_r)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		*error_r = xasprintf("%s: %s", dir, strerror(errno));
		return -1;
	}
	struct dirent *e;
	int empty = 1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			empty = 0;
	closedir(d);
	return empty;
}

/* Split path into parent and last component (both malloc'ed); trailing
 * slashes are ignored. */
static void admin_init_split_path(const char *path, char **parent_r, char **base_r)
{
	char *copy = xstrdup(path);
	size_t len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	char *slash = strrchr(copy, '/');
	if (slash == NULL) {
		*parent_r = xstrdup(".");
		*base_r = xstrdup(copy);
	} else if (slash == copy) {
		*parent_r = xstrdup("/");
		*base_r = xstrdup(slash + 1);
	} else {
		*slash = '\0';
		*parent_r = xstrdup(copy);
		*base_r = xstrdup(slash + 1);
	}
	free(copy);
}

static int admin_init_mkdir(const char *work, const char *name, mode_t mode, char **error_r)
{
	char *p = xasprintf("%s/%s", work, name);
	int ret = 0;
	if (mkdir(p, mode) < 0 || chmod(p, mode) < 0) {
		*error_r = xasprintf("%s: %s", p, strerror(errno));
		ret = -1;
	}
	free(p);
	return ret;
}

/* Fill the work directory. final_dir is the absolute path the instance will
 * have (for the LMTP socket address). */
static int admin_init_populate(const struct admin_init_plan *plan,
			       const struct admin_init_options *opt, const char *work,
			       bool in_place, const char *final_dir, char *demo_password,
			       size_t demo_size, char **error_r)
{
	/* a directory init made itself (mkdtemp gives 0700) is opened up for
	 * reading: the secrets are protected by their own file modes */
	if (!in_place && chmod(work, 0755) < 0) {
		*error_r = xasprintf("%s: %s", work, strerror(errno));
		return -1;
	}
	if (admin_init_mkdir(work, "tls", 0755, error_r) < 0 ||
	    admin_init_mkdir(work, "mail", 0700, error_r) < 0 ||
	    admin_init_mkdir(work, "logs", 0750, error_r) < 0)
		return -1;

	char *cert = xasprintf("%s/tls/server.crt", work);
	char *key = xasprintf("%s/tls/server.key", work);
	int ret = tls_selfsigned_create(cert, key, plan->hostname, error_r);
	free(cert);
	free(key);
	if (ret < 0)
		return -1;

	/* settings first: the LMTP socket path comes from them */
	struct settings_db *sdb;
	if (settings_db_create(work, &sdb, error_r) < 0)
		return -1;
	for (size_t i = 0; i < plan->nsettings && ret == 0; i++) {
		const char *k[] = {plan->settings[i].key};
		const char *v[] = {plan->settings[i].value};
		ret = settings_db_set_instance_defaults(sdb, plan->settings[i].service, 1, k, v,
							error_r);
	}
	char *socket_name = NULL;
	if (ret == 0)
		ret = settings_db_get(sdb, "lmtp", "unix-socket", &socket_name, error_r);
	settings_db_close(&sdb);
	if (ret < 0) {
		free(socket_name);
		return -1;
	}
	char *lmtp = socket_name[0] == '/' ? xasprintf("unix:%s", socket_name)
					   : xasprintf("unix:%s/%s", final_dir, socket_name);
	free(socket_name);
	if (strlen(lmtp) - 5 >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		*error_r = xasprintf("the LMTP socket path '%s' is longer than 107 bytes; choose a "
				     "data dir with a shorter path",
				     lmtp + 5);
		free(lmtp);
		return -1;
	}

	struct directory *dir;
	if (directory_create(work, plan->domain, plan->hostname, &dir, error_r) < 0) {
		free(lmtp);
		return -1;
	}
	struct directory_backend local = {
	    .name = DIRECTORY_BACKEND_LOCAL,
	    .imap4_address = plan->backend_imap4,
	    .pop3_address = plan->backend_pop3,
	    .lmtp_address = lmtp,
	};
	ret = directory_backend_add(dir, &local, error_r) == 1 ? 0 : -1;
	free(lmtp);
	if (ret == 0 && opt->demo_user != NULL) {
		struct directory_user u;
		char *hash = NULL;
		directory_user_init(&u, opt->demo_user, DIRECTORY_KIND_USER);
		if (admin_init_random_password(demo_password, demo_size) < 0) {
			*error_r = xstrdup("the OpenSSL random generator failed");
			ret = -1;
		} else if (password_hash(demo_password, &hash, error_r) < 0 ||
			   password_scram_make(demo_password, &u.scram_sha256, error_r) < 0) {
			free(hash);
			ret = -1;
		} else {
			u.password_hash = hash;
			ret = directory_user_add(dir, &u, error_r) == 1 ? 0 : -1;
		}
		directory_user_clear(&u);
	}
	directory_close(&dir);
	return ret;
}

static void admin_init_print_summary(const struct admin_init_plan *plan, const char *final_dir,
				     const char *display_dir)
{
	printf("postern instance created in %s\n", final_dir);
	printf("  domain:      %s\n", plan->domain);
	printf("  host name:   %s\n", plan->hostname);
	printf("  certificate: %s/tls/server.crt (self-signed for %s, valid %d days)\n", final_dir,
	       plan->hostname, TLS_SELFSIGNED_DAYS);
	printf("  services (startup type, TLS listeners / plain+STARTTLS listeners):\n");
	for (const char *const *s = settings_services; *s != NULL; s++) {
		const char *values[3] = {settings_default(*s, "startup"),
					 settings_default(*s, "ssl-bindings"),
					 settings_default(*s, "unencrypted-or-tls-bindings")};
		const char *keys[3] = {"startup", "ssl-bindings", "unencrypted-or-tls-bindings"};
		for (size_t k = 1; k < 3; k++)
			for (size_t i = 0; i < plan->nsettings; i++)
				if (strcmp(plan->settings[i].service, *s) == 0 &&
				    strcmp(plan->settings[i].key, keys[k]) == 0)
					values[k] = plan->settings[i].value;
		const char *sock = settings_default(*s, "unix-socket");
		printf("    %-14s %-10s %s / %s%s%s\n", *s, values[0],
		       values[1] == NULL || *values[1] == '\0' ? "-" : values[1],
		       values[2] == NULL || *values[2] == '\0' ? "-" : values[2],
		       sock != NULL ? "  socket " : "", sock != NULL ? sock : "");
	}
	printf("Start the master with 'posternd -d %s'; turn on client access with\n"
	       "'posternctl -d %s service start imap4 pop3' (both start on manual).\n",
	       display_dir, display_dir);
}

static int admin_init_parse(int argc, char **argv, struct admin_init_options *opt, bool *help_r)
{
	*help_r = false;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *value = NULL;
		static const char *const with_value[] = {"--domain", "--hostname", "--bind",
							 "--port-offset", "--demo-user"};
		size_t which = sizeof(with_value) / sizeof(with_value[0]);
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			*help_r = true;
			return 0;
		}
		for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++) {
			size_t n = strlen(with_value[k]);
			if (strncmp(arg, with_value[k], n) == 0 && arg[n] == '=') {
				which = k;
				value = arg + n + 1;
			} else if (strcmp(arg, with_value[k]) == 0) {
				which = k;
				if (i + 1 >= argc) {
					fprintf(stderr, "posternctl: init: %s needs a value\n",
						arg);
					return -1;
				}
				value = argv[++i];
			}
		}
		switch (which) {
		case 0:
			opt->domain = value;
			break;
		case 1:
			opt->hostname = value;
			break;
		case 2:
			opt->bind = value;
			break;
		case 3: {
			char *end;
			errno = 0;
			unsigned long n = strtoul(value, &end, 10);
			if (*value == '\0' || !isdigit((unsigned char)*value) || *end != '\0' ||
			    errno != 0 || n > 65535) {
				fprintf(stderr,
					"posternctl: init: --port-offset must be a number "
					"from 0 to 65535 (got '%s')\n",
					value);
				return -1;
			}
			opt->port_offset = (unsigned)n;
			break;
		}
		case 4:
			opt->demo_user = value;
			break;
		default:
			fprintf(stderr, "posternctl: init: unknown argument '%s'\n", arg);
			return -1;
		}
	}
	if (opt->domain == NULL) {
		fprintf(stderr, "posternctl: init: --domain is required\n");
		return -1;
	}
	return 0;
}

int admin_init_main(const char *datadir, int argc, char **argv)
{
	struct admin_init_options opt = {0};
	bool help;
	if (admin_init_parse(argc, argv, &opt, &help) < 0) {
		admin_init_usage(stderr);
		return 2;
	}
	if (help) {
		admin_init_usage(stdout);
		return 0;
	}
	char *error = NULL;
	if (opt.demo_user != NULL && directory_user_name_check(opt.demo_user, &error) < 0) {
		fprintf(stderr, "posternctl: init: --demo-user: %s\n", error);
		free(error);
		return 1;
	}
	struct admin_init_plan plan;
	if (admin_init_make_plan(&opt, &plan, &error) < 0) {
		fprintf(stderr, "posternctl: init: %s\n", error);
		free(error);
		admin_init_plan_free(&plan);
		return 1;
	}

	int result = 1;
	char *parent = NULL, *base = NULL, *work = NULL, *final_dir = NULL;
	bool in_place = false;
	char demo_password[DEMO_PASSWORD_LENGTH + 1] = "";
	struct stat st;
	admin_init_split_path(datadir, &parent, &base);
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || *base == '\0')
		in_place = true; /* "." or "/" can only be used in place */

	if (stat(datadir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			fprintf(stderr, "posternctl: init: %s exists and is not a directory\n",
				datadir);
			goto out;
		}
		char *d = xasprintf("%s/%s", datadir, DIRECTORY_DB_FILE);
		char *s = xasprintf("%s/%s", datadir, SETTINGS_DB_FILE);
		bool taken = access(d, F_OK) == 0 || access(s, F_OK) == 0;
		free(d);
		free(s);
		if (taken) {
			fprintf(stderr,
				"posternctl: init: %s already holds a postern instance; "
				"refusing to overwrite\n",
				datadir);
			goto out;
		}
		int empty = admin_init_dir_empty(datadir, &error);
		if (empty <= 0) {
			if (empty < 0)
				fprintf(stderr, "posternctl: init: %s\n", error);
			else
				fprintf(stderr,
					"posternctl: init: %s is not empty; init needs a new "
					"or empty directory\n",
					datadir);
			free(error);
			goto out;
		}
		in_place = true;
		final_dir = realpath(datadir, NULL);
		work = xstrdup(datadir);
	} else if (errno != ENOENT) {
		fprintf(stderr, "posternctl: init: %s: %s\n", datadir, strerror(errno));
		goto out;
	} else {
		char *real_parent = realpath(parent, NULL);
		if (real_parent == NULL) {
			fprintf(stderr, "posternctl: init: cannot create %s: %s: %s\n", datadir,
				parent, strerror(errno));
			goto out;
		}
		final_dir = strcmp(real_parent, "/") == 0 ? xasprintf("/%s", base)
							  : xasprintf("%s/%s", real_parent, base);
		free(real_parent);
		work = xasprintf("%s/.%s.init-XXXXXX", parent, base);
		if (mkdtemp(work) == NULL) {
			fprintf(stderr, "posternctl: init: cannot create a directory in %s: %s\n",
				parent, strerror(errno));
			free(work);
			work = NULL;
			goto out;
		}
	}
	if (final_dir == NULL) {
		fprintf(stderr, "posternctl: init: %s: %s\n", datadir, strerror(errno));
		goto out;
	}

	if (admin_init_populate(&plan, &opt, work, in_place, final_dir, demo_password,
				sizeof(demo_password), &error) < 0) {
		fprintf(stderr, "posternctl: init: %s\n", error);
		free(error);
		admin_init_cleanup(work, !in_place);
		goto out;
	}
	if (!in_place && rename(work, datadir) < 0) {
		fprintf(stderr, "posternctl: init: cannot move the new instance to %s: %s\n",
			datadir, strerror(errno));
		admin_init_cleanup(work, true);
		goto out;
	}
	admin_init_print_summary(&plan, final_dir, datadir);
	if (opt.demo_user != NULL)
		printf("demo user: %s  password: %s\n", opt.demo_user, demo_password);
	result = 0;
out:
	memset(demo_password, 0, sizeof(demo_password));
	free(parent);
	free(base);
	free(work);
	free(final_dir);
	admin_init_plan_free(&plan);
	return result;
}
