/*
 * version: see version.h. The generated header defines CTRUSTEE_VERSION; a build without
 * the Makefile's rule (a fuzz harness, an IDE) still compiles, as "unknown".
 */
#include <stdio.h>

#include "version.h"

#if __has_include("ctrustee_version.h")
#include "ctrustee_version.h"
#endif
#ifndef CTRUSTEE_VERSION
#define CTRUSTEE_VERSION "unknown"
#endif

const char *version_string(void)
{
	return CTRUSTEE_VERSION;
}

void version_print(const char *name)
{
	printf("%s %s\n", name, CTRUSTEE_VERSION);
	fflush(stdout);
}
