/*
 * version: the one version string every ctrustee binary prints for -V/--version, the way
 * Trustee's binaries print theirs ("<name> <version>" on stdout, exit 0), so scripts and
 * image health checks that ask for it work unchanged.
 *
 * The string is made by the Makefile (build/gen/ctrustee_version.h): the nearest git tag as
 * `git describe` gives it, else the base version and the commit; only version.o depends on
 * it, so a new commit recompiles one file.
 */
#ifndef CTRUSTEE_VERSION_H
#define CTRUSTEE_VERSION_H

/* The version, e.g. "0.1.0+g1a2b3c4" (static storage). */
const char *version_string(void);
/* Prints "<name> <version>\n" on stdout. */
void version_print(const char *name);

#endif
