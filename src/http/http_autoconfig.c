#include <ctype.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "http/http_private.h"
#include "lib/settings.h"
#include "lib/xalloc.h"

/* Client autoconfiguration, every document generated from the same
 * settings as the settings page (the client services' connection
 * settings), listing only the protocols whose services are started and not
 * disabled:
 *   Thunderbird autoconfig (clientConfig version 1.1)
 *   Outlook Autodiscover, the POX form for IMAP/POP/SMTP accounts
 *   an Apple configuration profile with a com.apple.mail.managed payload
 * The login name follows the submission service's mapping of users to
 * addresses: the local part for the instance's domain, else the address. */

#define HTTP_MAX_ADDRESS 320

struct http_protocol {
	const char *service;
	const char *mozilla; /* incomingServer/outgoingServer type */
	const char *pox;     /* Autodiscover Protocol Type */
	bool outgoing;
};

static const struct http_protocol http_protocols[] = {
    {"imap4", "imap", "IMAP", false},
    {"pop3", "pop3", "POP3", false},
    {"submission", "smtp", "SMTP", true},
};

/* A plausible address: local@domain, printable, bounded. Its text is
 * escaped wherever it is shown. */
static bool http_address_ok(const char *a)
{
	const char *at = strrchr(a, '@');
	if (at == NULL || at == a || at[1] == '\0' || strlen(a) > HTTP_MAX_ADDRESS)
		return false;
	for (const unsigned char *p = (const unsigned char *)a; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return false;
	return true;
}

/* The instance's domain or one of the submission service's local domains. */
static bool http_domain_served(const struct http_conn *c, const char *domain)
{
	if (c->user.domain != NULL && strcasecmp(domain, c->user.domain) == 0)
		return true;
	const char *local = http_service_setting(c->hd, "submission", "local-domains");
	unsigned n;
	char **list = settings_list_split(local != NULL ? local : "", &n);
	bool found = false;
	for (unsigned i = 0; i < n && !found; i++)
		found = strcasecmp(list[i], domain) == 0;
	settings_list_free(&list);
	return found;
}

/* The address a document is for: the emailaddress parameter, else the
 * signed-in user's. NULL when neither (the answer is sent then). */
static char *http_autoconfig_address(struct http_conn *c, bool required)
{
	char *address = http_query_param(c, "emailaddress");
	if (address == NULL && c->user.signed_in)
		address = http_user_address(c);
	if (address == NULL) {
		if (required)
			http_send_error(c, 400, "Give the mail address as ?emailaddress=.");
		return NULL;
	}
	if (!http_address_ok(address)) {
		free(address);
		http_send_error(c, 400, "That is not a mail address.");
		return NULL;
	}
	if (!http_domain_served(c, strrchr(address, '@') + 1)) {
		free(address);
		http_send_error(c, 404, "This server does not serve that mail domain.");
		return NULL;
	}
	return address;
}

static const char *http_mozilla_socket(enum http_encryption enc)
{
	return enc == HTTP_ENC_SSL ? "SSL" : enc == HTTP_ENC_TLS ? "STARTTLS" : "plain";
}

void http_autoconfig_mozilla(struct http_conn *c)
{
	char *address = http_query_param(c, "emailaddress");
	const char *domain = c->user.domain != NULL ? c->user.domain : "";
	if (address != NULL) {
		free(address);
		address = http_autoconfig_address(c, true);
		if (address == NULL)
			return;
		domain = strrchr(address, '@') + 1;
	} else if (*domain == '\0') {
		http_send_error(c, 404, "This server has no mail domain configured.");
		return;
	}
	/* the format needs an incoming server: without one there is nothing
	 * to offer */
	bool incoming = false;
	struct http_endpoint probe[1];
	for (size_t i = 0; i < sizeof(http_protocols) / sizeof(http_protocols[0]); i++)
		incoming = incoming || (!http_protocols[i].outgoing &&
					http_service_offered(c->hd, http_protocols[i].service) &&
					http_service_endpoints(c->hd, http_protocols[i].service,
							       probe, 1, NULL) > 0);
	if (!incoming) {
		free(address);
		http_send_error(c, 404, "Neither IMAP4 nor POP3 is offered by this server.");
		return;
	}
	/* Thunderbird fills the placeholders in (config-v1.1 format) */
	bool local = c->user.domain != NULL && strcasecmp(domain, c->user.domain) == 0;
	const char *username = local ? "%EMAILLOCALPART%" : "%EMAILADDRESS%";
	struct evbuffer *o = c->out;
	c->content_type = "application/xml; charset=utf-8";
	evbuffer_add_printf(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			       "<clientConfig version=\"1.1\">\n  <emailProvider id=\"");
	http_xml_escape(o, domain);
	evbuffer_add_printf(o, "\">\n    <domain>");
	http_xml_escape(o, domain);
	evbuffer_add_printf(o, "</domain>\n    <displayName>");
	http_xml_escape(o, domain);
	evbuffer_add_printf(o, " mail</displayName>\n    <displayShortName>");
	http_xml_escape(o, domain);
	evbuffer_add_printf(o, "</displayShortName>\n");
	/* incoming servers first: the format wants them before outgoing */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < sizeof(http_protocols) / sizeof(http_protocols[0]); i++) {
			const struct http_protocol *p = &http_protocols[i];
			if (p->outgoing != (pass == 1) || !http_service_offered(c->hd, p->service))
				continue;
			struct http_endpoint e[HTTP_MAX_ENDPOINTS];
			size_t n =
			    http_service_endpoints(c->hd, p->service, e, HTTP_MAX_ENDPOINTS, NULL);
			const char *element = p->outgoing ? "outgoingServer" : "incomingServer";
			for (size_t j = 0; j < n; j++) {
				evbuffer_add_printf(o, "    <%s type=\"%s\">\n      <hostname>",
						    element, p->mozilla);
				http_xml_escape(o, e[j].host);
				evbuffer_add_printf(
				    o,
				    "</hostname>\n      <port>%u</port>\n"
				    "      <socketType>%s</socketType>\n"
				    "      <username>%s</username>\n"
				    "      <authentication>password-cleartext</authentication>\n",
				    e[j].port, http_mozilla_socket(e[j].enc), username);
				if (strcmp(p->mozilla, "pop3") == 0)
					evbuffer_add_printf(
					    o, "      <pop3>\n        <leaveMessagesOnServer>"
					       "true</leaveMessagesOnServer>\n      </pop3>\n");
				evbuffer_add_printf(o, "    </%s>\n", element);
			}
		}
	}
	evbuffer_add_printf(o, "  </emailProvider>\n</clientConfig>\n");
	free(address);
	http_send(c);
}

/* ---- Outlook Autodiscover (POX) ---- */

#define POX_RESPONSE_NS "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
#define POX_OUTLOOK_NS                                                                             \
	"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

/* The text of the first element named name (any namespace prefix) in xml,
 * with the five predefined entities and character references resolved;
 * malloc'ed, or NULL when absent or malformed. Enough for the one value
 * an Autodiscover request carries; no DTD, no CDATA. */
static char *http_xml_element_text(const char *xml, const char *name)
{
	size_t nlen = strlen(name);
	for (const char *p = strchr(xml, '<'); p != NULL; p = strchr(p + 1, '<')) {
		const char *tag = p + 1;
		size_t tlen = strcspn(tag, " \t\r\n/>");
		const char *local = memchr(tag, ':', tlen);
		local = local != NULL ? local + 1 : tag;
		if ((size_t)(tag + tlen - local) != nlen || strncmp(local, name, nlen) != 0)
			continue;
		const char *start = strchr(tag, '>');
		if (start == NULL || start[-1] == '/')
			return NULL;
		start++;
		const char *end = strchr(start, '<');
		if (end == NULL)
			return NULL;
		char *out = xmalloc((size_t)(end - start) + 1);
		size_t o = 0;
		for (const char *s = start; s < end; s++) {
			if (*s != '&') {
				out[o++] = *s;
				continue;
			}
			const char *semi = memchr(s, ';', (size_t)(end - s));
			if (semi == NULL || semi - s > 10)
				goto bad;
			size_t elen = (size_t)(semi - s - 1);
			const char *ent = s + 1;
			unsigned long code = 0;
			if (elen == 3 && strncmp(ent, "amp", 3) == 0)
				code = '&';
			else if (elen == 2 && strncmp(ent, "lt", 2) == 0)
				code = '<';
			else if (elen == 2 && strncmp(ent, "gt", 2) == 0)
				code = '>';
			else if (elen == 4 && strncmp(ent, "quot", 4) == 0)
				code = '"';
			else if (elen == 4 && strncmp(ent, "apos", 4) == 0)
				code = '\'';
			else if (elen >= 2 && ent[0] == '#')
				code = ent[1] == 'x' ? strtoul(ent + 2, NULL, 16)
						     : strtoul(ent + 1, NULL, 10);
			/* an address is ASCII: other characters make it unusable */
			if (code < 0x20 || code >= 0x7f)
				goto bad;
			out[o++] = (char)code;
			s = semi;
		}
		out[o] = '\0';
		/* blanks around the value are layout */
		char *b = out;
		while (isspace((unsigned char)*b))
			b++;
		size_t blen = strlen(b);
		while (blen > 0 && isspace((unsigned char)b[blen - 1]))
			b[--blen] = '\0';
		memmove(out, b, blen + 1);
		return out;
	bad:
		free(out);
		return NULL;
	}
	return NULL;
}

static void http_pox_error(struct http_conn *c, const char *code, const char *message)
{
	struct evbuffer *o = c->out;
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	c->content_type = "text/xml; charset=utf-8";
	evbuffer_add_printf(o,
			    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			    "<Autodiscover xmlns=\"" POX_RESPONSE_NS "\">\n"
			    "  <Response>\n    <Error Time=\"%s\" Id=\"0\">\n"
			    "      <ErrorCode>%s</ErrorCode>\n      <Message>%s</Message>\n"
			    "      <DebugData />\n    </Error>\n  </Response>\n</Autodiscover>\n",
			    when, code, message);
	http_send(c);
}

void http_autoconfig_autodiscover(struct http_conn *c)
{
	size_t len;
	const char *body = http_body(c, &len);
	char *address = http_xml_element_text(body, "EMailAddress");
	char *schema = http_xml_element_text(body, "AcceptableResponseSchema");
	bool schema_ok = schema == NULL || strcmp(schema, POX_OUTLOOK_NS) == 0;
	free(schema);
	if (address == NULL || !schema_ok) {
		free(address);
		http_pox_error(c, "600", "Invalid Request");
		return;
	}
	if (!http_address_ok(address) || !http_domain_served(c, strrchr(address, '@') + 1)) {
		free(address);
		http_pox_error(c, "500", "The e-mail address cannot be found.");
		return;
	}
	char *login = http_login_name(address, c->user.domain);
	struct evbuffer *o = c->out;
	c->content_type = "text/xml; charset=utf-8";
	evbuffer_add_printf(o, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			       "<Autodiscover xmlns=\"" POX_RESPONSE_NS "\">\n"
			       "  <Response xmlns=\"" POX_OUTLOOK_NS "\">\n    <User>\n"
			       "      <DisplayName>");
	http_xml_escape(o, address);
	evbuffer_add_printf(o, "</DisplayName>\n      <AutoDiscoverSMTPAddress>");
	http_xml_escape(o, address);
	evbuffer_add_printf(
	    o, "</AutoDiscoverSMTPAddress>\n    </User>\n    <Account>\n"
	       "      <AccountType>email</AccountType>\n      <Action>settings</Action>\n");
	for (size_t i = 0; i < sizeof(http_protocols) / sizeof(http_protocols[0]); i++) {
		const struct http_protocol *p = &http_protocols[i];
		if (!http_service_offered(c->hd, p->service))
			continue;
		struct http_endpoint e[HTTP_MAX_ENDPOINTS];
		if (http_service_endpoints(c->hd, p->service, e, HTTP_MAX_ENDPOINTS, NULL) == 0)
			continue;
		/* one entry per protocol: SSL first, as on the settings page */
		evbuffer_add_printf(
		    o, "      <Protocol>\n        <Type>%s</Type>\n        <Server>", p->pox);
		http_xml_escape(o, e[0].host);
		evbuffer_add_printf(o, "</Server>\n        <Port>%u</Port>\n        <LoginName>",
				    e[0].port);
		http_xml_escape(o, login);
		evbuffer_add_printf(o,
				    "</LoginName>\n        <DomainRequired>off</DomainRequired>\n"
				    "        <SPA>off</SPA>\n        <SSL>%s</SSL>\n"
				    "        <Encryption>%s</Encryption>\n"
				    "        <AuthRequired>on</AuthRequired>\n",
				    e[0].enc == HTTP_ENC_NONE ? "off" : "on",
				    e[0].enc == HTTP_ENC_SSL   ? "SSL"
				    : e[0].enc == HTTP_ENC_TLS ? "TLS"
							       : "None");
		if (p->outgoing)
			evbuffer_add_printf(o, "        <UsePOPAuth>on</UsePOPAuth>\n"
					       "        <SMTPLast>off</SMTPLast>\n");
		evbuffer_add_printf(o, "      </Protocol>\n");
	}
	evbuffer_add_printf(o, "    </Account>\n  </Response>\n</Autodiscover>\n");
	free(login);
	free(address);
	http_send(c);
}

/* ---- Apple configuration profile ---- */

/* A UUID derived from text, so the same account gets the same profile
 * identity and installing it again replaces the old one. */
static void http_uuid_from(const char *text, const char *salt, char out[37])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, salt, strlen(salt));
	EVP_DigestUpdate(ctx, "", 1);
	EVP_DigestUpdate(ctx, text, strlen(text));
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x50); /* version 5 style, name-based */
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		 md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10],
		 md[11], md[12], md[13], md[14], md[15]);
}

static void http_plist_string(struct evbuffer *o, const char *key, const char *value)
{
	evbuffer_add_printf(o, "      <key>%s</key>\n      <string>", key);
	http_xml_escape(o, value);
	evbuffer_add_printf(o, "</string>\n");
}

void http_autoconfig_apple(struct http_conn *c)
{
	char *address = http_autoconfig_address(c, true);
	if (address == NULL)
		return;
	/* one account: IMAP4 when it is offered, else POP3 */
	const char *incoming = http_service_offered(c->hd, "imap4")  ? "imap4"
			       : http_service_offered(c->hd, "pop3") ? "pop3"
								     : NULL;
	struct http_endpoint in[HTTP_MAX_ENDPOINTS], out[HTTP_MAX_ENDPOINTS];
	size_t nin = incoming != NULL
			 ? http_service_endpoints(c->hd, incoming, in, HTTP_MAX_ENDPOINTS, NULL)
			 : 0;
	size_t nout =
	    http_service_offered(c->hd, "submission")
		? http_service_endpoints(c->hd, "submission", out, HTTP_MAX_ENDPOINTS, NULL)
		: 0;
	if (nin == 0 || nout == 0) {
		free(address);
		http_send_error(c, 404,
				"Neither IMAP4 nor POP3 with SMTP is offered by this server.");
		return;
	}
	char *login = http_login_name(address, c->user.domain);
	const char *host =
	    c->user.hostname != NULL && *c->user.hostname != '\0' ? c->user.hostname : in[0].host;
	/* identifiers are reverse-DNS names of the server */
	char ident[300];
	snprintf(ident, sizeof(ident), "postern.%s", host);
	char profile_uuid[37], mail_uuid[37];
	http_uuid_from(address, "postern-profile", profile_uuid);
	http_uuid_from(address, "postern-mail", mail_uuid);
	struct evbuffer *o = c->out;
	c->content_type = "application/x-apple-aspen-config";
	http_header_add(c, "Content-Disposition: attachment; filename=\"mail.mobileconfig\"");
	evbuffer_add_printf(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			       "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
			       "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
			       "<plist version=\"1.0\">\n<dict>\n  <key>PayloadContent</key>\n"
			       "  <array>\n    <dict>\n");
	http_plist_string(o, "EmailAccountDescription", address);
	http_plist_string(o, "EmailAccountName", address);
	http_plist_string(o, "EmailAccountType",
			  strcmp(incoming, "imap4") == 0 ? "EmailTypeIMAP" : "EmailTypePOP");
	http_plist_string(o, "EmailAddress", address);
	http_plist_string(o, "IncomingMailServerAuthentication", "EmailAuthPassword");
	http_plist_string(o, "IncomingMailServerHostName", in[0].host);
	evbuffer_add_printf(
	    o,
	    "      <key>IncomingMailServerPortNumber</key>\n      <integer>%u</integer>\n"
	    "      <key>IncomingMailServerUseSSL</key>\n      <%s/>\n",
	    in[0].port, in[0].enc == HTTP_ENC_NONE ? "false" : "true");
	http_plist_string(o, "IncomingMailServerUsername", login);
	http_plist_string(o, "OutgoingMailServerAuthentication", "EmailAuthPassword");
	http_plist_string(o, "OutgoingMailServerHostName", out[0].host);
	evbuffer_add_printf(
	    o,
	    "      <key>OutgoingMailServerPortNumber</key>\n      <integer>%u</integer>\n"
	    "      <key>OutgoingMailServerUseSSL</key>\n      <%s/>\n",
	    out[0].port, out[0].enc == HTTP_ENC_NONE ? "false" : "true");
	http_plist_string(o, "OutgoingMailServerUsername", login);
	evbuffer_add_printf(
	    o, "      <key>OutgoingPasswordSameAsIncomingPassword</key>\n      <true/>\n");
	http_plist_string(o, "PayloadDescription", "Mail account settings");
	http_plist_string(o, "PayloadDisplayName", address);
	char payload_ident[400];
	snprintf(payload_ident, sizeof(payload_ident), "%s.mail.%s", ident, mail_uuid);
	http_plist_string(o, "PayloadIdentifier", payload_ident);
	http_plist_string(o, "PayloadType", "com.apple.mail.managed");
	http_plist_string(o, "PayloadUUID", mail_uuid);
	evbuffer_add_printf(o, "      <key>PayloadVersion</key>\n      <integer>1</integer>\n"
			       "      <key>PreventAppSheet</key>\n      <false/>\n"
			       "      <key>PreventMove</key>\n      <false/>\n"
			       "      <key>SMIMEEnabled</key>\n      <false/>\n"
			       "    </dict>\n  </array>\n");
	evbuffer_add_printf(o, "  <key>PayloadDescription</key>\n  <string>Mail settings for ");
	http_xml_escape(o, address);
	evbuffer_add_printf(o, "</string>\n  <key>PayloadDisplayName</key>\n  <string>");
	http_xml_escape(o, address);
	evbuffer_add_printf(o, " (mail)</string>\n  <key>PayloadIdentifier</key>\n  <string>");
	http_xml_escape(o, ident);
	evbuffer_add_printf(o, ".%s</string>\n  <key>PayloadOrganization</key>\n  <string>",
			    profile_uuid);
	http_xml_escape(o, host);
	evbuffer_add_printf(
	    o,
	    "</string>\n  <key>PayloadRemovalDisallowed</key>\n  <false/>\n"
	    "  <key>PayloadType</key>\n  <string>Configuration</string>\n"
	    "  <key>PayloadUUID</key>\n  <string>%s</string>\n"
	    "  <key>PayloadVersion</key>\n  <integer>1</integer>\n</dict>\n</plist>\n",
	    profile_uuid);
	free(login);
	free(address);
	http_send(c);
}
