# ctrustee: one entry point. Sources are found by wildcard so a new module needs no Makefile edit:
#   common/*.c common/{rego,kv,jose}/*.c                         -> build/lib/libcommon.a
#   as/*.c as/{verifiers,evidence,collateral}/*.c                -> build/lib/libas.a
#   kbs/*.c kbs/*/*.c -> libkbs.a, rvps/*.c rvps/extractors/*.c   -> librvps.a
#   any */main_<name>.c is a program, built to build/bin/<name with _ as ->
#   tests/unit/test_*.c, tests/conformance/*.c -> build/tests/...
# Every program links the four archives as one group, not whole: the linker takes only the
# objects a program reaches (tables reference their rows strongly), and --as-needed drops the
# shared libraries it does not call, so `evidence-verify` and `rego` carry no gRPC or hiredis.
SHELL := /bin/bash
CC ?= cc
B := build
PKGS := openssl jansson libevent libevent_pthreads libevent_openssl hiredis libcurl libprotobuf-c libnghttp2 libpcre2-8 yaml-0.1 libcbor xmlsec1-openssl libpq
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
OPT ?= -O2
SAN ?=
CFLAGS += -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
	-fno-strict-aliasing -D_GNU_SOURCE -I. -Icommon -I$(B)/gen $(PKG_CFLAGS) -MMD -MP $(SAN)
LDFLAGS += $(SAN) -Wl,--as-needed
LDLIBS += $(PKG_LIBS) -lpthread -lm
# The daemons that allocate and free at the request rate on several threads link jemalloc:
# under glibc's malloc the kbs's loops and workers queued on its arena lock (~15 futex calls
# per handshake at 64 attesters), and jemalloc's per-thread caches and per-size-class locks
# took ~20% off the kbs's CPU per handshake (make bench). Not under sanitizers, which bring
# their own allocator. common/memtune.c tunes whichever allocator a daemon runs on. grpc-as too:
# malloc/free were ~95K of its 749K instructions per handshake under glibc, 27K under jemalloc
# (callgrind, 4 attesters: 749K -> 681K), for +2 MB idle RSS (8.3 -> 10.3 MB). Not the rvps:
# -7% of its 28K instructions a query, for the same +2 MB on a 5 MB daemon.
MALLOC_BINS := kbs grpc-as
MALLOC_LIB := $(if $(SAN),,-Wl,--no-as-needed -ljemalloc -Wl,--as-needed)

PROTOS := $(wildcard proto/*.proto)
GEN_C := $(patsubst proto/%.proto,$(B)/gen/%.pb-c.c,$(PROTOS))
GEN_H := $(GEN_C:.c=.h)
GEN_PY := $(patsubst proto/%.proto,$(B)/gen/py/%_pb2.py,$(PROTOS))

mains = $(wildcard $(1)/main_*.c)
srcs = $(filter-out $(foreach d,$(1),$(wildcard $(d)/main_*.c)),$(foreach d,$(1),$(wildcard $(d)/*.c)))
COMMON_SRC := $(call srcs,common common/rego common/kv common/jose) $(GEN_C)
AS_SRC := $(call srcs,as as/verifiers as/evidence as/collateral)
KBS_SRC := $(call srcs,kbs $(wildcard kbs/*/))
RVPS_SRC := $(call srcs,rvps rvps/extractors)
obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

LIB_COMMON := $(B)/lib/libcommon.a
LIB_AS := $(B)/lib/libas.a
LIB_KBS := $(B)/lib/libkbs.a
LIB_RVPS := $(B)/lib/librvps.a
ALL_LIBS := -Wl,--start-group $(LIB_KBS) $(LIB_AS) $(LIB_RVPS) $(LIB_COMMON) -Wl,--end-group

MAIN_SRC := $(call mains,as) $(call mains,kbs) $(call mains,rvps) $(call mains,common/rego) $(call mains,tests/bench)
bin_name = $(subst _,-,$(patsubst main_%,%,$(basename $(notdir $(1)))))
BINS := $(foreach m,$(MAIN_SRC),$(B)/bin/$(call bin_name,$(m)))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
CONF_SRC := $(wildcard tests/conformance/*.c)
TEST_BINS := $(patsubst tests/%.c,$(B)/tests/%,$(UNIT_SRC) $(CONF_SRC))

.PHONY: all deps test run bench bench-peers soak lint fuzz fuzz-smoke clean test-asan gen images test-images
all: $(BINS) $(TEST_BINS) $(GEN_PY)

deps:
	@deploy/dev/deps.sh

gen: $(GEN_H) $(GEN_PY)
$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/gen
	protoc-c --c_out=$(B)/gen -Iproto $<
$(B)/gen/py/%_pb2.py: proto/%.proto
	@mkdir -p $(B)/gen/py
	protoc --python_out=$(B)/gen/py -Iproto $<

$(B)/obj/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB_COMMON): $(call obj,$(COMMON_SRC:$(B)/gen/%=gen/%))
$(LIB_AS): $(call obj,$(AS_SRC))
$(LIB_KBS): $(call obj,$(KBS_SRC))
$(LIB_RVPS): $(call obj,$(RVPS_SRC))
$(B)/lib/%.a: $(B)/obj/empty.o
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

# generated protobuf C compiles from build/gen
$(B)/obj/gen/%.o: $(B)/gen/%.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-error -c -o $@ $<
# One version for every binary's -V/--version (common/version.c): the nearest git tag, else
# 0.1.0 and the commit. The header is rewritten only when the string changes.
VERSION ?= $(shell v=$$(git describe --tags --dirty 2>/dev/null) || v=0.1.0$$(git rev-parse --short HEAD 2>/dev/null | sed 's/^/+g/'); echo "$$v" | sed 's/^v//')
$(B)/gen/ctrustee_version.h: FORCE
	@mkdir -p $(dir $@)
	@v='#define CTRUSTEE_VERSION "$(VERSION)"'; [ "$$(cat $@ 2>/dev/null)" = "$$v" ] || echo "$$v" >$@
$(B)/obj/common/version.o: $(B)/gen/ctrustee_version.h
.PHONY: FORCE
FORCE:

$(B)/obj/empty.o:
	@mkdir -p $(dir $@)
	echo 'static const char ctrustee_empty_lib[] __attribute__((used)) = "";' | $(CC) -x c -c -o $@ -
LIBS_DEP := $(LIB_AS) $(LIB_KBS) $(LIB_RVPS) $(LIB_COMMON) $(B)/obj/empty.o

define bin_rule
$(B)/bin/$(call bin_name,$(1)): $(call obj,$(1)) $(LIBS_DEP)
	@mkdir -p $(B)/bin
	$(CC) $(LDFLAGS) -o $$@ $(call obj,$(1)) $(if $(filter $(call bin_name,$(1)),$(MALLOC_BINS)),$(MALLOC_LIB)) $(ALL_LIBS) $(LDLIBS)
endef
$(foreach m,$(MAIN_SRC),$(eval $(call bin_rule,$(m))))

$(B)/tests/%: $(B)/obj/tests/%.o $(LIBS_DEP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(LDLIBS) -lcmocka

# make test: the suites against the normal build (lint among them: tests/lint/test_lint.sh),
# then the same suites under ASan + UBSan + LeakSanitizer (make test-asan); ASAN=0 skips the
# second pass, T=substring runs only the matching test programs. The last line sums both passes.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@rc=0; rm -f build/test-logs/summary build-asan/test-logs/summary; tests/run.sh $(T) || rc=1; \
	if [ "$(ASAN)" != 0 ]; then \
	  echo "== the same suites under ASan + UBSan + LeakSanitizer (make test-asan; ASAN=0 skips this pass) =="; \
	  $(MAKE) --no-print-directory test-asan || rc=1; \
	  cat build/test-logs/summary build-asan/test-logs/summary 2>/dev/null | awk '{ p += $$1; f += $$2; s += $$3; n++ } \
	    END { if (n < 2) f++; printf "%d passed, %d failed, %d skipped (both passes)\n", p, f, s }'; \
	fi; exit $$rc

test-asan:
	@$(MAKE) --no-print-directory -j$(JOBS) B=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" all
	@BUILD=build-asan SANITIZER_REPORTS=build-asan/sanitizer ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 tests/run.sh $(T)

run: deps
	@$(MAKE) --no-print-directory all
	@deploy/dev/run.sh

bench: all
	@tests/bench/run.sh

# our Intel quote verification beside @phala/dcap-qvl's (npm, installed into $(B)/peers/), warm
# and cold, same quotes, collateral and verdicts (tests/bench/peers.sh)
bench-peers: $(B)/bin/quote-loop $(B)/bin/evidence-verify
	@BUILD=$(B) tests/bench/peers.sh

soak: all
	@tests/bench/soak.sh

# the kbs, grpc-as, restful-as and rvps images (deploy/container/Containerfile) with buildah on a
# debootstrapped debian:12 base cached in $(B)/images/, and their start-up check; both stay out
# of make test (minutes, root, the apt mirror). Their packages come from deploy/container/packages.txt.
images:
	@deploy/dev/deps.sh deploy/container/packages.txt
	@CTRUSTEE_BUILD=$(B) deploy/container/images.sh

test-images:
	@deploy/dev/deps.sh deploy/container/packages.txt
	@CTRUSTEE_BUILD=$(B) deploy/container/test-images.sh

# clang-format and cppcheck over every tracked C file; make test runs the same script as one
# of its suites (tests/lint/test_lint.sh), so CI keeps the tree clean.
lint:
	@tests/lint/test_lint.sh

fuzz fuzz-smoke:
	@test -x tests/fuzz/run.sh || { echo "make $@: the fuzz harness (tests/fuzz/run.sh) is not written yet; targets are in tests/fuzz/" >&2; exit 1; }
	@tests/fuzz/run.sh $@

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

# Files a source embeds with EMBED_FILE (common/embed.h): the object depends on them, so an
# edited default policy or vendor root rebuilds it (the compiler's -MMD cannot see .incbin).
EMBED_SRC := $(shell grep -lE 'EMBED_FILE.[a-z_0-9]+,' $(AS_SRC) $(COMMON_SRC) $(KBS_SRC) $(RVPS_SRC) $(MAIN_SRC) 2>/dev/null | grep -v embed.h)
$(B)/embed.mk: $(EMBED_SRC) Makefile
	@mkdir -p $(B)
	@grep -H -o 'EMBED_FILE([^,]*, *"[^"]*")' $(EMBED_SRC) /dev/null | \
	  sed -E 's#^([^:]*)\.c:EMBED_FILE\([^,]*, *"([^"]*)"\)#$(B)/obj/\1.o: \2#' >$@
-include $(B)/embed.mk

# Test objects are intermediates of their binaries; keep them so a rebuild stays incremental.
.SECONDARY:
