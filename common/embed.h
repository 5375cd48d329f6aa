/*
 * embed: put a file's bytes into the binary at build time, NUL-terminated, as a const char
 * array named `sym` (default policies, vendor root certificates). The Makefile scans sources
 * for EMBED_FILE and makes the object depend on the file, so editing a .rego or .pem rebuilds
 * what embeds it. `path` is relative to the repository root, where make runs the compiler.
 */
#ifndef CTRUSTEE_EMBED_H
#define CTRUSTEE_EMBED_H

#define EMBED_FILE(sym, path)                                                                      \
	__asm__(".section .rodata\n.global " #sym "\n.type " #sym ", @object\n" #sym               \
	        ":\n.incbin \"" path "\"\n.byte 0\n.previous\n");                                  \
	extern const char sym[]

#endif
