#ifndef POSTERN_HTTP_H
#define POSTERN_HTTP_H

/* The http service: the users' settings page, client autoconfiguration
 * (Thunderbird autoconfig, Outlook Autodiscover POX, Apple configuration
 * profiles) and the admin centre, served by postern itself on the http
 * bindings. Like the front ends it holds no secrets: logins and sessions
 * are authd's, service control and settings writes the master's. */

struct worker_service_ops;

extern const struct worker_service_ops http_service_ops;

#endif
