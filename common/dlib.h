/*
 * dlib: a shared library opened when a daemon first needs it, not at exec.
 *
 * Why: libcurl and libpq serve paths most deployments never take (outbound fetches of
 * collateral or JWK sets, the Postgres store), yet linked at exec they and what they pull in
 * (GnuTLS, Kerberos, LDAP, SASL, nghttp2, libssh2, ...: about 30 libraries) were mapped,
 * relocated and partly faulted into every daemon: ~4 MB of the ~22 MB an idle kbs or
 * grpc-as kept resident. A module that wants such a library lists the symbols it calls in a
 * table and calls them through the pointers dlib_open fills, once, on first use.
 */
#ifndef CTRUSTEE_DLIB_H
#define CTRUSTEE_DLIB_H

#include <stddef.h>

#include "err.h"

/* One symbol: its name and where its address goes. */
struct dlib_sym {
	const char *name;
	void **slot;
};

/* Opens `soname` (the runtime name, e.g. "libcurl.so.4") and fills every slot; a library or
 * a symbol that is missing fails with a sentence naming it. The library stays loaded for the
 * life of the process. Not thread-safe by itself: call it under the module's pthread_once. */
int dlib_open(const char *soname, const struct dlib_sym *syms, size_t n, struct err *err);

#define DLIB_SYM(table, name)                                                                      \
	{                                                                                          \
#name, (void **)&(table).name                                                      \
	}

#endif
