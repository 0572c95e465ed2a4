#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authd/authd_scram.h"
#include "directory/password_scram.h"
#include "lib/base64.h"

/* RFC 7677 section 3 */
#define V_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define V_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define V_SERVER_FIRST                                                                             \
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define V_NONCE	       "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define V_PROOF	       "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define V_CLIENT_FINAL "c=biws,r=" V_NONCE ",p=" V_PROOF
#define V_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static const int owner_a = 1, owner_b = 2;

struct fixture {
	struct authd_scram *t;
	char *stored;
	struct password_scram k;
	struct authd_scram_keys keys;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->t = malloc(sizeof(*f->t));
	authd_scram_init(f->t, (const unsigned char *)"0123456789abcdef0123456789abcdef", 32);
	unsigned char salt[17];
	base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt));
	char *error = NULL;
	assert_int_equal(password_scram_make_with("pencil", salt, 16, 4096, &f->stored, &error), 1);
	assert_int_equal(password_scram_parse(f->stored, &f->k, &error), 0);
	f->keys = (struct authd_scram_keys){
	    .real = true,
	    .stored = f->stored,
	    .iterations = f->k.iterations,
	    .salt = f->k.salt,
	    .salt_len = f->k.salt_len,
	    .stored_key = f->k.stored_key,
	    .server_key = f->k.server_key,
	};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	authd_scram_clear(f->t);
	free(f->t);
	free(f->stored);
	free(f);
	return 0;
}

static struct authd_scram_exchange *begin(struct fixture *f, const char *client_first,
					  const void *owner, long long now)
{
	const char *error = NULL;
	struct authd_scram_exchange *e =
	    authd_scram_begin(f->t, client_first, strlen(client_first), &f->keys, V_SERVER_NONCE,
			      owner, 7, now, &error);
	assert_non_null(e);
	return e;
}

static void test_rfc7677_exchange(void **state)
{
	struct fixture *f = *state;
	char user[SCRAM_MAX_NAME + 1];
	const char *error = NULL;
	assert_int_equal(
	    authd_scram_client_first(V_CLIENT_FIRST, strlen(V_CLIENT_FIRST), user, &error), 0);
	assert_string_equal(user, "user");
	struct authd_scram_exchange *e = begin(f, V_CLIENT_FIRST, &owner_a, 1000);
	assert_string_equal(e->server_first, V_SERVER_FIRST);
	assert_int_equal(e->state, AUTHD_SCRAM_AWAIT_FINAL);
	char handle[AUTHD_SCRAM_HANDLE_MAX];
	strcpy(handle, e->handle);
	assert_ptr_equal(authd_scram_find(f->t, handle, AUTHD_SCRAM_AWAIT_FINAL, &owner_a, 7, 2000),
			 e);
	char final[128];
	const char *why = NULL;
	assert_int_equal(authd_scram_verify(e, V_CLIENT_FINAL, strlen(V_CLIENT_FINAL), final,
					    sizeof(final), &why),
			 1);
	assert_string_equal(final, V_SERVER_FINAL);
	authd_scram_end(f->t, e);
	/* each step is taken once: the same handle finds nothing now */
	assert_null(authd_scram_find(f->t, handle, AUTHD_SCRAM_AWAIT_FINAL, &owner_a, 7, 2000));
}

static void test_tampered_messages(void **state)
{
	struct fixture *f = *state;
	struct authd_scram_exchange *e = begin(f, V_CLIENT_FIRST, &owner_a, 1000);
	char final[128];
	const char *why = NULL;
	/* a nonce changed by one character */
	const char *m = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,p=" V_PROOF;
	assert_int_equal(authd_scram_verify(e, m, strlen(m), final, sizeof(final), &why), 0);
	assert_string_equal(why, "wrong nonce");
	/* only the client's part of the nonce */
	m = "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=" V_PROOF;
	assert_int_equal(authd_scram_verify(e, m, strlen(m), final, sizeof(final), &why), 0);
	/* a gs2 header other than the client-first message's */
	m = "c=eSws,r=" V_NONCE ",p=" V_PROOF;
	assert_int_equal(authd_scram_verify(e, m, strlen(m), final, sizeof(final), &why), 0);
	assert_non_null(strstr(why, "channel binding"));
	/* a wrong proof */
	m = "c=biws,r=" V_NONCE ",p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
	assert_int_equal(authd_scram_verify(e, m, strlen(m), final, sizeof(final), &why), 0);
	assert_string_equal(why, "wrong password");
	/* an extension in the client-final message changes the AuthMessage:
	 * the RFC's proof no longer fits */
	m = "c=biws,r=" V_NONCE ",x=1,p=" V_PROOF;
	assert_int_equal(authd_scram_verify(e, m, strlen(m), final, sizeof(final), &why), 0);
	/* malformed */
	m = "c=biws,r=" V_NONCE;
	assert_int_equal(authd_scram_verify(e, m, strlen(m), final, sizeof(final), &why), 0);
	/* and the right one still works: verification does not end it */
	assert_int_equal(authd_scram_verify(e, V_CLIENT_FINAL, strlen(V_CLIENT_FINAL), final,
					    sizeof(final), &why),
			 1);
}

static void test_owner_and_expiry(void **state)
{
	struct fixture *f = *state;
	struct authd_scram_exchange *e = begin(f, V_CLIENT_FIRST, &owner_a, 1000);
	char handle[AUTHD_SCRAM_HANDLE_MAX];
	strcpy(handle, e->handle);
	/* another worker's channel, another generation, another state */
	assert_null(authd_scram_find(f->t, handle, AUTHD_SCRAM_AWAIT_FINAL, &owner_b, 7, 1000));
	assert_null(authd_scram_find(f->t, handle, AUTHD_SCRAM_AWAIT_FINAL, &owner_a, 8, 1000));
	assert_null(authd_scram_find(f->t, handle, AUTHD_SCRAM_AWAIT_CONFIRM, &owner_a, 7, 1000));
	/* a guessed handle */
	char forged[AUTHD_SCRAM_HANDLE_MAX];
	strcpy(forged, handle);
	size_t n = strlen(forged);
	forged[n - 1] = forged[n - 1] == '0' ? '1' : '0';
	assert_null(authd_scram_find(f->t, forged, AUTHD_SCRAM_AWAIT_FINAL, &owner_a, 7, 1000));
	assert_null(authd_scram_find(f->t, "junk", AUTHD_SCRAM_AWAIT_FINAL, &owner_a, 7, 1000));
	assert_null(authd_scram_find(f->t, "99999.00", AUTHD_SCRAM_AWAIT_FINAL, &owner_a, 7, 1000));
	assert_non_null(authd_scram_find(f->t, handle, AUTHD_SCRAM_AWAIT_FINAL, &owner_a, 7, 1000));
	/* past its lifetime it is gone */
	long long later = 1000 + AUTHD_SCRAM_LIFETIME_S * 1000LL + 1;
	assert_null(authd_scram_find(f->t, handle, AUTHD_SCRAM_AWAIT_FINAL, &owner_a, 7, later));
	begin(f, V_CLIENT_FIRST, &owner_a, 1000);
	assert_int_equal(authd_scram_expire(f->t, 2000), 1);
	assert_int_equal(authd_scram_expire(f->t, later), 0);
}

static void test_full_table_evicts_the_oldest(void **state)
{
	struct fixture *f = *state;
	struct authd_scram_exchange *first = begin(f, V_CLIENT_FIRST, &owner_a, 1000);
	char handle[AUTHD_SCRAM_HANDLE_MAX];
	strcpy(handle, first->handle);
	for (int i = 1; i < AUTHD_SCRAM_SLOTS; i++)
		begin(f, V_CLIENT_FIRST, &owner_a, 2000 + i);
	assert_int_equal(authd_scram_expire(f->t, 3000), AUTHD_SCRAM_SLOTS);
	assert_non_null(authd_scram_find(f->t, handle, AUTHD_SCRAM_AWAIT_FINAL, &owner_a, 7, 3000));
	begin(f, V_CLIENT_FIRST, &owner_a, 20000);
	assert_null(authd_scram_find(f->t, handle, AUTHD_SCRAM_AWAIT_FINAL, &owner_a, 7, 20000));
	assert_int_equal(authd_scram_expire(f->t, 20000), AUTHD_SCRAM_SLOTS);
}

static void test_fake_salts(void **state)
{
	struct fixture *f = *state;
	struct authd_scram_keys a, b, c;
	unsigned char sa[SCRAM_SALT_SIZE], sb[SCRAM_SALT_SIZE], sc[SCRAM_SALT_SIZE];
	unsigned char ka[2][SCRAM_KEY_SIZE], kb[2][SCRAM_KEY_SIZE], kc[2][SCRAM_KEY_SIZE];
	authd_scram_fake_keys(f->t, "nobody", &a, sa, ka);
	authd_scram_fake_keys(f->t, "NoBody", &b, sb, kb);
	authd_scram_fake_keys(f->t, "somebody", &c, sc, kc);
	/* stable per name (ignoring case, as lookups do), like a real salt */
	assert_memory_equal(sa, sb, SCRAM_SALT_SIZE);
	assert_memory_not_equal(sa, sc, SCRAM_SALT_SIZE);
	assert_int_equal(a.salt_len, SCRAM_SALT_SIZE);
	assert_int_equal(a.iterations, PASSWORD_SCRAM_ITERATIONS);
	assert_false(a.real);
	/* another instance's secret gives other salts */
	struct authd_scram *other = malloc(sizeof(*other));
	authd_scram_init(other, (const unsigned char *)"another secret, 32 bytes long...", 32);
	authd_scram_fake_keys(other, "nobody", &b, sb, kb);
	assert_memory_not_equal(sa, sb, SCRAM_SALT_SIZE);
	free(other);

	/* a fake exchange never verifies, whatever the proof */
	const char *error = NULL;
	const char *cf = "n,,n=nobody,r=abcdef";
	struct authd_scram_exchange *e =
	    authd_scram_begin(f->t, cf, strlen(cf), &a, NULL, &owner_a, 7, 1000, &error);
	assert_non_null(e);
	assert_null(e->keys);
	assert_non_null(strstr(e->server_first, ",i="
						"32768"));
	/* the random part of the nonce: 24 bytes in base64 */
	assert_int_equal(strlen(e->nonce), 6 + 32);
	char final[256], m[256];
	snprintf(m, sizeof(m), "c=biws,r=%s,p=" V_PROOF, e->nonce);
	const char *why;
	assert_int_equal(authd_scram_verify(e, m, strlen(m), final, sizeof(final), &why), 0);
	assert_string_equal(why, "no SCRAM keys");
}

static void test_client_first_rules(void **state)
{
	(void)state;
	char user[SCRAM_MAX_NAME + 1];
	const char *error = NULL;
	const char *m = "n,a=bob,n=alice,r=x";
	assert_int_equal(authd_scram_client_first(m, strlen(m), user, &error), -1);
	m = "n,a=alice,n=alice,r=x";
	assert_int_equal(authd_scram_client_first(m, strlen(m), user, &error), 0);
	m = "p=tls-unique,,n=alice,r=x";
	assert_int_equal(authd_scram_client_first(m, strlen(m), user, &error), -1);
	assert_string_equal(error, "channel-binding-not-supported");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rfc7677_exchange, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tampered_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_owner_and_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_table_evicts_the_oldest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fake_salts, setup, teardown),
	    cmocka_unit_test(test_client_first_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
