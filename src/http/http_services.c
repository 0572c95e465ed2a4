#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_private.h"
#include "lib/settings.h"
#include "lib/xalloc.h"

/* The other services as the master describes them (IPC_SERVICE_INFO): their
 * state and effective settings. This is how the http worker knows what to
 * tell users without ever opening settings.db or directory.db. */

static void http_service_clear(struct http_service_info *s)
{
	free(s->name);
	free(s->state);
	for (size_t i = 0; i < s->n; i++) {
		free(s->keys[i]);
		free(s->values[i]);
	}
	free(s->keys);
	free(s->values);
	memset(s, 0, sizeof(*s));
}

void http_services_update(struct httpd *hd, const struct ipc_msg *msg)
{
	const char *name = ipc_msg_get(msg, "service");
	const char *state = ipc_msg_get(msg, "state");
	if (name == NULL || state == NULL || !settings_service_known(name))
		return;
	struct http_service_info *s = NULL;
	for (size_t i = 0; i < hd->nservices; i++)
		if (strcmp(hd->services[i].name, name) == 0)
			s = &hd->services[i];
	if (s == NULL) {
		if (hd->nservices == HTTP_MAX_SERVICES)
			return;
		s = &hd->services[hd->nservices++];
	}
	http_service_clear(s);
	s->name = xstrdup(name);
	s->state = xstrdup(state);
	s->keys = xcalloc(msg->nfields, sizeof(*s->keys));
	s->values = xcalloc(msg->nfields, sizeof(*s->values));
	for (size_t i = 0; i < msg->nfields; i++) {
		const struct ipc_field *f = &msg->fields[i];
		if (strcmp(f->key, "service") == 0 || strcmp(f->key, "state") == 0)
			continue;
		s->keys[s->n] = xstrdup(f->key);
		s->values[s->n++] = xstrdup(f->value);
	}
}

const struct http_service_info *http_service(const struct httpd *hd, const char *name)
{
	for (size_t i = 0; i < hd->nservices; i++)
		if (strcmp(hd->services[i].name, name) == 0)
			return &hd->services[i];
	return NULL;
}

const char *http_service_setting(const struct httpd *hd, const char *service, const char *key)
{
	const struct http_service_info *s = http_service(hd, service);
	for (size_t i = 0; s != NULL && i < s->n; i++)
		if (strcmp(s->keys[i], key) == 0)
			return s->values[i];
	return NULL;
}

bool http_service_offered(const struct httpd *hd, const char *service)
{
	const struct http_service_info *s = http_service(hd, service);
	const char *startup = http_service_setting(hd, service, "startup");
	return s != NULL && strcmp(s->state, "running") == 0 &&
	       (startup == NULL || strcmp(startup, "disabled") != 0);
}

const char *http_encryption_text(enum http_encryption enc)
{
	switch (enc) {
	case HTTP_ENC_SSL:
		return "SSL/TLS";
	case HTTP_ENC_TLS:
		return "STARTTLS";
	case HTTP_ENC_NONE:
		break;
	}
	return "none";
}

/* one normalised "host:port:SSL|TLS|none" entry */
static bool http_endpoint_parse(const char *item, struct http_endpoint *e)
{
	const char *c1 = strchr(item, ':');
	const char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
	if (c1 == NULL || c2 == NULL || (size_t)(c1 - item) >= sizeof(e->host))
		return false;
	memcpy(e->host, item, (size_t)(c1 - item));
	e->host[c1 - item] = '\0';
	e->port = (unsigned)strtoul(c1 + 1, NULL, 10);
	e->enc = strcasecmp(c2 + 1, "SSL") == 0	  ? HTTP_ENC_SSL
		 : strcasecmp(c2 + 1, "TLS") == 0 ? HTTP_ENC_TLS
						  : HTTP_ENC_NONE;
	return e->port > 0 && e->port < 65536;
}

size_t http_service_endpoints(const struct httpd *hd, const char *service,
			      struct http_endpoint *out, size_t max, const char **key_r)
{
	static const char *const keys[] = {"external-connection-settings",
					   "internal-connection-settings"};
	for (size_t k = 0; k < 2; k++) {
		const char *value = http_service_setting(hd, service, keys[k]);
		if (value == NULL || *value == '\0')
			continue;
		unsigned count;
		char **items = settings_list_split(value, &count);
		size_t n = 0;
		/* SSL first, then TLS, then none, each in the order listed */
		for (int enc = HTTP_ENC_SSL; enc <= HTTP_ENC_NONE; enc++) {
			for (unsigned i = 0; i < count && n < max; i++) {
				struct http_endpoint e;
				if (http_endpoint_parse(items[i], &e) && (int)e.enc == enc)
					out[n++] = e;
			}
		}
		settings_list_free(&items);
		if (n > 0) {
			if (key_r != NULL)
				*key_r = keys[k];
			return n;
		}
	}
	if (key_r != NULL)
		*key_r = keys[0];
	return 0;
}

char *http_login_name(const char *address, const char *instance_domain)
{
	const char *at = strrchr(address, '@');
	if (at != NULL && instance_domain != NULL && *instance_domain != '\0' &&
	    strcasecmp(at + 1, instance_domain) == 0)
		return xstrndup(address, (size_t)(at - address));
	return xstrdup(address);
}
