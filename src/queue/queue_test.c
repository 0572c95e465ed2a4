#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/xalloc.h"
#include "queue/queue.h"
#include "queue/queue_dns.h"
#include "queue/queue_runner.h"

static char *make_datadir(void)
{
	char tmpl[] = "/tmp/postern-queue-test-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return xstrdup(d);
}

static void rm_rf(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static struct queue_entry *new_entry(void)
{
	struct queue_entry *e = xcalloc(1, sizeof(*e));
	e->sender = xstrdup("alice@example.test");
	e->user = xstrdup("alice");
	e->sender_lmtp = xstrdup("unix:/tmp/lmtp.sock");
	e->envid = xstrdup("QQ+2Bx");
	e->ret = QUEUE_RET_HDRS;
	e->created = 1700000000;
	return e;
}

static char *commit_message(const char *dir, const char *body, struct queue_entry *e, int *lock_r)
{
	struct queue_writer *w = NULL;
	char *error = NULL;
	assert_int_equal(queue_writer_begin(dir, &w, &error), 0);
	assert_int_equal(queue_writer_write(w, body, strlen(body), &error), 0);
	assert_int_equal(queue_writer_size(w), strlen(body));
	assert_int_equal(queue_writer_commit(&w, e, lock_r, &error), 0);
	assert_null(w);
	return xstrdup(e->id);
}

static void test_roundtrip(void **state)
{
	(void)state;
	char *data = make_datadir();
	char *dir = NULL, *error = NULL;
	assert_int_equal(queue_dir_open(data, &dir, &error), 0);
	struct queue_entry *e = new_entry();
	queue_entry_add_rcpt(e, "bob@example.test", QUEUE_ROUTE_LOCAL, "unix:/x y/lmtp.sock", 0,
			     NULL);
	struct queue_rcpt *r = queue_entry_add_rcpt(
	    e, "\"odd one\"@example.org", QUEUE_ROUTE_REMOTE, NULL,
	    QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY, "rfc822;odd+20one@example.org");
	queue_set_str(&r->status, "451 4.4.1 try=again %41");
	queue_entry_add_rcpt(e, "alice@example.test", QUEUE_ROUTE_SENT, "127.0.0.1:24",
			     QUEUE_NOTIFY_NEVER, NULL);
	e->copy_offset = 12;
	e->copy_auth = xstrdup("abc.def");
	int lock = -1;
	char *id = commit_message(dir, "Subject: x\r\n\r\nbody\r\n", e, &lock);
	assert_true(lock >= 0);
	assert_int_equal(strlen(id), QUEUE_ID_LEN);

	/* locked by the writer: nobody else gets it */
	int other = -1;
	assert_int_equal(queue_entry_lock(dir, id, false, &other, &error), 0);
	queue_entry_unlock(&lock);
	assert_int_equal(queue_entry_lock(dir, id, false, &other, &error), 1);
	queue_entry_unlock(&other);

	struct queue_entry *l = NULL;
	assert_int_equal(queue_entry_load(dir, id, &l, &error), 1);
	assert_string_equal(l->sender, "alice@example.test");
	assert_string_equal(l->user, "alice");
	assert_string_equal(l->envid, "QQ+2Bx");
	assert_int_equal(l->ret, QUEUE_RET_HDRS);
	assert_int_equal(l->size, strlen("Subject: x\r\n\r\nbody\r\n"));
	assert_int_equal(l->nrcpts, 3);
	assert_int_equal(l->rcpts[2].route, QUEUE_ROUTE_SENT);
	assert_int_equal(l->rcpts[2].notify, QUEUE_NOTIFY_NEVER);
	assert_string_equal(queue_route_name(l->rcpts[2].route), "sent-copy");
	assert_int_equal(l->copy_offset, 12);
	assert_string_equal(l->copy_auth, "abc.def");
	assert_string_equal(l->rcpts[0].lmtp, "unix:/x y/lmtp.sock");
	assert_int_equal(l->rcpts[0].route, QUEUE_ROUTE_LOCAL);
	assert_string_equal(l->rcpts[1].address, "\"odd one\"@example.org");
	assert_string_equal(l->rcpts[1].status, "451 4.4.1 try=again %41");
	assert_string_equal(l->rcpts[1].orcpt, "rfc822;odd+20one@example.org");
	assert_int_equal(l->rcpts[1].notify, QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY);
	assert_string_equal(l->rcpts[1].remote, "");

	/* a state change replaces the file */
	l->rcpts[0].state = QUEUE_RCPT_SENT;
	l->attempts = 3;
	assert_int_equal(queue_entry_save(dir, l, &error), 0);
	queue_entry_free(&l);
	assert_int_equal(queue_entry_load(dir, id, &l, &error), 1);
	assert_int_equal(l->rcpts[0].state, QUEUE_RCPT_SENT);
	assert_int_equal(l->attempts, 3);

	char **ids = NULL;
	size_t n = 0;
	assert_int_equal(queue_list(dir, &ids, &n, &error), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], id);
	queue_ids_free(&ids, n);

	assert_int_equal(queue_entry_remove(dir, id, &error), 0);
	queue_entry_free(&l);
	assert_int_equal(queue_entry_load(dir, id, &l, &error), 0);
	assert_int_equal(queue_entry_lock(dir, id, false, &other, &error), 0);
	assert_int_equal(queue_list(dir, &ids, &n, &error), 0);
	assert_int_equal(n, 0);
	queue_entry_free(&e);
	free(id);
	free(dir);
	rm_rf(data);
	free(data);
}

static void test_malformed_and_abort(void **state)
{
	(void)state;
	char *data = make_datadir();
	char *dir = NULL, *error = NULL;
	assert_int_equal(queue_dir_open(data, &dir, &error), 0);
	struct queue_writer *w = NULL;
	assert_int_equal(queue_writer_begin(dir, &w, &error), 0);
	char *tmp = xasprintf("%s/tmp/%s.msg", dir, queue_writer_id(w));
	assert_int_equal(access(tmp, F_OK), 0);
	queue_writer_abort(&w);
	assert_int_not_equal(access(tmp, F_OK), 0);
	free(tmp);

	/* a truncated envelope (no "end") is refused, not half-read */
	const char *id = "0123456789ABCDEF01234567";
	char *env = xasprintf("%s/%s.env", dir, id);
	FILE *f = fopen(env, "w");
	fprintf(f, "version 1\nsender a@b\nrcpt pending local 0 x@y = = = =\n");
	fclose(f);
	struct queue_entry *e = NULL;
	assert_int_equal(queue_entry_load(dir, id, &e, &error), -1);
	assert_non_null(strstr(error, "malformed"));
	free(error);
	error = NULL;
	assert_int_equal(queue_entry_load(dir, "../../etc/passwd", &e, &error), 0);
	free(env);
	free(dir);
	rm_rf(data);
	free(data);
}

static void test_status_code(void **state)
{
	(void)state;
	char buf[16];
	assert_string_equal(queue_status_code("550 5.1.1 User unknown", buf), "5.1.1");
	assert_string_equal(queue_status_code("452 4.2.2 Mailbox full", buf), "4.2.2");
	assert_string_equal(queue_status_code("550 User unknown", buf), "5.0.0");
	assert_string_equal(queue_status_code("421 closing", buf), "4.0.0");
	assert_string_equal(queue_status_code("554 5.x.1 odd", buf), "5.0.0");
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *buf = xcalloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_dsn(void **state)
{
	(void)state;
	char *data = make_datadir();
	char *dir = NULL, *error = NULL;
	assert_int_equal(queue_dir_open(data, &dir, &error), 0);
	struct queue_entry *e = new_entry();
	e->ret = QUEUE_RET_DEFAULT;
	struct queue_rcpt *r = queue_entry_add_rcpt(e, "x@example.org", QUEUE_ROUTE_REMOTE, NULL, 0,
						    "rfc822;x@example.org");
	r->state = QUEUE_RCPT_FAILED;
	queue_set_str(&r->status, "550 5.1.1 no such user");
	queue_set_str(&r->remote, "127.0.0.1:2525");
	r = queue_entry_add_rcpt(e, "y@example.org", QUEUE_ROUTE_REMOTE, NULL, QUEUE_NOTIFY_NEVER,
				 NULL);
	r->state = QUEUE_RCPT_FAILED;
	queue_entry_add_rcpt(e, "z@example.org", QUEUE_ROUTE_REMOTE, NULL, 0, NULL)->state =
	    QUEUE_RCPT_SENT;
	int lock = -1;
	char *id = commit_message(dir, "Subject: original\r\n\r\nthe body\r\n", e, &lock);
	queue_entry_unlock(&lock);

	struct queue_entry *dsn = NULL;
	assert_int_equal(queue_dsn_create(dir, e, "mail.example.test", &dsn, &lock, &error), 1);
	assert_true(lock >= 0);
	queue_entry_unlock(&lock);
	assert_string_equal(dsn->sender, "");
	assert_int_equal(dsn->nrcpts, 1);
	assert_string_equal(dsn->rcpts[0].address, "alice@example.test");
	assert_int_equal(dsn->rcpts[0].route, QUEUE_ROUTE_LOCAL);
	assert_string_equal(dsn->rcpts[0].lmtp, "unix:/tmp/lmtp.sock");
	char *path = queue_message_path(dir, dsn->id);
	char *text = read_file(path);
	assert_non_null(
	    strstr(text, "Content-Type: multipart/report; report-type=delivery-status"));
	assert_non_null(strstr(text, "Reporting-MTA: dns; mail.example.test\r\n"));
	assert_non_null(strstr(text, "Original-Envelope-Id: QQ+x\r\n"));
	assert_non_null(strstr(text, "Final-Recipient: rfc822; x@example.org\r\n"));
	assert_non_null(strstr(text, "Action: failed\r\nStatus: 5.1.1\r\n"));
	assert_non_null(strstr(text, "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"));
	assert_non_null(strstr(text, "Remote-MTA: dns; 127.0.0.1:2525\r\n"));
	assert_null(strstr(text, "y@example.org")); /* NOTIFY=NEVER */
	assert_null(strstr(text, "z@example.org")); /* delivered */
	assert_non_null(strstr(text, "Content-Type: message/rfc822\r\n\r\nSubject: original\r\n"));
	assert_non_null(strstr(text, "the body\r\n"));
	free(text);
	free(path);

	/* never a report about a report */
	struct queue_entry *again = NULL;
	dsn->rcpts[0].state = QUEUE_RCPT_FAILED;
	assert_int_equal(queue_dsn_create(dir, dsn, "h", &again, &lock, &error), 0);
	queue_entry_free(&dsn);
	queue_entry_free(&e);
	free(id);
	free(dir);
	rm_rf(data);
	free(data);
}

/* An answer to query q (length qlen): the question kept (minus EDNS), the
 * RCODE in the low 4 bits of flags3, TC when it has 0x20, the RRs given. */
static size_t dns_answer(const unsigned char *q, size_t qlen, unsigned char flags3,
			 const unsigned char *rrs, size_t rrs_len, unsigned ancount,
			 unsigned char *out)
{
	/* the question ends 11 bytes (the OPT RR) before the end */
	size_t qend = qlen - 11;
	memcpy(out, q, qend);
	out[2] = 0x81;			      /* QR, RD */
	out[2] |= (flags3 & 0x20) ? 0x02 : 0; /* TC */
	out[3] = 0x80 | (flags3 & 0x0f);      /* RA, RCODE */
	out[6] = 0;
	out[7] = (unsigned char)ancount;
	out[10] = out[11] = 0;
	if (rrs_len > 0)
		memcpy(out + qend, rrs, rrs_len);
	return qend + rrs_len;
}

static void test_dns_mx_messages(void **state)
{
	(void)state;
	unsigned char q[512];
	int qlen = queue_dns_build_mx_query("Example.test.", 0x1234, q, sizeof(q));
	assert_true(qlen > 12);
	assert_int_equal(q[0], 0x12);
	assert_int_equal(q[1], 0x34);
	assert_int_equal(q[5], 1);  /* one question */
	assert_int_equal(q[11], 1); /* one additional: OPT */
	assert_memory_equal(q + 12,
			    "\x07"
			    "Example"
			    "\x04"
			    "test"
			    "\x00"
			    "\x00\x0f\x00\x01",
			    18);
	assert_int_equal(queue_dns_build_mx_query("a..b", 1, q, sizeof(q)), -1);
	assert_int_equal(queue_dns_build_mx_query("", 1, q, sizeof(q)), -1);
	qlen = queue_dns_build_mx_query("example.test", 0x1234, q, sizeof(q));

	/* two MX records out of order, names compressed against the question */
	static const unsigned char rrs[] = {
	    0xc0, 0x0c, 0, 15, 0, 1, 0, 0, 0, 60, 0, 8, 0, 20, 3, 'm', 'x', '2', 0xc0, 0x0c,
	    0xc0, 0x0c, 0, 15, 0, 1, 0, 0, 0, 60, 0, 8, 0, 10, 3, 'm', 'x', '1', 0xc0, 0x0c,
	};
	unsigned char a[1024];
	size_t alen = dns_answer(q, (size_t)qlen, 0, rrs, sizeof(rrs), 2, a);
	struct queue_dns_mx_record mx[8];
	size_t n = 0;
	assert_int_equal(queue_dns_parse_mx(a, alen, 0x1234, "example.test", mx, 8, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(mx[0].pref, 10);
	assert_string_equal(mx[0].name, "mx1.example.test");
	assert_string_equal(mx[1].name, "mx2.example.test");
	/* the question in another case is still ours; another id or name is not */
	assert_int_equal(queue_dns_parse_mx(a, alen, 0x1234, "EXAMPLE.test.", mx, 8, &n), 0);
	assert_int_equal(queue_dns_parse_mx(a, alen, 0x1235, "example.test", mx, 8, &n), -1);
	assert_int_equal(queue_dns_parse_mx(a, alen, 0x1234, "example.org", mx, 8, &n), -1);
	assert_int_equal(queue_dns_parse_mx(a, alen - 3, 0x1234, "example.test", mx, 8, &n), -1);
	/* a query is not an answer */
	assert_int_equal(queue_dns_parse_mx(q, (size_t)qlen, 0x1234, "example.test", mx, 8, &n),
			 -1);

	/* a null MX: preference 0, the root */
	static const unsigned char null_mx[] = {0xc0, 0x0c, 0, 15, 0, 1, 0, 0,
						0,    60,   0, 3,  0, 0, 0};
	alen = dns_answer(q, (size_t)qlen, 0, null_mx, sizeof(null_mx), 1, a);
	assert_int_equal(queue_dns_parse_mx(a, alen, 0x1234, "example.test", mx, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(mx[0].name, "");

	/* no records (NODATA), NXDOMAIN, SERVFAIL, truncated */
	alen = dns_answer(q, (size_t)qlen, 0, NULL, 0, 0, a);
	assert_int_equal(queue_dns_parse_mx(a, alen, 0x1234, "example.test", mx, 8, &n), 0);
	assert_int_equal(n, 0);
	alen = dns_answer(q, (size_t)qlen, 3, NULL, 0, 0, a);
	assert_int_equal(queue_dns_parse_mx(a, alen, 0x1234, "example.test", mx, 8, &n), 3);
	alen = dns_answer(q, (size_t)qlen, 2, NULL, 0, 0, a);
	assert_int_equal(queue_dns_parse_mx(a, alen, 0x1234, "example.test", mx, 8, &n), 2);
	alen = dns_answer(q, (size_t)qlen, 0x20, NULL, 0, 0, a);
	assert_int_equal(queue_dns_parse_mx(a, alen, 0x1234, "example.test", mx, 8, &n), -2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dns_mx_messages),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_malformed_and_abort),
	    cmocka_unit_test(test_status_code),
	    cmocka_unit_test(test_dsn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
