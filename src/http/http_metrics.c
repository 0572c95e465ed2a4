#include <event2/buffer.h>

#include "http/http_private.h"
#include "lib/metrics.h"
#include "net/cidr.h"
#include "net/conn.h"

/* GET /metrics: every counter of the instance in the Prometheus text format,
 * rendered from the shared region this worker is attached to. Scrapers do
 * not sign in, so the answer goes only to addresses in the http service's
 * metrics-networks (loopback by default); others get 403. */
void http_metrics(struct http_conn *c)
{
	struct httpd *hd = c->hd;
	socklen_t len = 0;
	if (!net_cidr_match(hd->metrics_networks, hd->metrics_networks_count,
			    conn_peer_sockaddr(c->conn, &len))) {
		http_send_error(c, 403, "Metrics are served only to the networks in the "
					"http service's metrics-networks setting.");
		return;
	}
	if (metrics_render_prometheus(c->out) < 0) {
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
		http_send_error(c, 503, "The metrics could not be read.");
		return;
	}
	c->content_type = METRICS_CONTENT_TYPE;
	http_send(c);
}
