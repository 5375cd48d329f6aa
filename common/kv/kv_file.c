/*
 * kv_file: the file handling the two file backends (local_fs, local_json) share. Values are
 * secrets, so a read goes straight into one buffer with read(2) (no stdio buffer keeps a
 * second copy) and a write lands whole or not at all (temporary file, fsync, rename).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/kv_backend.h"

void kv_mkdirs(const char *path)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0700);
			*p = '/';
		}
	mkdir(tmp, 0700);
}

int kv_file_write_atomic(const char *path, const void *val, size_t len, struct err *err)
{
	char tmp[1100];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return err_set(err, "cannot write %s: %s", path, strerror(errno));
	if (write(fd, val, len) != (ssize_t)len || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return err_set(err, "cannot write %s: %s", path, strerror(errno));
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		return err_set(err, "cannot write %s: %s", path, strerror(errno));
	}
	return 0;
}

int kv_file_read(const char *path, uint8_t **val, size_t *len, struct err *err)
{
	struct stat st;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*val = NULL;
	if (fd < 0)
		return errno == ENOENT ? 1
		                       : err_set(err, "cannot read %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(err, "cannot read %s: not a regular file", path);
	}
	size_t size = (size_t)st.st_size;
	uint8_t *buf = malloc(size + 1);
	if (buf == NULL) {
		close(fd);
		return err_set(err, "cannot read %s: out of memory", path);
	}
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : 0;
			close(fd);
			kv_wipe_free(buf, got);
			return err_set(err, "cannot read %s: %s", path,
			               e ? strerror(e) : "it shrank while being read");
		}
		got += (size_t)n;
	}
	close(fd);
	buf[size] = 0;
	*val = buf;
	*len = size;
	return 0;
}
