/*
 * common/: base64 and hex (RFC 4648 vectors, strictness), SHA-2 by name, config loading,
 * JWK import, and the key-value store on every backend — Redis against a real
 * redis-server on a free port, including a restart in the middle.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <jansson.h>

#include "b64.h"
#include "config.h"
#include "hash.h"
#include "jose.h"
#include "kv.h"

static void test_b64_rfc4648_vectors(void **state)
{
	const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	for (int i = 0; i < 7; i++) {
		char *e = b64_encode((const uint8_t *)in[i], strlen(in[i]), B64_STD);
		assert_string_equal(e, std[i]);
		free(e);
		e = b64_encode((const uint8_t *)in[i], strlen(in[i]), B64_URL);
		assert_string_equal(e, url[i]);
		free(e);
		uint8_t *d;
		size_t n;
		assert_int_equal(b64_decode(std[i], strlen(std[i]), B64_STD, &d, &n), 0);
		assert_int_equal(n, strlen(in[i]));
		assert_memory_equal(d, in[i], n);
		free(d);
		assert_int_equal(b64_decode(url[i], strlen(url[i]), B64_URL, &d, &n), 0);
		assert_memory_equal(d, in[i], n);
		free(d);
	}
}

static void test_b64_strict_decoding_refuses_sloppy_input(void **state)
{
	uint8_t *d;
	size_t n;
	/* padding in base64url, missing padding in base64, wrong alphabet, non-zero tail bits */
	assert_int_equal(b64_decode("Zg==", 4, B64_URL, &d, &n), -1);
	assert_int_equal(b64_decode("Zg", 2, B64_STD, &d, &n), -1);
	assert_int_equal(b64_decode("-_8=", 4, B64_STD, &d, &n), -1);
	assert_int_equal(b64_decode("+/8", 3, B64_URL, &d, &n), -1);
	assert_int_equal(b64_decode("Zh==", 4, B64_STD, &d, &n), -1);
	assert_int_equal(b64_decode("Z", 1, B64_URL, &d, &n), -1);
	assert_int_equal(b64_decode("Zg==Zg==", 8, B64_STD, &d, &n), -1);
	/* lenient accepts either alphabet, optional padding and line breaks */
	assert_int_equal(b64_decode("Zm9v\nYmE", 8, B64_URL | B64_LENIENT, &d, &n), 0);
	assert_memory_equal(d, "fooba", 5);
	free(d);
	assert_int_equal(b64_decode("+/8=", 4, B64_URL | B64_LENIENT, &d, &n), 0);
	assert_int_equal(n, 2);
	free(d);
}

static void test_hex_round_trip_and_refusals(void **state)
{
	const uint8_t b[] = {0x00, 0xab, 0xff, 0x10};
	char *h = hex_encode(b, 4);
	uint8_t *d;
	size_t n;
	assert_string_equal(h, "00abff10");
	assert_int_equal(hex_decode("00ABff10", 8, &d, &n), 0);
	assert_memory_equal(d, b, 4);
	free(d);
	free(h);
	assert_int_equal(hex_decode("abc", 3, &d, &n), -1);
	assert_int_equal(hex_decode("zz", 2, &d, &n), -1);
}

static void test_hash_names_and_digests(void **state)
{
	uint8_t out[HASH_MAX];
	assert_int_equal(hash_alg_from_name("SHA384"), HASH_SHA384);
	assert_int_equal(hash_alg_from_name("sha-256"), HASH_SHA256);
	assert_int_equal(hash_alg_from_name("sm3"), HASH_NONE);
	assert_int_equal(hash_digest(HASH_SHA256, "abc", 3, out), 32);
	char *h = hex_encode(out, 32);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	free(h);
	assert_int_equal(hash_digest(HASH_SHA512, "", 0, out), 64);
	assert_int_equal(hash_len(HASH_SHA384), 48);
}

static void test_config_json_and_typed_getters(void **state)
{
	char path[] = "/tmp/ctrustee-cfg-XXXXXX.json";
	int fd = mkstemps(path, 5);
	const char *doc = "{\"a\":{\"b\":\"x\",\"n\":5,\"t\":true}}";
	assert_true(write(fd, doc, strlen(doc)) == (ssize_t)strlen(doc));
	close(fd);
	struct err err = {0};
	json_t *c = config_load(path, &err);
	assert_non_null(c);
	const char *s;
	long long n;
	bool t;
	assert_int_equal(config_string(c, "a.b", NULL, &s, &err), 0);
	assert_string_equal(s, "x");
	assert_int_equal(config_int(c, "a.n", 0, &n, &err), 0);
	assert_int_equal(n, 5);
	assert_int_equal(config_bool(c, "a.t", false, &t, &err), 0);
	assert_true(t);
	assert_int_equal(config_int(c, "a.missing", 7, &n, &err), 0);
	assert_int_equal(n, 7);
	assert_int_equal(config_int(c, "a.b", 0, &n, &err), -1);
	assert_non_null(strstr(err.msg, "a.b"));
	json_decref(c);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(write(fd, "{\"a\":", 5) == 5);
	close(fd);
	assert_null(config_load(path, &err));
	assert_non_null(strstr(err.msg, "line 1"));
	unlink(path);
	assert_null(config_load("/nonexistent/x.json", &err));
	assert_non_null(strstr(err.msg, "cannot open"));
}

static void test_jwk_import_checks_curves_and_sizes(void **state)
{
	struct err err = {0};
	/* RFC 7517 A.1 EC example key (P-256) */
	json_t *ec = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256", "x",
	                       "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y",
	                       "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM");
	EVP_PKEY *pk = jwk_to_pkey(ec, &err);
	assert_non_null(pk);
	EVP_PKEY_free(pk);
	/* a point off the curve is refused */
	json_object_set_new(ec, "y", json_string("4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyQ"));
	assert_null(jwk_to_pkey(ec, &err));
	/* short coordinates are refused */
	json_object_set_new(ec, "x", json_string("AAAA"));
	assert_null(jwk_to_pkey(ec, &err));
	assert_non_null(strstr(err.msg, "exactly 32"));
	json_decref(ec);
	json_t *bad = json_pack("{s:s}", "kty", "oct");
	assert_null(jwk_to_pkey(bad, &err));
	json_decref(bad);
	json_t *ed = json_pack("{s:s,s:s,s:s}", "kty", "OKP", "crv", "Ed25519", "x",
	                       "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
	pk = jwk_to_pkey(ed, &err);
	assert_non_null(pk);
	EVP_PKEY_free(pk);
	json_decref(ed);
}

/* the same behaviour on every backend */
static void kv_contract(struct kv *kv)
{
	struct err err = {0};
	uint8_t *v;
	size_t n;
	char **keys;
	size_t nk;

	assert_int_equal(kv_set(kv, "repository", "repo/type/tag", "secret", 6, 1, &err), 0);
	assert_int_equal(kv_get(kv, "repository", "repo/type/tag", &v, &n, &err), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(v, "secret", 6);
	free(v);
	assert_int_equal(kv_set(kv, "repository", "repo/type/tag", "other", 5, 0, &err), 1);
	assert_int_equal(kv_set(kv, "repository", "repo/type/tag", "bin\0ary", 7, 1, &err), 0);
	assert_int_equal(kv_get(kv, "repository", "repo/type/tag", &v, &n, &err), 0);
	assert_int_equal(n, 7);
	assert_memory_equal(v, "bin\0ary", 7);
	free(v);
	assert_int_equal(kv_get(kv, "repository", "absent", &v, &n, &err), 1);
	assert_int_equal(kv_set(kv, "repository", "a.b-c_d", "1", 1, 1, &err), 0);
	assert_int_equal(kv_list(kv, "repository", &keys, &nk, &err), 0);
	assert_int_equal(nk, 2);
	kv_list_free(keys, nk);
	assert_int_equal(kv_take(kv, "repository", "a.b-c_d", &v, &n, &err), 0);
	free(v);
	assert_int_equal(kv_get(kv, "repository", "a.b-c_d", &v, &n, &err), 1);
	assert_int_equal(kv_delete(kv, "repository", "repo/type/tag", &err), 0);
	assert_int_equal(kv_delete(kv, "repository", "repo/type/tag", &err), 1);
	assert_int_equal(kv_set(kv, "../etc", "k", "v", 1, 1, &err), -1);
	assert_int_equal(kv_set(kv, "repository", "", "v", 1, 1, &err), -1);
}

/* A JWE whose encrypted_key decrypts or unwraps to anything but a 32-byte content key is refused
 * with a sentence, however long the sender made it (an RSA key lets the sender choose up to the
 * modulus size; the fuzzer found an over-long AES-KW input written past the key buffer). */
static json_t *jwe_with_key(const char *alg, const json_t *epk, const uint8_t *ek, size_t ekl)
{
	json_t *h = json_pack("{s:s, s:s}", "alg", alg, "enc", "A256GCM");
	if (epk)
		json_object_set(h, "epk", (json_t *)epk);
	char *ht = json_dumps(h, JSON_COMPACT);
	char *hb = b64_encode((const uint8_t *)ht, strlen(ht), B64_URL);
	char *ekb = b64_encode(ek, ekl, B64_URL);
	json_t *jwe = json_pack("{s:s, s:s, s:s, s:s, s:s}", "protected", hb, "encrypted_key", ekb,
	                        "iv", "AAAAAAAAAAAAAAAA", "ciphertext", "AAAA", "tag",
	                        "AAAAAAAAAAAAAAAAAAAAAA");
	free(ht);
	free(hb);
	free(ekb);
	json_decref(h);
	return jwe;
}

static void test_jwe_decrypt_refuses_wrong_content_key_sizes(void **state)
{
	struct err err;
	uint8_t *plain = NULL, big[245], ek[512];
	size_t len = 0;
	memset(big, 0x41, sizeof(big));

	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	assert_non_null(rsa);
	const struct {
		const char *alg;
		int pad;
		size_t n;
	} cases[] = {{"RSA-OAEP-256", RSA_PKCS1_OAEP_PADDING, 190},
	             {"RSA1_5", RSA_PKCS1_PADDING, 245},
	             {"RSA1_5", RSA_PKCS1_PADDING, 16}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(rsa, NULL);
		size_t ekl = sizeof(ek);
		assert_int_equal(EVP_PKEY_encrypt_init(c), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(c, cases[i].pad), 1);
		if (cases[i].pad == RSA_PKCS1_OAEP_PADDING) {
			assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()), 1);
			assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()), 1);
		}
		assert_int_equal(EVP_PKEY_encrypt(c, ek, &ekl, big, cases[i].n), 1);
		EVP_PKEY_CTX_free(c);
		json_t *jwe = jwe_with_key(cases[i].alg, NULL, ek, ekl);
		assert_int_equal(jwe_decrypt(jwe, rsa, &plain, &len, &err), -1);
		assert_null(plain);
		assert_string_equal(err.msg, "content key is not 32 bytes");
		json_decref(jwe);
	}
	EVP_PKEY_free(rsa);

	EVP_PKEY *ec = EVP_EC_gen("P-256"), *eph = EVP_EC_gen("P-256");
	json_t *epk = jwk_from_pkey(eph, 0, &err);
	assert_non_null(epk);
	const size_t sizes[] = {0, 8, 24, 32, 48, 88, 400};
	memset(ek, 0xA6, sizeof(ek));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		json_t *jwe = jwe_with_key("ECDH-ES+A256KW", epk, ek, sizes[i]);
		assert_int_equal(jwe_decrypt(jwe, ec, &plain, &len, &err), -1);
		assert_null(plain);
		assert_non_null(strstr(err.msg, "ECDH-ES+A256KW wraps a 32-byte key in 40"));
		json_decref(jwe);
	}
	/* the right length with the wrong key fails the unwrap's integrity check */
	json_t *jwe = jwe_with_key("ECDH-ES+A256KW", epk, ek, 40);
	assert_int_equal(jwe_decrypt(jwe, ec, &plain, &len, &err), -1);
	assert_string_equal(err.msg, "cannot unwrap the content key");
	json_decref(jwe);
	json_decref(epk);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(eph);
}

static void test_kv_memory(void **state)
{
	struct err err = {0};
	struct kv *kv = kv_open(NULL, &err);
	assert_non_null(kv);
	assert_string_equal(kv_type_name(kv), "Memory");
	kv_contract(kv);
	kv_close(kv);
}

static void test_kv_local_fs_layout(void **state)
{
	char dir[] = "/tmp/ctrustee-kvfs-XXXXXX", path[256], cmd[300];
	struct err err = {0};
	assert_non_null(mkdtemp(dir));
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "LocalFs", "backends",
	                        "local_fs", "dir_path", dir);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	kv_contract(kv);
	assert_int_equal(kv_set(kv, "repository", "r/t/g", "x", 1, 1, &err), 0);
	snprintf(path, sizeof(path), "%s/repository/r\\x2Ft\\x2Fg", dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0); /* Trustee's file naming */
	assert_int_equal(kv_set(kv, "repository", "bad key!", "x", 1, 1, &err), -1);
	kv_close(kv);
	json_decref(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_kv_local_json_layout(void **state)
{
	char dir[] = "/tmp/ctrustee-kvjs-XXXXXX", path[256], cmd[300];
	struct err err = {0};
	assert_non_null(mkdtemp(dir));
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "local_json", "backends",
	                        "local_json", "file_dir_path", dir);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	kv_contract(kv);
	assert_int_equal(kv_set(kv, "kbs", "resource-policy.rego", "\xfb\xff", 2, 1, &err), 0);
	snprintf(path, sizeof(path), "%s/kbs", dir);
	json_t *doc = json_load_file(path, 0, NULL);
	assert_non_null(doc);
	/* values are URL-safe padded base64 */
	assert_string_equal(json_string_value(json_object_get(doc, "resource-policy.rego")),
	                    "-_8=");
	json_decref(doc);
	kv_close(kv);
	json_decref(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	getsockname(s, (struct sockaddr *)&a, &l);
	close(s);
	return ntohs(a.sin_port);
}

static pid_t start_redis(int port)
{
	char p[16];
	snprintf(p, sizeof(p), "%d", port);
	pid_t pid = fork();
	if (pid == 0) {
		freopen("/dev/null", "w", stdout);
		execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save",
		       "", "--appendonly", "no", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_port = htons((uint16_t)port),
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(s);
		if (ok)
			return pid;
		usleep(50000);
	}
	fail_msg("redis-server did not start");
	return -1;
}

static void stop_redis(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static void test_kv_redis_with_restart(void **state)
{
	int port = free_port();
	char url[64];
	struct err err = {0};
	uint8_t *v;
	size_t n;
	pid_t pid = start_redis(port);

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	unsetenv("REDIS_URL");
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "Redis", "backends", "redis",
	                        "url", url);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	kv_contract(kv);
	/* TTL: the key disappears */
	assert_int_equal(kv_set_ttl(kv, "kbs_protocol_session", "s1", "x", 1, 1, 1, &err), 0);
	assert_int_equal(kv_get(kv, "kbs_protocol_session", "s1", &v, &n, &err), 0);
	free(v);
	sleep(2);
	assert_int_equal(kv_get(kv, "kbs_protocol_session", "s1", &v, &n, &err), 1);
	/* outage: a clear error, then recovery on its own once Redis is back */
	stop_redis(pid);
	assert_int_equal(kv_get(kv, "repository", "k", &v, &n, &err), -1);
	char want[96];
	snprintf(want, sizeof(want), "redis at 127.0.0.1:%d unavailable: ", port);
	assert_non_null(strstr(err.msg, want));
	pid = start_redis(port);
	assert_int_equal(kv_set(kv, "repository", "k", "v", 1, 1, &err), 0);
	assert_int_equal(kv_get(kv, "repository", "k", &v, &n, &err), 0);
	free(v);
	kv_close(kv);
	json_decref(cfg);
	stop_redis(pid);
}

/* Clients connected to the Redis on `port`, this probe's own connection excluded. */
static long long redis_clients(int port)
{
	redisContext *c = redisConnect("127.0.0.1", port);
	assert_true(c != NULL && c->err == 0);
	redisReply *r = redisCommand(c, "INFO clients");
	assert_non_null(r);
	const char *at = strstr(r->str, "connected_clients:");
	assert_non_null(at);
	long long n = atoll(at + strlen("connected_clients:")) - 1;
	freeReplyObject(r);
	redisFree(c);
	return n;
}

struct reader {
	struct kv *kv;
	int rc;
};

static void *read_once(void *arg)
{
	struct reader *r = arg;
	struct err err = {0};
	uint8_t *v = NULL;
	size_t n;
	r->rc = kv_get(r->kv, "repository", "shared", &v, &n, &err);
	free(v);
	return NULL;
}

/* Callers run on their own connections, at most pool_size of them: with Redis stopped
 * (SIGSTOP) every reader holds its connection until Redis answers again. A failed connection
 * takes the idle ones with it, so a restart costs one retry, not one per connection. */
static void test_kv_redis_pool_bounds_concurrent_connections(void **state)
{
	int port = free_port();
	char url[64];
	struct err err = {0};
	pid_t pid = start_redis(port);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	unsetenv("REDIS_URL");
	json_t *bad = json_pack("{s:s,s:{s:{s:s,s:i}}}", "storage_type", "Redis", "backends",
	                        "redis", "url", url, "pool_size", 0);
	assert_null(kv_open(bad, &err));
	assert_non_null(strstr(err.msg, "pool_size"));
	json_decref(bad);
	json_t *cfg = json_pack("{s:s,s:{s:{s:s,s:i}}}", "storage_type", "Redis", "backends",
	                        "redis", "url", url, "pool_size", 4);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	assert_int_equal(kv_set(kv, "repository", "shared", "v", 1, 1, &err), 0);
	assert_int_equal(redis_clients(port), 1); /* one opened at start, reused */
	struct reader rd[6];
	pthread_t t[6];
	kill(pid, SIGSTOP);
	for (int i = 0; i < 6; i++) {
		rd[i] = (struct reader){kv, -2};
		assert_int_equal(pthread_create(&t[i], NULL, read_once, &rd[i]), 0);
	}
	usleep(500 * 1000); /* all six are waiting: four on Redis, two for a connection */
	kill(pid, SIGCONT);
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(rd[i].rc, 0);
	}
	assert_int_equal(redis_clients(port), 4);
	/* after a restart all four are dead: the first call still succeeds, on a new one */
	stop_redis(pid);
	pid = start_redis(port);
	assert_int_equal(kv_set(kv, "repository", "shared", "w", 1, 1, &err), 0);
	assert_int_equal(redis_clients(port), 1);
	kv_close(kv);
	json_decref(cfg);
	stop_redis(pid);
}

static void test_kv_refuses_unknown_backend(void **state)
{
	struct err err = {0};
	json_t *cfg = json_pack("{s:s}", "storage_type", "Postgresql");
	assert_null(kv_open(cfg, &err));
	assert_non_null(strstr(err.msg, "Postgresql"));
	json_decref(cfg);
	assert_true(kv_key_valid("default/key/read"));
	assert_false(kv_key_valid("a:b"));
	assert_false(kv_key_valid(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_b64_rfc4648_vectors),
	    cmocka_unit_test(test_b64_strict_decoding_refuses_sloppy_input),
	    cmocka_unit_test(test_hex_round_trip_and_refusals),
	    cmocka_unit_test(test_hash_names_and_digests),
	    cmocka_unit_test(test_config_json_and_typed_getters),
	    cmocka_unit_test(test_jwk_import_checks_curves_and_sizes),
	    cmocka_unit_test(test_jwe_decrypt_refuses_wrong_content_key_sizes),
	    cmocka_unit_test(test_kv_memory),
	    cmocka_unit_test(test_kv_local_fs_layout),
	    cmocka_unit_test(test_kv_local_json_layout),
	    cmocka_unit_test(test_kv_redis_with_restart),
	    cmocka_unit_test(test_kv_redis_pool_bounds_concurrent_connections),
	    cmocka_unit_test(test_kv_refuses_unknown_backend),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
