/*
 * dlib: open a library on first use and resolve its symbols (dlib.h). The pointers are filled
 * through void ** because dlsym returns a data pointer (POSIX guarantees the conversion).
 */
#include "dlib.h"

#include <dlfcn.h>

int dlib_open(const char *soname, const struct dlib_sym *syms, size_t n, struct err *err)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *why = dlerror();
		return err_set(err, "%s could not be loaded: %s", soname,
		               why ? why : "unknown error");
	}
	for (size_t i = 0; i < n; i++) {
		*syms[i].slot = dlsym(h, syms[i].name);
		if (*syms[i].slot == NULL)
			return err_set(err, "%s has no %s", soname, syms[i].name);
	}
	return 0;
}
