#include <event2/buffer.h>
#include <string.h>

#include "http/http_private.h"

/* Page skeleton and escaping. Every text that is not a literal of this
 * file goes through http_html_escape(). */

void http_html_escape_n(struct evbuffer *out, const char *text, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		const char *rep = NULL;
		switch (text[i]) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		default:
			/* control characters have no place in a page or XML 1.0 */
			if ((unsigned char)text[i] < 0x20 && text[i] != '\n' && text[i] != '\t')
				rep = "?";
			break;
		}
		if (rep == NULL)
			continue;
		evbuffer_add(out, text + start, i - start);
		evbuffer_add(out, rep, strlen(rep));
		start = i + 1;
	}
	evbuffer_add(out, text + start, len - start);
}

void http_html_escape(struct evbuffer *out, const char *text)
{
	if (text != NULL)
		http_html_escape_n(out, text, strlen(text));
}

void http_url_escape(struct evbuffer *out, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~@", *p) != NULL)
			evbuffer_add(out, p, 1);
		else
			evbuffer_add_printf(out, "%%%02X", *p);
	}
}

void http_csrf_field(struct http_conn *c)
{
	evbuffer_add_printf(c->out, "<input type=\"hidden\" name=\"csrf\" value=\"");
	http_html_escape(c->out, c->user.csrf);
	evbuffer_add_printf(c->out, "\">\n");
}

void http_page_begin(struct http_conn *c, const char *title, const char *section)
{
	struct evbuffer *o = c->out;
	c->content_type = "text/html; charset=utf-8";
	evbuffer_add_printf(
	    o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	       "<title>");
	http_html_escape(o, title);
	evbuffer_add_printf(o, " - postern</title>\n<link rel=\"stylesheet\" href=\"/style.css\">\n"
			       "</head>\n<body>\n<header>\n<p class=\"brand\">postern</p>\n");
	if (c->user.signed_in) {
		bool admin = c->user.kind != NULL && strcmp(c->user.kind, "admin") == 0;
		evbuffer_add_printf(o,
				    "<nav aria-label=\"main\">\n<ul>\n"
				    "<li><a href=\"/settings\"%s>Mail settings</a></li>\n",
				    section != NULL && strcmp(section, "settings") == 0
					? " aria-current=\"page\""
					: "");
		if (admin) {
			static const char *const links[][2] = {{"admin", "Admin centre"},
							       {"users", "Mailboxes"},
							       {"services", "Services"},
							       {"protocols", "Protocol settings"},
							       {"test", "Connectivity test"}};
			static const char *const hrefs[] = {"/admin", "/admin/users",
							    "/admin/services", "/admin/settings",
							    "/admin/test"};
			for (size_t i = 0; i < 5; i++)
				evbuffer_add_printf(
				    o, "<li><a href=\"%s\"%s>%s</a></li>\n", hrefs[i],
				    section != NULL && strcmp(section, links[i][0]) == 0
					? " aria-current=\"page\""
					: "",
				    links[i][1]);
		}
		evbuffer_add_printf(o, "</ul>\n</nav>\n<form class=\"signout\" method=\"post\" "
				       "action=\"/logout\">\n");
		http_csrf_field(c);
		evbuffer_add_printf(o, "<span>Signed in as <strong>");
		http_html_escape(o, c->user.name);
		evbuffer_add_printf(o,
				    "</strong></span> <button type=\"submit\">Sign out</button>\n"
				    "</form>\n");
	}
	evbuffer_add_printf(o, "</header>\n<main>\n");
}

void http_page_end(struct http_conn *c)
{
	evbuffer_add_printf(c->out, "</main>\n</body>\n</html>\n");
}

/* Plain and readable on a phone: one column, system fonts, contrast above
 * 4.5:1 everywhere, visible focus. */
const char http_stylesheet[] =
    ":root{--fg:#1b1b1b;--bg:#fff;--muted:#4a4a4a;--line:#c8c8c8;--accent:#0a4fa3;"
    "--ok:#0b6b2b;--bad:#a4161a;--panel:#f3f5f8}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "color:var(--fg);background:var(--bg)}\n"
    "header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1.5rem;"
    "padding:.6rem 1rem;background:var(--accent);color:#fff}\n"
    "header a,header .brand{color:#fff}\n"
    ".brand{font-weight:700;font-size:1.15rem;margin:0}\n"
    "nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:.25rem 1rem;margin:0;padding:0}\n"
    "nav a{text-decoration:none;padding:.2rem 0;border-bottom:2px solid transparent}\n"
    "nav a[aria-current=page],nav a:hover{border-bottom-color:#fff}\n"
    ".signout{margin-left:auto;display:flex;align-items:center;gap:.5rem}\n"
    "main{max-width:60rem;margin:0 auto;padding:1rem}\n"
    "h1{font-size:1.6rem;margin:.5rem 0 1rem}h2{font-size:1.25rem;margin:1.5rem 0 .5rem}\n"
    "a{color:var(--accent)}\n"
    ":focus-visible{outline:3px solid #f5a623;outline-offset:2px}\n"
    "label{display:block;font-weight:600;margin:.75rem 0 .25rem}\n"
    "input[type=text],input[type=password],input[type=email],input[type=search],select{"
    "width:100%;max-width:28rem;padding:.5rem;font:inherit;border:1px solid #767676;"
    "border-radius:4px}\n"
    "button{font:inherit;padding:.45rem 1rem;border-radius:4px;border:1px solid var(--accent);"
    "background:var(--accent);color:#fff;cursor:pointer}\n"
    "button.secondary{background:#fff;color:var(--accent)}\n"
    "header button{background:#fff;color:var(--accent);border-color:#fff;padding:.2rem .7rem}\n"
    ".card{border:1px solid var(--line);border-radius:6px;padding:.75rem 1rem;margin:0 0 1rem;"
    "background:var(--panel)}\n"
    ".cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(16rem,1fr));gap:1rem}\n"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.5rem 0}\n"
    "dt{color:var(--muted)}dd{margin:0;font-weight:600;overflow-wrap:break-word;min-width:0}\n"
    ".card h2{margin-top:0}\n"
    ".actions{display:flex;flex-wrap:wrap;gap:.4rem}\n"
    ".table{overflow-x:auto}\n"
    "table{border-collapse:collapse;width:100%}\n"
    "th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);"
    "vertical-align:top}\n"
    "th{background:var(--panel)}\n"
    ".on{color:var(--ok);font-weight:700}.off{color:var(--bad);font-weight:700}\n"
    ".note{border-left:4px solid var(--accent);background:var(--panel);padding:.5rem .75rem}\n"
    ".error{border-left:4px solid var(--bad);background:#fdecec;padding:.5rem .75rem}\n"
    ".inline{display:inline}\n"
    ".help{color:var(--muted);font-size:.9rem;margin:.1rem 0 .5rem}\n"
    "code{overflow-wrap:anywhere}\n"
    "@media (max-width:40rem){dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}"
    ".signout{margin-left:0}"
    /* tables become one block per row, each cell labelled */
    "table.stack thead{position:absolute;left:-9999px}"
    "table.stack tr{display:block;border-bottom:2px solid var(--line);padding:.4rem 0}"
    "table.stack th,table.stack td{display:block;border:0;padding:.15rem .25rem;background:none}"
    "table.stack td[data-label]::before{content:attr(data-label) \": \";color:var(--muted);"
    "font-weight:400}}\n";

void http_page_style(struct http_conn *c)
{
	c->content_type = "text/css; charset=utf-8";
	c->cacheable = true;
	evbuffer_add(c->out, http_stylesheet, sizeof(http_stylesheet) - 1);
	http_send(c);
}
