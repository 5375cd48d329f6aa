/*
 * nebula_ca: the `nebula-ca` plugin (kbs-protocol.md §7.1), the row kbs_plugin_nebula_ca. The
 * kbs is the certificate authority of a Nebula overlay network: an attested node asks
 *
 *   GET /kbs/v0/nebula-ca/credential?name=<node>&ip=<a.b.c.d/n>[&duration=&groups=&subnets=]
 *
 * and receives, encrypted to its key, {"node_crt","node_key","ca_crt"} (each a JSON array of
 * bytes, as Trustee answers). The work is done by the `nebula-cert` program
 * (nebula_cert_bin_path, default found in PATH): at start-up a self-signed CA is created under
 * `work_dir`/ca unless one is there (ca_config names its options); per request `sign` writes a
 * node key and certificate into a fresh directory under work_dir, `verify` checks it against
 * the CA, and the directory is removed after the files are read (the key wiped).
 *
 * Nothing reaches the command line unchecked: the program is started with posix_spawnp and an
 * argument vector (no shell), and every value from a request is validated first: a name of
 * letters, digits, '.', '_', '-' starting with a letter or digit; the ip an IPv4 address with a
 * prefix length; subnets a comma list of such; groups a comma list of names; a duration of
 * Go's form (e.g. "8h", "1h30m"). ca_config values are checked the same way. Each run is
 * bounded by a deadline, after which the program is killed.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kbs/kbs.h"
#include "log.h"

#define NEB_DEFAULT_WORK_DIR "/opt/confidential-containers/kbs/nebula-ca"
#define NEB_RUN_TIMEOUT_MS 20000
#define NEB_MAX_FILE (64 * 1024)
#define NEB_MAX_ARGS 32

extern char **environ;

struct neb {
	char *bin;
	char *work_dir;
	char *ca_crt, *ca_key;
};

static void neb_free(void *st)
{
	struct neb *n = st;
	if (!n)
		return;
	free(n->bin);
	free(n->work_dir);
	free(n->ca_crt);
	free(n->ca_key);
	free(n);
}

/* ------------------------------------------------------------ validation */

static int is_name(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max || !isalnum((unsigned char)s[0]))
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return 0;
	return 1;
}

static int is_cidr4(const char *s, size_t len)
{
	char buf[32];
	const char *slash = memchr(s, '/', len);
	if (!slash || (size_t)(slash - s) >= sizeof(buf) || len - (size_t)(slash - s) > 3 ||
	    len - (size_t)(slash - s) < 2)
		return 0;
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	struct in_addr a;
	if (inet_pton(AF_INET, buf, &a) != 1)
		return 0;
	int bits = 0;
	for (const char *p = slash + 1; p < s + len; p++) {
		if (!isdigit((unsigned char)*p))
			return 0;
		bits = bits * 10 + (*p - '0');
	}
	return bits <= 32;
}

/* A comma list whose every item passes `one`. */
static int is_list(const char *s, int (*one)(const char *, size_t))
{
	size_t n = strlen(s);
	if (n == 0 || n > 1024)
		return 0;
	for (const char *p = s;;) {
		const char *c = strchr(p, ',');
		size_t l = c ? (size_t)(c - p) : strlen(p);
		if (!one(p, l))
			return 0;
		if (!c)
			return 1;
		p = c + 1;
	}
}

static int group_item(const char *s, size_t l)
{
	char buf[65];
	if (l == 0 || l >= sizeof(buf))
		return 0;
	memcpy(buf, s, l);
	buf[l] = '\0';
	return is_name(buf, 64);
}

/* Go time.ParseDuration's positive form: one or more <digits>[.<digits>]<unit>. */
static int is_duration(const char *s)
{
	static const char *const units[] = {"ns", "us", "ms", "s", "m", "h"};
	if (!*s || strlen(s) > 32)
		return 0;
	while (*s) {
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
		if (*s == '.') {
			s++;
			if (!isdigit((unsigned char)*s))
				return 0;
			while (isdigit((unsigned char)*s))
				s++;
		}
		size_t i, ul = 0;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			ul = strlen(units[i]);
			if (!strncmp(s, units[i], ul) && !(ul == 1 && s[0] == 'm' && s[1] == 's'))
				break;
		}
		if (i == sizeof(units) / sizeof(units[0]))
			return 0;
		s += ul;
	}
	return 1;
}

/* ------------------------------------------------------------ running nebula-cert */

/* Runs bin with argv (argv[0] is bin), stdout discarded, stderr kept (first line) for err. */
static int run(const struct neb *n, char *const argv[], struct err *err)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return err_set(err, "nebula-ca: pipe: %s", strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	pid_t pid;
	int rc = posix_spawnp(&pid, n->bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		return err_set(err, "nebula-ca: cannot run %s: %s", n->bin, strerror(rc));
	}
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	char msg[512];
	size_t ml = 0;
	int status = 0, done = 0;
	for (int waited = 0; !done; waited += 10) {
		ssize_t r = read(pfd[0], msg + ml, sizeof(msg) - 1 - ml);
		if (r > 0)
			ml += (size_t)r;
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			done = 1;
		else if (waited >= NEB_RUN_TIMEOUT_MS) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(pfd[0]);
			return err_set(err, "nebula-ca: %s %s did not finish within %d s", n->bin,
			               argv[1], NEB_RUN_TIMEOUT_MS / 1000);
		} else {
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	ssize_t r = read(pfd[0], msg + ml, sizeof(msg) - 1 - ml);
	if (r > 0)
		ml += (size_t)r;
	close(pfd[0]);
	msg[ml] = '\0';
	char *nl = strchr(msg, '\n');
	if (nl)
		*nl = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return err_set(err, "nebula-ca: %s %s failed: %.300s", n->bin, argv[1],
		               ml ? msg : "no message");
	return 0;
}

/* Appends "-flag value" for a string member of obj, validated by check (NULL: is_name). */
static int opt(char **argv, int *argc, const json_t *obj, const char *key, const char *flag,
               int (*check)(const char *), struct err *err)
{
	const json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	const char *s = json_string_value(v);
	if (!s || !check(s))
		return err_set(err, "nebula-ca: `%s` is not a valid value", key);
	if (*argc + 2 >= NEB_MAX_ARGS)
		return err_set(err, "nebula-ca: too many options");
	argv[(*argc)++] = (char *)flag;
	argv[(*argc)++] = (char *)s;
	return 0;
}

static int chk_name(const char *s)
{
	return is_name(s, 253);
}
static int chk_cidr(const char *s)
{
	return is_cidr4(s, strlen(s));
}
static int chk_cidrs(const char *s)
{
	return is_list(s, is_cidr4);
}
static int chk_groups(const char *s)
{
	return is_list(s, group_item);
}
/* a CA name is free text for people, but printable and not a flag */
static int chk_ca_name(const char *s)
{
	if (!*s || *s == '-' || strlen(s) > 128)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void *neb_open(const json_t *cfg, struct err *err)
{
	const char *wd = json_string_value(json_object_get(cfg, "work_dir"));
	const char *bin = json_string_value(json_object_get(cfg, "nebula_cert_bin_path"));
	const json_t *ca = json_object_get(cfg, "ca_config");
	struct neb *n = calloc(1, sizeof(*n));
	if (!n) {
		err_set(err, "out of memory");
		return NULL;
	}
	n->bin = strdup(bin ? bin : "nebula-cert");
	n->work_dir = strdup(wd ? wd : NEB_DEFAULT_WORK_DIR);
	if (!n->bin || !n->work_dir || asprintf(&n->ca_crt, "%s/ca/ca.crt", n->work_dir) < 0 ||
	    asprintf(&n->ca_key, "%s/ca/ca.key", n->work_dir) < 0) {
		err_set(err, "out of memory");
		goto fail;
	}
	if (n->work_dir[0] != '/') {
		err_set(err, "[[plugins]] nebula-ca: work_dir must be an absolute path");
		goto fail;
	}
	char *dir = NULL;
	if (asprintf(&dir, "%s/ca", n->work_dir) < 0)
		goto fail;
	mkdir(n->work_dir, 0700);
	int mk = mkdir(dir, 0700) == 0 || errno == EEXIST;
	free(dir);
	if (!mk) {
		err_set(err, "[[plugins]] nebula-ca: cannot create %s/ca: %s", n->work_dir,
		        strerror(errno));
		goto fail;
	}
	char *ver[] = {n->bin, "-version", NULL};
	if (run(n, ver, err) != 0) {
		err_prefix(err, "[[plugins]] nebula-ca: nebula_cert_bin_path");
		goto fail;
	}
	int has_crt = access(n->ca_crt, F_OK) == 0, has_key = access(n->ca_key, F_OK) == 0;
	if (!has_crt && !has_key) {
		char *argv[NEB_MAX_ARGS] = {n->bin, "ca", "-name", "Trustee Nebula CA plugin"};
		int argc = 4;
		if (ca && !json_is_object(ca)) {
			err_set(err, "[[plugins]] nebula-ca: ca_config must be a table");
			goto fail;
		}
		const char *name = json_string_value(json_object_get(ca, "name"));
		if (name && !chk_ca_name(name)) {
			err_set(err, "[[plugins]] nebula-ca: ca_config.name is not a valid value");
			goto fail;
		}
		if (name)
			argv[3] = (char *)name;
		if (opt(argv, &argc, ca, "duration", "-duration", is_duration, err) ||
		    opt(argv, &argc, ca, "groups", "-groups", chk_groups, err) ||
		    opt(argv, &argc, ca, "ips", "-ips", chk_cidrs, err) ||
		    opt(argv, &argc, ca, "subnets", "-subnets", chk_cidrs, err) ||
		    opt(argv, &argc, ca, "curve", "-curve", chk_name, err))
			goto fail;
		argv[argc++] = "-out-crt";
		argv[argc++] = n->ca_crt;
		argv[argc++] = "-out-key";
		argv[argc++] = n->ca_key;
		argv[argc] = NULL;
		if (run(n, argv, err) != 0)
			goto fail;
		log_info("kbs: nebula-ca: self-signed Nebula CA created in %s/ca", n->work_dir);
	} else if (!has_crt || !has_key) {
		err_set(err, "[[plugins]] nebula-ca: %s/ca holds only one of ca.crt and ca.key",
		        n->work_dir);
		goto fail;
	}
	return n;
fail:
	neb_free(n);
	return NULL;
}

/* ------------------------------------------------------------ requests */

static int read_file(const char *path, json_t **bytes, int wipe, struct err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return err_set(err, "nebula-ca: cannot read %s", strrchr(path, '/') + 1);
	uint8_t buf[NEB_MAX_FILE];
	size_t n = fread(buf, 1, sizeof(buf), f);
	int big = !feof(f);
	fclose(f);
	if (big || n == 0)
		return err_set(err, "nebula-ca: %s is empty or too large", strrchr(path, '/') + 1);
	*bytes = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(*bytes, json_integer(buf[i]));
	if (wipe)
		OPENSSL_cleanse(buf, n);
	return 0;
}

static void remove_dir(const char *dir, const char *key, const char *crt)
{
	unlink(key);
	unlink(crt);
	rmdir(dir);
}

static int neb_validate_auth(void *st, const struct kbs_plugin_req *q, struct err *err)
{
	return 0;
}

static int neb_needs_encryption(void *st, const struct kbs_plugin_req *q, struct err *err)
{
	return 1;
}

static int neb_handle(void *st, const struct kbs_plugin_req *q, uint8_t **out, size_t *len,
                      struct err *err)
{
	struct neb *n = st;
	const char *seg = json_string_value(json_array_get(q->path, 0));
	*out = NULL;
	*len = 0;
	if (json_array_size(q->path) != 1 || !seg || strcmp(seg, "credential"))
		return err_set(err, "nebula-ca: only GET credential is served");
	if (strcmp(q->method, "GET"))
		return err_set(err, "nebula-ca: only GET is supported");
	const char *name = json_string_value(json_object_get(q->query, "name"));
	const char *ip = json_string_value(json_object_get(q->query, "ip"));
	if (!name || !chk_name(name))
		return err_set(err, "nebula-ca: `name` is missing or not a valid node name");
	if (!ip || !chk_cidr(ip))
		return err_set(err, "nebula-ca: `ip` is missing or not an IPv4 address with a "
		                    "prefix length");
	char *argv[NEB_MAX_ARGS] = {n->bin, "sign", "-name", (char *)name, "-ip", (char *)ip};
	int argc = 6;
	if (opt(argv, &argc, q->query, "duration", "-duration", is_duration, err) ||
	    opt(argv, &argc, q->query, "groups", "-groups", chk_groups, err) ||
	    opt(argv, &argc, q->query, "subnets", "-subnets", chk_cidrs, err))
		return -1;
	char dir[4096], key[4200], crt[4200];
	snprintf(dir, sizeof(dir), "%s/cred-XXXXXX", n->work_dir);
	if (!mkdtemp(dir))
		return err_set(err, "nebula-ca: cannot make a directory in work_dir: %s",
		               strerror(errno));
	snprintf(key, sizeof(key), "%s/node.key", dir);
	snprintf(crt, sizeof(crt), "%s/node.crt", dir);
	argv[argc++] = "-ca-key";
	argv[argc++] = n->ca_key;
	argv[argc++] = "-ca-crt";
	argv[argc++] = n->ca_crt;
	argv[argc++] = "-out-key";
	argv[argc++] = key;
	argv[argc++] = "-out-crt";
	argv[argc++] = crt;
	argv[argc] = NULL;
	char *verify[] = {n->bin, "verify", "-ca", n->ca_crt, "-crt", crt, NULL};
	json_t *nk = NULL, *nc = NULL, *cc = NULL;
	int rc = -1;
	if (run(n, argv, err) == 0 && run(n, verify, err) == 0 &&
	    read_file(crt, &nc, 0, err) == 0 && read_file(key, &nk, 1, err) == 0 &&
	    read_file(n->ca_crt, &cc, 0, err) == 0) {
		json_t *o =
		    json_pack("{s:O,s:O,s:O}", "node_crt", nc, "node_key", nk, "ca_crt", cc);
		char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (text) {
			*out = (uint8_t *)text;
			*len = strlen(text);
			rc = 0;
			log_info("kbs: nebula-ca: credential issued for %s (%s)", name, ip);
		} else {
			err_set(err, "out of memory");
		}
	}
	json_decref(nk);
	json_decref(nc);
	json_decref(cc);
	remove_dir(dir, key, crt);
	return rc;
}

const struct kbs_plugin kbs_plugin_nebula_ca = {
    .name = "nebula-ca",
    .open = neb_open,
    .free = neb_free,
    .validate_auth = neb_validate_auth,
    .handle = neb_handle,
    .needs_encryption = neb_needs_encryption,
};
