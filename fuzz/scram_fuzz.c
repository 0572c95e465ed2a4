/* libFuzzer target for the SCRAM-SHA-256 message parsers (src/lib/scram.c),
 * the strict base64 decoder beside them, and authd's side of an exchange
 * (src/authd/authd_scram.c).
 *
 * The first input byte picks what the rest is: a client-first, client-final,
 * server-first or server-final message, or base64 text. Whatever parses
 * must be consistent: offsets inside the message, a user name that
 * round-trips through its saslname encoding, a client-final message whose
 * proof is last, base64 that re-encodes to itself. A client-first message
 * that parses starts an exchange in authd's table; a client-final message
 * is checked against a fixed exchange and must never verify (nobody knows
 * the password behind random keys). */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authd/authd_scram.h"
#include "lib/base64.h"
#include "lib/scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static struct authd_scram *table;
static const int owner;

static void fuzz_client_first(const char *msg, size_t len)
{
	struct scram_client_first cf;
	const char *error = NULL;
	if (scram_parse_client_first(msg, len, &cf, &error) < 0) {
		check(error != NULL);
		return;
	}
	check(cf.cbind_flag == 'n' || cf.cbind_flag == 'y');
	check(cf.gs2_header_len >= 3 && cf.gs2_header_len < len);
	check(msg[cf.gs2_header_len - 1] == ',');
	check(cf.bare_offset == cf.gs2_header_len);
	check(cf.nonce_len > 0 && cf.nonce_offset + cf.nonce_len <= len);
	check(cf.user[0] != '\0');
	/* the name re-encoded makes a message that parses to the same */
	char name[SCRAM_MAX_NAME * 3 + 1], again[SCRAM_MAX_MESSAGE + 1];
	check(scram_saslname_encode(cf.user, name, sizeof(name)) > 0);
	int n = snprintf(again, sizeof(again), "n,,n=%s,r=%.*s", name, (int)cf.nonce_len,
			 msg + cf.nonce_offset);
	if (n > 0 && (size_t)n < sizeof(again) && (size_t)n <= SCRAM_MAX_MESSAGE) {
		struct scram_client_first cf2;
		check(scram_parse_client_first(again, (size_t)n, &cf2, &error) == 0);
		check(strcmp(cf2.user, cf.user) == 0);
		check(cf2.nonce_len == cf.nonce_len);
	}
	/* authd starts an exchange for it */
	struct authd_scram_keys keys;
	unsigned char salt[SCRAM_SALT_SIZE], k[2][SCRAM_KEY_SIZE];
	authd_scram_fake_keys(table, cf.user, &keys, salt, k);
	struct authd_scram_exchange *e =
	    authd_scram_begin(table, msg, len, &keys, NULL, &owner, 1, 1000, &error);
	check(e != NULL);
	struct scram_server_first sf;
	check(scram_parse_server_first(e->server_first, strlen(e->server_first), &sf, &error) == 0);
	check(sf.salt_len == SCRAM_SALT_SIZE && memcmp(sf.salt, salt, SCRAM_SALT_SIZE) == 0);
	check(sf.nonce_len > cf.nonce_len);
	authd_scram_end(table, e);
}

static void fuzz_client_final(const char *msg, size_t len)
{
	struct scram_client_final cf;
	const char *error = NULL;
	int r = scram_parse_client_final(msg, len, &cf, &error);
	if (r == 0) {
		check(cf.without_proof_len < len && msg[cf.without_proof_len] == ',');
		check(memcmp(msg + cf.without_proof_len + 1, "p=", 2) == 0);
		check(memchr(msg + cf.without_proof_len + 1, ',', len - cf.without_proof_len - 1) ==
		      NULL);
		check(cf.cbind_len > 0);
		check(cf.nonce_offset + cf.nonce_len <= cf.without_proof_len);
	}
	/* against an exchange: never verified */
	const char *first = "n,,n=fuzz,r=abc";
	struct authd_scram_keys keys;
	unsigned char salt[SCRAM_SALT_SIZE], k[2][SCRAM_KEY_SIZE];
	authd_scram_fake_keys(table, "fuzz", &keys, salt, k);
	struct authd_scram_exchange *e =
	    authd_scram_begin(table, first, strlen(first), &keys, "xyz", &owner, 1, 1000, &error);
	check(e != NULL);
	char final[128];
	const char *why = NULL;
	check(authd_scram_verify(e, msg, len, final, sizeof(final), &why) == 0);
	check(why != NULL);
	authd_scram_end(table, e);
}

static void fuzz_server(const char *msg, size_t len, bool first)
{
	const char *error = NULL;
	if (first) {
		struct scram_server_first sf;
		if (scram_parse_server_first(msg, len, &sf, &error) == 0) {
			check(sf.iterations >= 1 && sf.iterations <= SCRAM_MAX_ITERATIONS);
			check(sf.salt_len > 0 && sf.salt_len <= SCRAM_MAX_SALT);
			check(sf.nonce_len > 0 && sf.nonce_offset + sf.nonce_len <= len);
		}
	} else {
		struct scram_server_final sf;
		if (scram_parse_server_final(msg, len, &sf, &error) == 0 && sf.error)
			check(sf.error_text[0] != '\0');
	}
}

static void fuzz_base64(const char *text, size_t len)
{
	unsigned char out[4096];
	long n = base64_decode(text, len, out, sizeof(out));
	if (n < 0)
		return;
	check((size_t)n ==
	      len / 4 * 3 - (len > 0 && text[len - 1] == '=') - (len > 1 && text[len - 2] == '='));
	/* strict: what decodes is canonical and encodes back to itself */
	char again[sizeof(out) * 4 / 3 + 8];
	check(base64_encode(out, (size_t)n, again, sizeof(again)) == (long)len);
	check(memcmp(again, text, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (table == NULL) {
		table = malloc(sizeof(*table));
		authd_scram_init(table, (const unsigned char *)"fuzz-secret", 11);
	}
	unsigned which = data[0] % 5;
	const char *msg = (const char *)data + 1;
	size_t len = size - 1;
	switch (which) {
	case 0:
		fuzz_client_first(msg, len);
		break;
	case 1:
		fuzz_client_final(msg, len);
		break;
	case 2:
		fuzz_server(msg, len, true);
		break;
	case 3:
		fuzz_server(msg, len, false);
		break;
	default:
		fuzz_base64(msg, len);
		break;
	}
	return 0;
}
