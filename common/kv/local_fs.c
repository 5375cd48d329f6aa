/*
 * kv local_fs backend ("LocalFs"): one file per key, Trustee's layout
 * <dir_path>/<namespace>/<key with each '/' written as the 4 characters \x2F>, so a
 * directory Trustee wrote reads the same here. Keys are validated (they become file names):
 * their characters by kv.c, their length here, since a file name holds at most NAME_MAX (255)
 * bytes, the temporary name of a write included; an over-long key is refused with a sentence that
 * names no server path. kv.c serialises calls. No expiry: a TTL is not kept on disk.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/kv_backend.h"

#define LOCAL_FS_DEFAULT_DIR "/opt/confidential-containers/storage/local_fs"
/* the longest encoded key: a file name, with room for kv_file_write_atomic's ".tmp.<pid>" */
#define KEY_NAME_MAX (NAME_MAX - 12)

struct local_fs {
	char dir[512]; /* dir_path */
};

static void *fs_open(const json_t *backends, struct err *err)
{
	const json_t *o = json_object_get(backends, "local_fs");
	if (backends != NULL && o == NULL) {
		err_set(err, "storage_backend.backends.local_fs is required for LocalFs");
		return NULL;
	}
	struct local_fs *fs = calloc(1, sizeof(*fs));
	if (fs == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	const char *dir = json_string_value(json_object_get(o, "dir_path"));
	snprintf(fs->dir, sizeof(fs->dir), "%s", dir ? dir : LOCAL_FS_DEFAULT_DIR);
	return fs;
}

static void fs_close(void *state)
{
	free(state);
}

/* The file of key in namespace ns; -1 with a sentence when the key cannot be a file name. */
static int fs_path(const struct local_fs *fs, const char *ns, const char *key, char *out,
                   size_t cap, struct err *err)
{
	size_t name = 0;

	for (const char *p = key; *p; p++)
		name += *p == '/' ? 4 : 1;
	if (name > KEY_NAME_MAX)
		return err_set(
		    err,
		    "storage key of %zu bytes is too long for the LocalFs store (at most "
		    "%d bytes, each '/' taking 4)",
		    strlen(key), KEY_NAME_MAX);
	size_t o = (size_t)snprintf(out, cap, "%s/%s/", fs->dir, ns);
	for (const char *p = key; *p && o + 5 < cap; p++) {
		if (*p == '/') {
			memcpy(out + o, "\\x2F", 4);
			o += 4;
		} else {
			out[o++] = *p;
		}
	}
	out[o < cap ? o : cap - 1] = '\0';
	return 0;
}

static int fs_set(void *state, const char *ns, const char *key, const void *val, size_t len,
                  int overwrite, unsigned ttl, struct err *err)
{
	struct local_fs *fs = state;
	char dir[700], path[1024];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/%s", fs->dir, ns);
	if (fs_path(fs, ns, key, path, sizeof(path), err) < 0)
		return -1;
	kv_mkdirs(dir);
	if (!overwrite && stat(path, &st) == 0)
		return 1;
	return kv_file_write_atomic(path, val, len, err);
}

static int fs_get(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                  struct err *err)
{
	char path[1024];
	if (fs_path(state, ns, key, path, sizeof(path), err) < 0)
		return -1;
	return kv_file_read(path, val, len, err);
}

static int fs_take(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                   struct err *err)
{
	char path[1024];
	if (fs_path(state, ns, key, path, sizeof(path), err) < 0)
		return -1;
	int rc = kv_file_read(path, val, len, err);
	if (rc != 0 || unlink(path) == 0)
		return rc;
	/* not taken by us: another process sharing the directory unlinked it first (then it
	 * was theirs, single use), or it cannot be removed (then it must not be handed out) */
	int e = errno;
	kv_wipe_free(*val, *len);
	*val = NULL;
	*len = 0;
	return e == ENOENT ? 1 : err_set(err, "cannot delete %s: %s", path, strerror(e));
}

static int fs_del(void *state, const char *ns, const char *key, struct err *err)
{
	char path[1024];
	if (fs_path(state, ns, key, path, sizeof(path), err) < 0)
		return -1;
	if (unlink(path) == 0)
		return 0;
	return errno == ENOENT ? 1 : err_set(err, "cannot delete %s: %s", path, strerror(errno));
}

static int fs_list(void *state, const char *ns, char ***keys, size_t *n, struct err *err)
{
	const struct local_fs *fs = state;
	char ns_dir[700];
	size_t cap = 0;
	snprintf(ns_dir, sizeof(ns_dir), "%s/%s", fs->dir, ns);
	DIR *d = opendir(ns_dir);
	struct dirent *de;
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char name[512];
		size_t o = 0;
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp.") != NULL)
			continue;
		for (const char *p = de->d_name; *p && o + 1 < sizeof(name); p++) {
			if (strncmp(p, "\\x2F", 4) == 0) {
				name[o++] = '/';
				p += 3;
			} else {
				name[o++] = *p;
			}
		}
		name[o] = '\0';
		if (kv_keys_push(keys, n, &cap, name) < 0) {
			closedir(d);
			return err_set(err, "out of memory");
		}
	}
	closedir(d);
	return 0;
}

const struct kv_backend kv_backend_local_fs = {
    .name = "LocalFs",
    .alias = "local_fs",
    .validates_keys = 1,
    .serialized = 1,
    .open = fs_open,
    .close = fs_close,
    .set = fs_set,
    .get = fs_get,
    .take = fs_take,
    .del = fs_del,
    .list = fs_list,
};
