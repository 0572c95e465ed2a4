#include "imapd/imapd_private.h"
#include "net/conn.h"
#include "store/store.h"

/* IDLE (RFC 2177). The session waits for "DONE"; meanwhile every change
 * to the selected folder is sent at once: changes of this worker's
 * sessions arrive as in-process store notifications, changes of other
 * processes (lmtp deliveries, the pop3-backend) through the worker's
 * watcher (one inotify instance for all its users), which watches the
 * user's folders for as long as the user has a session. An idling session
 * costs no timer and no polling, unless the watcher ran out of inotify
 * watches: folders without one are polled every IMAPD_WATCH_POLL_MS. */

void imapd_cmd_idle(struct imapd_session *s, struct imap_command *cmd)
{
	(void)cmd;
	imapd_poll_changes(s);
	if (s->state == IMAPD_SELECTED)
		imapd_sync(s, true);
	imap_write_continuation(&s->out, "idling");
	imapd_flush(s);
	s->async = IMAPD_ASYNC_IDLE;
	/* every session of the user waits: an idle connection should cost
	 * its buffers and view, not the index's statements and page cache */
	if (++s->u->idling == s->u->refs)
		store_release_memory(s->u->store);
}

void imapd_idle_notify(struct imapd_session *s)
{
	if (s->state == IMAPD_SELECTED)
		imapd_sync(s, true);
}

void imapd_idle_line(struct imapd_session *s, const char *line, size_t len)
{
	if (imap_parser_is_done(line, len)) {
		imapd_done(s, IMAP_OK, IMAP_CODE_NONE, NULL, "IDLE terminated");
		return;
	}
	imapd_done(s, IMAP_BAD, IMAP_CODE_NONE, NULL, "Expected DONE to end IDLE");
}
