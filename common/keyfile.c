/*
 * keyfile: refuse private key files that other users can write, warn about ones they can
 * read, and read the key without leaving its PEM text behind (see keyfile.h for the rule). The
 * check runs on the opened file (fstat), so the file that was checked is the file that is read.
 */
#include "keyfile.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYFILE_MAX (1 << 20)

int keyfile_mode_ok(const char *path, uid_t owner, mode_t mode, struct err *err)
{
	mode &= 07777;
	if (mode & 0022)
		return err_set(err,
		               "private key %s may be written by %s (mode %04o): chmod 600 it (or "
		               "440 with a root owner and the daemon's group)",
		               path, (mode & 0002) ? "every user" : "its group", (unsigned)mode);
	return 0;
}

int keyfile_mode_readable(const char *path, uid_t owner, mode_t mode, struct err *err)
{
	mode &= 07777;
	if (mode & 0004) {
		err_set(err,
		        "private key %s is readable by every user (mode %04o); fine in a container "
		        "where no other user exists (a Kubernetes Secret mounted without "
		        "defaultMode), elsewhere chmod 600 it",
		        path, (unsigned)mode);
		return 1;
	}
	if ((mode & 0040) && owner != 0) {
		err_set(err,
		        "private key %s is readable by its group (mode %04o, owner uid %u); chmod "
		        "600 it unless that group is meant to read it",
		        path, (unsigned)mode, (unsigned)owner);
		return 1;
	}
	return 0;
}

/* The rule on a file's owner and mode: refuse, or accept and warn when others may read it. */
static int mode_check(const char *path, const struct stat *st, struct err *err)
{
	struct err w = {0};
	if (keyfile_mode_ok(path, st->st_uid, st->st_mode, err) < 0)
		return -1;
	if (keyfile_mode_readable(path, st->st_uid, st->st_mode, &w))
		log_warn("%s", w.msg);
	return 0;
}

int keyfile_check(const char *path, struct err *err)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return err_set(err, "cannot open private key %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return err_set(err, "private key %s is not a regular file", path);
	return mode_check(path, &st, err);
}

EVP_PKEY *keyfile_read_private(const char *path, struct err *err)
{
	struct stat st;
	EVP_PKEY *k = NULL;
	uint8_t *buf = NULL;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err_set(err, "cannot open private key %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err_set(err, "private key %s is not a regular file", path);
		goto out;
	}
	if (mode_check(path, &st, err) < 0)
		goto out;
	if (st.st_size <= 0 || st.st_size > KEYFILE_MAX) {
		err_set(err, "private key %s is empty or larger than 1 MiB", path);
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (buf == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	BIO *b = BIO_new_mem_buf(buf, (int)n);
	if (b != NULL)
		k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (k == NULL)
		err_set(err, "%s holds no PEM private key", path);
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, (size_t)st.st_size);
		free(buf);
	}
	close(fd);
	return k;
}
