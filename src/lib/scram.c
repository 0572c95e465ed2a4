#include "lib/scram.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "lib/base64.h"

/* A cursor over one message. */
struct scram_cursor {
	const char *msg;
	size_t len;
	size_t pos;
};

static bool scram_at(const struct scram_cursor *c, const char *text)
{
	size_t n = strlen(text);
	return c->len - c->pos >= n && memcmp(c->msg + c->pos, text, n) == 0;
}

static bool scram_eat(struct scram_cursor *c, const char *text)
{
	if (!scram_at(c, text))
		return false;
	c->pos += strlen(text);
	return true;
}

/* end of the current attribute's value: the next ',' or the end */
static size_t scram_value_end(const struct scram_cursor *c)
{
	const char *comma = memchr(c->msg + c->pos, ',', c->len - c->pos);
	return comma != NULL ? (size_t)(comma - c->msg) : c->len;
}

/* length of the UTF-8 sequence at p (at most n bytes), or 0 when it is not
 * well formed (overlong forms, surrogates and values past U+10FFFF too) */
static size_t scram_utf8_len(const unsigned char *p, size_t n)
{
	if (p[0] < 0x80)
		return 1;
	size_t need;
	unsigned min;
	unsigned v;
	if ((p[0] & 0xe0) == 0xc0) {
		need = 2;
		min = 0x80;
		v = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		need = 3;
		min = 0x800;
		v = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		need = 4;
		min = 0x10000;
		v = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	return need;
}

/* saslname up to the next ',' into out (decoded). 0, or -1 when it is empty,
 * badly encoded or too long. */
static int scram_saslname(struct scram_cursor *c, char *out, size_t size)
{
	size_t end = scram_value_end(c);
	size_t n = 0;
	if (end == c->pos)
		return -1;
	while (c->pos < end) {
		const unsigned char *p = (const unsigned char *)c->msg + c->pos;
		size_t left = end - c->pos;
		char ch;
		size_t step = 1;
		if (p[0] == '=') {
			if (left >= 3 && p[1] == '2' && p[2] == 'C')
				ch = ',';
			else if (left >= 3 && p[1] == '3' && p[2] == 'D')
				ch = '=';
			else
				return -1;
			step = 3;
		} else {
			step = scram_utf8_len(p, left);
			if (step == 0)
				return -1;
			if (n + step >= size)
				return -1;
			memcpy(out + n, p, step);
			n += step;
			c->pos += step;
			continue;
		}
		if (n + 1 >= size)
			return -1;
		out[n++] = ch;
		c->pos += step;
	}
	out[n] = '\0';
	return 0;
}

/* printable = %x21-2B / %x2D-7E: a nonce, non-empty */
static int scram_nonce(struct scram_cursor *c, size_t *offset_r, size_t *len_r)
{
	size_t end = scram_value_end(c);
	if (end == c->pos)
		return -1;
	for (size_t i = c->pos; i < end; i++) {
		unsigned char ch = (unsigned char)c->msg[i];
		if (ch < 0x21 || ch > 0x7e)
			return -1;
	}
	*offset_r = c->pos;
	*len_r = end - c->pos;
	c->pos = end;
	return 0;
}

/* base64 up to the next ',' into out; returns the decoded length or -1 */
static long scram_base64(struct scram_cursor *c, unsigned char *out, size_t size)
{
	size_t end = scram_value_end(c);
	long n = base64_decode(c->msg + c->pos, end - c->pos, out, size);
	if (n >= 0)
		c->pos = end;
	return n;
}

/* attr-val = ALPHA "=" value, value = 1*value-char: an optional extension,
 * ignored. Called after the ','. */
static int scram_extension(struct scram_cursor *c)
{
	if (c->len - c->pos < 3)
		return -1;
	char a = c->msg[c->pos];
	if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z')) || c->msg[c->pos + 1] != '=')
		return -1;
	c->pos += 2;
	size_t end = scram_value_end(c);
	if (end == c->pos)
		return -1;
	for (size_t i = c->pos; i < end;) {
		size_t step = scram_utf8_len((const unsigned char *)c->msg + i, end - i);
		if (step == 0)
			return -1;
		i += step;
	}
	c->pos = end;
	return 0;
}

/* whole-message checks every parser starts with */
static int scram_message_ok(const char *msg, size_t len, const char **error_r)
{
	if (len == 0 || len > SCRAM_MAX_MESSAGE || memchr(msg, '\0', len) != NULL) {
		*error_r = "invalid-encoding";
		return -1;
	}
	return 0;
}

int scram_parse_client_first(const char *msg, size_t len, struct scram_client_first *out,
			     const char **error_r)
{
	memset(out, 0, sizeof(*out));
	if (scram_message_ok(msg, len, error_r) < 0)
		return -1;
	struct scram_cursor c = {msg, len, 0};
	/* gs2-cbind-flag */
	if (scram_at(&c, "p=")) {
		*error_r = "channel-binding-not-supported";
		return -1;
	}
	if (!(scram_eat(&c, "n,") || scram_eat(&c, "y,"))) {
		*error_r = "invalid-encoding";
		return -1;
	}
	out->cbind_flag = msg[0];
	if (scram_eat(&c, "a=") && scram_saslname(&c, out->authzid, sizeof(out->authzid)) < 0) {
		*error_r = "invalid-username-encoding";
		return -1;
	}
	if (!scram_eat(&c, ",")) {
		*error_r = "invalid-encoding";
		return -1;
	}
	out->gs2_header_len = c.pos;
	out->bare_offset = c.pos;
	if (scram_at(&c, "m=")) {
		*error_r = "extensions-not-supported";
		return -1;
	}
	if (!scram_eat(&c, "n=")) {
		*error_r = "invalid-encoding";
		return -1;
	}
	if (scram_saslname(&c, out->user, sizeof(out->user)) < 0) {
		*error_r = "invalid-username-encoding";
		return -1;
	}
	if (!scram_eat(&c, ",r=") || scram_nonce(&c, &out->nonce_offset, &out->nonce_len) < 0) {
		*error_r = "invalid-encoding";
		return -1;
	}
	while (c.pos < c.len) {
		if (!scram_eat(&c, ",") || scram_extension(&c) < 0) {
			*error_r = "invalid-encoding";
			return -1;
		}
	}
	return 0;
}

int scram_parse_client_final(const char *msg, size_t len, struct scram_client_final *out,
			     const char **error_r)
{
	memset(out, 0, sizeof(*out));
	if (scram_message_ok(msg, len, error_r) < 0)
		return -1;
	*error_r = "invalid-encoding";
	struct scram_cursor c = {msg, len, 0};
	if (!scram_eat(&c, "c="))
		return -1;
	long n = scram_base64(&c, out->cbind, sizeof(out->cbind));
	if (n <= 0)
		return -1;
	out->cbind_len = (size_t)n;
	if (!scram_eat(&c, ",r=") || scram_nonce(&c, &out->nonce_offset, &out->nonce_len) < 0)
		return -1;
	for (;;) {
		if (c.pos == c.len)
			return -1; /* no proof */
		size_t comma = c.pos;
		if (!scram_eat(&c, ","))
			return -1;
		if (scram_eat(&c, "p=")) {
			unsigned char proof[SCRAM_KEY_SIZE + 1];
			if (scram_base64(&c, proof, sizeof(proof)) != SCRAM_KEY_SIZE ||
			    c.pos != c.len)
				return -1;
			memcpy(out->proof, proof, SCRAM_KEY_SIZE);
			out->without_proof_len = comma;
			return 0;
		}
		if (scram_extension(&c) < 0)
			return -1;
	}
}

int scram_parse_server_first(const char *msg, size_t len, struct scram_server_first *out,
			     const char **error_r)
{
	memset(out, 0, sizeof(*out));
	if (scram_message_ok(msg, len, error_r) < 0)
		return -1;
	struct scram_cursor c = {msg, len, 0};
	if (scram_at(&c, "m=")) {
		*error_r = "extensions-not-supported";
		return -1;
	}
	*error_r = "invalid-encoding";
	if (!scram_eat(&c, "r=") || scram_nonce(&c, &out->nonce_offset, &out->nonce_len) < 0)
		return -1;
	if (!scram_eat(&c, ",s="))
		return -1;
	long n = scram_base64(&c, out->salt, sizeof(out->salt));
	if (n <= 0)
		return -1;
	out->salt_len = (size_t)n;
	if (!scram_eat(&c, ",i="))
		return -1;
	size_t end = scram_value_end(&c);
	unsigned long long count = 0;
	if (end == c.pos || msg[c.pos] == '0' || end - c.pos > 10)
		return -1;
	for (size_t i = c.pos; i < end; i++) {
		if (msg[i] < '0' || msg[i] > '9')
			return -1;
		count = count * 10 + (unsigned)(msg[i] - '0');
	}
	if (count > SCRAM_MAX_ITERATIONS)
		return -1;
	out->iterations = (unsigned)count;
	c.pos = end;
	while (c.pos < c.len) {
		if (!scram_eat(&c, ",") || scram_extension(&c) < 0)
			return -1;
	}
	return 0;
}

int scram_parse_server_final(const char *msg, size_t len, struct scram_server_final *out,
			     const char **error_r)
{
	memset(out, 0, sizeof(*out));
	if (scram_message_ok(msg, len, error_r) < 0)
		return -1;
	*error_r = "invalid-encoding";
	struct scram_cursor c = {msg, len, 0};
	if (scram_eat(&c, "e=")) {
		size_t end = scram_value_end(&c);
		size_t n = end - c.pos;
		if (n == 0)
			return -1;
		if (n >= sizeof(out->error_text))
			n = sizeof(out->error_text) - 1;
		memcpy(out->error_text, msg + c.pos, n);
		out->error_text[n] = '\0';
		out->error = true;
		c.pos = end;
	} else if (scram_eat(&c, "v=")) {
		unsigned char sig[SCRAM_KEY_SIZE + 1];
		if (scram_base64(&c, sig, sizeof(sig)) != SCRAM_KEY_SIZE)
			return -1;
		memcpy(out->signature, sig, SCRAM_KEY_SIZE);
	} else {
		return -1;
	}
	while (c.pos < c.len) {
		if (!scram_eat(&c, ",") || scram_extension(&c) < 0)
			return -1;
	}
	return 0;
}

int scram_salted_password(const char *password, size_t password_len, const unsigned char *salt,
			  size_t salt_len, unsigned iterations,
			  unsigned char salted[SCRAM_KEY_SIZE])
{
	if (iterations == 0 || password_len > 0x7fffffff || salt_len > 0x7fffffff)
		return -1;
	return PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, (int)iterations,
				 EVP_sha256(), SCRAM_KEY_SIZE, salted) == 1
		   ? 0
		   : -1;
}

static void scram_hmac(const unsigned char key[SCRAM_KEY_SIZE], const void *data, size_t len,
		       unsigned char out[SCRAM_KEY_SIZE])
{
	unsigned int out_len = SCRAM_KEY_SIZE;
	HMAC(EVP_sha256(), key, SCRAM_KEY_SIZE, data, len, out, &out_len);
}

void scram_server_keys(const unsigned char salted[SCRAM_KEY_SIZE],
		       unsigned char stored_key[SCRAM_KEY_SIZE],
		       unsigned char server_key[SCRAM_KEY_SIZE])
{
	unsigned char client_key[SCRAM_KEY_SIZE];
	scram_hmac(salted, "Client Key", 10, client_key);
	SHA256(client_key, SCRAM_KEY_SIZE, stored_key);
	scram_hmac(salted, "Server Key", 10, server_key);
	OPENSSL_cleanse(client_key, sizeof(client_key));
}

void scram_client_proof(const unsigned char salted[SCRAM_KEY_SIZE], const char *auth_message,
			size_t auth_len, unsigned char proof[SCRAM_KEY_SIZE])
{
	unsigned char client_key[SCRAM_KEY_SIZE], stored_key[SCRAM_KEY_SIZE];
	unsigned char signature[SCRAM_KEY_SIZE];
	scram_hmac(salted, "Client Key", 10, client_key);
	SHA256(client_key, SCRAM_KEY_SIZE, stored_key);
	scram_hmac(stored_key, auth_message, auth_len, signature);
	for (size_t i = 0; i < SCRAM_KEY_SIZE; i++)
		proof[i] = client_key[i] ^ signature[i];
	OPENSSL_cleanse(client_key, sizeof(client_key));
}

bool scram_verify_proof(const unsigned char stored_key[SCRAM_KEY_SIZE], const char *auth_message,
			size_t auth_len, const unsigned char proof[SCRAM_KEY_SIZE])
{
	unsigned char signature[SCRAM_KEY_SIZE], client_key[SCRAM_KEY_SIZE];
	unsigned char computed[SCRAM_KEY_SIZE];
	scram_hmac(stored_key, auth_message, auth_len, signature);
	for (size_t i = 0; i < SCRAM_KEY_SIZE; i++)
		client_key[i] = proof[i] ^ signature[i];
	SHA256(client_key, SCRAM_KEY_SIZE, computed);
	bool ok = CRYPTO_memcmp(computed, stored_key, SCRAM_KEY_SIZE) == 0;
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return ok;
}

void scram_server_signature(const unsigned char server_key[SCRAM_KEY_SIZE],
			    const char *auth_message, size_t auth_len,
			    unsigned char signature[SCRAM_KEY_SIZE])
{
	scram_hmac(server_key, auth_message, auth_len, signature);
}

long scram_auth_message(const char *client_first_bare, size_t cfb_len, const char *server_first,
			size_t sf_len, const char *client_final, size_t cf_len, char *out,
			size_t out_size)
{
	size_t total = cfb_len + 1 + sf_len + 1 + cf_len;
	if (total + 1 > out_size)
		return -1;
	memcpy(out, client_first_bare, cfb_len);
	out[cfb_len] = ',';
	memcpy(out + cfb_len + 1, server_first, sf_len);
	out[cfb_len + 1 + sf_len] = ',';
	memcpy(out + cfb_len + 2 + sf_len, client_final, cf_len);
	out[total] = '\0';
	return (long)total;
}

long scram_saslname_encode(const char *name, char *out, size_t out_size)
{
	size_t n = 0;
	for (const char *p = name; *p != '\0'; p++) {
		const char *piece = *p == ',' ? "=2C" : *p == '=' ? "=3D" : NULL;
		size_t plen = piece != NULL ? 3 : 1;
		if (n + plen + 1 > out_size)
			return -1;
		if (piece != NULL)
			memcpy(out + n, piece, 3);
		else
			out[n] = *p;
		n += plen;
	}
	if (out_size == 0)
		return -1;
	out[n] = '\0';
	return (long)n;
}
