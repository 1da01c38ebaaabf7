# ocimirror: the nginx module, the fetcher daemon and their tests.
#
#   make            build build/ngx_http_ocimirror_module.so,
#                   build/ocimirror-fetcher and build/ocimirrorctl
#   make run        install what is missing, build, serve on 127.0.0.1:5000
#   make test       install what is missing, build, check the layers of
#                   DESIGN.md, run every test (e2e against nginx built
#                   with ASan, a subset against the stock nginx)
#   make bench      the side-by-side benchmark (not a test)
#   make fuzz       install afl++ if missing, run each fuzz harness for
#                   FUZZ_SECONDS (tests/fuzz/)
#   make soak       mixed traffic under upstream faults, SOAK_SECONDS
#                   (600; `make test` runs 60)
#   make chaos      SIGKILLs of the fetcher and nginx workers during
#                   pulls, CHAOS_KILLS (100; `make test` runs 20)
#   make image-test build docker/Dockerfile with buildah on a debootstrap
#                   base, and run it (part of `make test`)

CC        ?= cc
PYTHON    ?= /usr/bin/python3
BUILD     := build
NGINX_SRC ?= /usr/share/nginx/src
CFLAGS    ?= -O2 -g
SRC_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
             -Wno-unused-parameter $(CFLAGS) -Isrc -Isrc/fetcher \
             -Isrc/ctl $(SANITIZE_FLAGS)
LDLIBS_FETCHER = -lcurl -lconfig -ljansson -lcrypto -lz -pthread
LDLIBS_CTL     = -lconfig -ljansson

ifeq ($(SANITIZE),1)
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer
endif

CORE_SRCS    := src/oci_ref.c src/oci_error.c src/oci_config.c \
                src/oci_image.c \
                src/oci_route.c src/oci_ipc.c src/oci_store.c \
                src/oci_auth.c src/oci_range.c src/oci_cluster.c
CORE_OBJS    := $(CORE_SRCS:src/%.c=$(BUILD)/core/%.o)
FETCHER_SRCS := $(wildcard src/fetcher/*.c)
FETCHER_OBJS := $(FETCHER_SRCS:src/fetcher/%.c=$(BUILD)/fetcher/%.o)
# the fetcher's units without main(), for its unit tests
FETCHER_LIB_OBJS := $(filter-out $(BUILD)/fetcher/fetcher.o,$(FETCHER_OBJS))
# ocimirrorctl: the core it needs (no libcurl: it talks to the fetcher
# only) and its own units, those without main() for the unit tests
CTL_SRCS     := $(wildcard src/ctl/*.c)
CTL_OBJS     := $(CTL_SRCS:src/ctl/%.c=$(BUILD)/ctl/%.o)
CTL_LIB_OBJS := $(filter-out $(BUILD)/ctl/ocimirrorctl.o,$(CTL_OBJS))
CTL_CORE_OBJS := $(addprefix $(BUILD)/core/,oci_ref.o oci_error.o \
                 oci_config.o oci_image.o oci_ipc.o oci_store.o)
HEADERS      := $(wildcard src/*.h src/fetcher/*.h src/ctl/*.h)
MODULE_SRCS  := $(wildcard module/*.c module/*.h)
UNIT_SRCS    := $(wildcard tests/unit/test_*.c)
UNIT_BINS    := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run test layers unit e2e bench clean fetcher module ctl \
        install fuzz fuzz-replay fuzz-replay-bins fuzz-afl-bins \
        soak chaos image-test

all: fetcher module ctl

fetcher: $(BUILD)/ocimirror-fetcher
module: $(BUILD)/ngx_http_ocimirror_module.so
ctl: $(BUILD)/ocimirrorctl

deps:
	@scripts/install-deps.sh

$(BUILD)/core/%.o: src/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(SRC_CFLAGS) -c -o $@ $<

$(BUILD)/fetcher/%.o: src/fetcher/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(SRC_CFLAGS) -c -o $@ $<

$(BUILD)/ctl/%.o: src/ctl/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(SRC_CFLAGS) -c -o $@ $<

$(BUILD)/ocimirror-fetcher: $(FETCHER_OBJS) $(CORE_OBJS)
	$(CC) $(SRC_CFLAGS) -o $@ $^ $(LDLIBS_FETCHER)

$(BUILD)/ocimirrorctl: $(CTL_OBJS) $(CTL_CORE_OBJS)
	$(CC) $(SRC_CFLAGS) -o $@ $^ $(LDLIBS_CTL)

# The module is built inside a copy of Debian's nginx source tree, with the
# flags Debian's nginx was configured with, so that the stock binary loads
# it.  configure runs again only when the list of sources changes.
$(BUILD)/module-srcs.txt: FORCE
	@mkdir -p $(@D)
	@echo "$(MODULE_SRCS) $(CORE_SRCS)" | cmp -s - $@ || \
	    echo "$(MODULE_SRCS) $(CORE_SRCS)" > $@

$(BUILD)/nginx/.configured: config $(BUILD)/module-srcs.txt
	rm -rf $(BUILD)/nginx
	cp -r $(NGINX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && bash -c '. ./conf_flags && ./configure \
	    "$${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$(CURDIR)"' \
	    > ../nginx-configure.log 2>&1 || \
	    { cat ../nginx-configure.log; exit 1; }
	touch $@

$(BUILD)/ngx_http_ocimirror_module.so: $(BUILD)/nginx/.configured \
        $(MODULE_SRCS) $(CORE_SRCS) $(HEADERS)
	$(MAKE) -s -C $(BUILD)/nginx -f objs/Makefile modules
	cp $(BUILD)/nginx/objs/ngx_http_ocimirror_module.so $@.tmp
	mv -f $@.tmp $@    # a running nginx keeps its mapping of the old file

# nginx itself built with AddressSanitizer and UBSan, with the module built
# in the same tree (a module must match its binary's configure signature),
# for `make e2e-asan-nginx`.  The source is Debian's, through apt
# (scripts/nginx-source.sh), configured with the flags Debian's nginx and
# nginx-dev share (conf_flags) and the static http modules of Debian's
# binary; the dynamic ones that need libraries the project does not
# install (geoip, image filter, perl, xslt) and mail and stream, which no
# test loads, are left out.  NGX_DEBUG_PALLOC makes every pool allocation
# its own malloc(), so ASan sees an overflow of any one of them instead of
# only past the end of a pool's block.  -O1: a quicker build, and stacks
# that still name every frame.  The core is built once; a change in the
# module rebuilds only the module.
NGINX_ASAN       := $(BUILD)/asan-nginx
NGINX_ASAN_JOBS  ?= $(shell nproc)
NGINX_ASAN_CC_OPT = -O1 -g -fno-omit-frame-pointer -fPIC \
                    -fsanitize=address,undefined -DNGX_DEBUG_PALLOC=1
NGINX_ASAN_LD_OPT = -fsanitize=address,undefined -fPIC
NGINX_ASAN_FLAGS  = --with-http_addition_module --with-http_flv_module \
                    --with-http_gunzip_module --with-http_gzip_static_module \
                    --with-http_mp4_module --with-http_random_index_module \
                    --with-http_secure_link_module --with-http_sub_module

.PHONY: nginx-asan e2e-asan-nginx
nginx-asan: $(NGINX_ASAN)/.built

$(NGINX_ASAN)/src/.debian-version:
	@mkdir -p $(@D)
	scripts/nginx-source.sh $(@D)

$(NGINX_ASAN)/flags.txt: FORCE
	@mkdir -p $(@D)
	@echo "$(NGINX_ASAN_CC_OPT) $(NGINX_ASAN_LD_OPT) $(NGINX_ASAN_FLAGS)" | \
	    cmp -s - $@ || \
	    echo "$(NGINX_ASAN_CC_OPT) $(NGINX_ASAN_LD_OPT) $(NGINX_ASAN_FLAGS)" \
	    > $@

$(NGINX_ASAN)/.configured: $(NGINX_ASAN)/src/.debian-version config \
        $(BUILD)/module-srcs.txt $(NGINX_ASAN)/flags.txt
	cd $(NGINX_ASAN)/src && bash -c '. $(NGINX_SRC)/conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" $(NGINX_ASAN_FLAGS) \
	    --with-cc-opt="$(NGINX_ASAN_CC_OPT)" \
	    --with-ld-opt="$(NGINX_ASAN_LD_OPT)" \
	    --add-dynamic-module="$(CURDIR)"' > ../configure.log 2>&1 || \
	    { cat ../configure.log; exit 1; }
	touch $@

# both files are replaced by rename: a running nginx keeps the old ones
$(NGINX_ASAN)/.built: $(NGINX_ASAN)/.configured $(MODULE_SRCS) \
        $(CORE_SRCS) $(HEADERS)
	$(MAKE) -s -j$(NGINX_ASAN_JOBS) -C $(NGINX_ASAN)/src -f objs/Makefile \
	    binary modules
	cp $(NGINX_ASAN)/src/objs/nginx $(NGINX_ASAN)/nginx.tmp
	mv -f $(NGINX_ASAN)/nginx.tmp $(NGINX_ASAN)/nginx
	cp $(NGINX_ASAN)/src/objs/ngx_http_ocimirror_module.so \
	    $(NGINX_ASAN)/ngx_http_ocimirror_module.so.tmp
	mv -f $(NGINX_ASAN)/ngx_http_ocimirror_module.so.tmp \
	    $(NGINX_ASAN)/ngx_http_ocimirror_module.so
	touch $@

# Unit tests: each binary links its test file, the core library, the
# fetcher's units and ocimirrorctl's (the linker takes only the objects a
# test uses).
$(BUILD)/tests/libocitest.a: $(CORE_OBJS) $(FETCHER_LIB_OBJS) $(CTL_LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/tests/libocitest.a $(HEADERS) \
        $(wildcard tests/unit/*.h)
	@mkdir -p $(@D)
	$(CC) $(SRC_CFLAGS) -o $@ $< $(BUILD)/tests/libocitest.a -lcmocka \
	    $(LDLIBS_FETCHER)

# The layers DESIGN.md lists, against the #include lines of src/fetcher.
layers:
	$(PYTHON) scripts/check-layers.py

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# The suite runs the fetcher and ocimirrorctl built with AddressSanitizer
# and UBSan: any report in the fetcher's log or the CLI's stderr fails the
# test that caused it.  `e2e` runs it against the stock /usr/sbin/nginx,
# `e2e-asan-nginx` against nginx itself built with the sanitizers
# (nginx-asan), where any report of nginx fails the test too.
E2E_ENV = OCIMIRROR_FETCHER=$(BUILD)/asan/ocimirror-fetcher \
          OCIMIRROR_CTL=$(BUILD)/asan/ocimirrorctl
E2E_ASAN_NGINX_ENV = OCIMIRROR_NGINX=$(NGINX_ASAN)/nginx \
          OCIMIRROR_MODULE=$(NGINX_ASAN)/ngx_http_ocimirror_module.so
PYTEST = $(PYTHON) -m pytest -q -p no:cacheprovider
E2E_TESTS ?= tests/e2e
# make test: two whole passes do not fit its 25 minutes on 2 cores with
# the builds (the stock pass takes about 9 minutes on a quiet machine, the
# ASan nginx's 9m43s at load 1, 14 min at load 7 in one process; on 4
# xdist workers then serial 6m15s at load 1-4, 9m50s at load 4-7; the
# first nginx-asan build 4 min of CPU), so the ASan nginx runs every
# test and the stock
# nginx these (72 s at load 1): the module
# as shipped (built against nginx-dev) in Debian's binary, through the
# real clients, hits, misses, streamed ranges, health, nginx -t and a
# cluster (the upstream block the module builds, Debian's hash module),
# the include's access log with $ocimirror_cache_status (20 s at load 10).
E2E_STOCK_TESTS = tests/e2e/test_pull_api.py tests/e2e/test_skopeo.py \
                  tests/e2e/test_containerd.py \
                  tests/e2e/test_ranges_inflight.py \
                  tests/e2e/test_health.py tests/e2e/test_config.py \
                  tests/e2e/test_sanitizer_harness.py \
                  tests/e2e/test_cluster.py \
                  tests/e2e/test_cache_status.py

# Two phases: most tests wait on timeouts, TTLs and the network rather
# than burn CPU (a whole ASan pass on 4 workers keeps 0.6 to 1.2 cores
# busy), so they run on E2E_JOBS pytest-xdist workers, each its own
# session (its own upstream, ports and temp folders); then the tests
# marked serial run alone (tests/e2e/conftest.py says which and why).  The
# second phase runs even if the first failed, so that one run shows every
# failure.  Exit
# status 5 is pytest's "no test collected": a list of files with no
# serial test, or only serial ones.  E2E_JOBS=0: the first phase in one
# process.
E2E_JOBS ?= 4
E2E_PARALLEL = $(PYTEST) -p xdist -n $(E2E_JOBS) --dist loadgroup \
               -m "not serial"
E2E_SERIAL   = $(PYTEST) -m serial
# $(call e2e_run,environment,files)
e2e_run = rc=0; \
    $(1) $(E2E_PARALLEL) $(2) || { s=$$?; [ $$s -eq 5 ] || rc=$$s; }; \
    $(1) $(E2E_SERIAL) $(2) || { s=$$?; [ $$s -eq 5 ] || rc=$$s; }; \
    exit $$rc

e2e: all
	$(MAKE) BUILD=$(BUILD)/asan SANITIZE=1 fetcher ctl
	$(call e2e_run,$(E2E_ENV),$(E2E_TESTS))

e2e-asan-nginx: all nginx-asan
	$(MAKE) BUILD=$(BUILD)/asan SANITIZE=1 fetcher ctl
	$(call e2e_run,$(E2E_ENV) $(E2E_ASAN_NGINX_ENV),tests/e2e)

# The container image (tests/image/): its debootstrap and buildah build
# take minutes of mostly waiting on the network and the disk, so make test
# starts them first, in the background, and runs the image's test last;
# the build's process group and its storage (gigabytes) go when make test
# ends, whatever the outcome.  Measured beside the other helpers' work
# (load 9 on 2 cores): debootstrap 2-6 min, the build 6-10 min, about
# 265 s of CPU in all; the test itself 13 s once the image is there.
IMAGE_DIR := $(BUILD)/image

test: deps
	$(MAKE) all
	@scripts/image-build.sh start $(IMAGE_DIR)
	@trap 'scripts/image-build.sh clean $(IMAGE_DIR)' EXIT; \
	trap 'exit 130' HUP INT TERM; \
	set -e; \
	$(MAKE) layers; \
	$(MAKE) unit; \
	$(MAKE) fuzz-replay; \
	$(MAKE) e2e-asan-nginx; \
	$(MAKE) e2e E2E_TESTS="$(E2E_STOCK_TESTS)"; \
	$(MAKE) soak SOAK_SECONDS=60; \
	$(MAKE) chaos CHAOS_KILLS=20; \
	$(MAKE) image-test

# Build docker/Dockerfile (scripts/image-build.sh; waits for the one make
# test started) and run it: its entrypoint in its root filesystem, /readyz,
# its HEALTHCHECK, a skopeo pull through it.
image-test:
	OCIMIRROR_IMAGE_DIR=$(IMAGE_DIR) $(PYTEST) -s tests/image

# The soak (tests/soak/test_soak.py): 200 connections of mixed traffic
# while one of two upstream endpoints injects faults; the release build,
# whose RSS and descriptors it measures.  It prints a summary.
SOAK_SECONDS ?= 600
soak: all
	SOAK_SECONDS=$(SOAK_SECONDS) $(PYTHON) -m pytest -q -s \
	    -p no:cacheprovider tests/soak/test_soak.py

# The chaos loop (tests/soak/test_chaos.py): SIGKILLs of the fetcher
# (built with ASan and UBSan) and of nginx workers during cold pulls.
CHAOS_KILLS ?= 100
chaos: all
	$(MAKE) BUILD=$(BUILD)/asan SANITIZE=1 fetcher
	CHAOS_KILLS=$(CHAOS_KILLS) \
	OCIMIRROR_FETCHER=$(BUILD)/asan/ocimirror-fetcher \
	    $(PYTHON) -m pytest -q -s -p no:cacheprovider tests/soak/test_chaos.py

run: deps
	$(MAKE) all
	scripts/run.sh

bench: deps
	$(MAKE) all
	$(PYTHON) tests/bench/bench.py

# A VM or image: make install [DESTDIR=...], then the systemd units.
# Without DESTDIR the fetcher's user is made at once (systemd-sysusers);
# the image runs the fetcher as www-data instead (docker/entrypoint.sh).
install: all
	install -D -m 0755 $(BUILD)/ocimirror-fetcher \
	    $(DESTDIR)/usr/sbin/ocimirror-fetcher
	install -D -m 0755 $(BUILD)/ocimirrorctl \
	    $(DESTDIR)/usr/sbin/ocimirrorctl
	install -D -m 0644 $(BUILD)/ngx_http_ocimirror_module.so \
	    $(DESTDIR)/usr/lib/nginx/modules/ngx_http_ocimirror_module.so
	install -D -m 0644 conf/mod-http-ocimirror.conf \
	    $(DESTDIR)/etc/nginx/modules-enabled/50-mod-http-ocimirror.conf
	install -D -m 0644 conf/ocimirror-nginx.conf \
	    $(DESTDIR)/etc/ocimirror/ocimirror-nginx.conf
	test -e $(DESTDIR)/etc/ocimirror/ocimirror.cfg || \
	    install -D -m 0644 conf/ocimirror.cfg \
	    $(DESTDIR)/etc/ocimirror/ocimirror.cfg
	install -D -m 0644 conf/systemd/ocimirror-fetcher.service \
	    $(DESTDIR)/lib/systemd/system/ocimirror-fetcher.service
	install -D -m 0644 conf/systemd/nginx.service.d/ocimirror.conf \
	    $(DESTDIR)/etc/systemd/system/nginx.service.d/ocimirror.conf
	install -D -m 0644 conf/sysusers.d/ocimirror.conf \
	    $(DESTDIR)/usr/lib/sysusers.d/ocimirror.conf
	if [ -z "$(DESTDIR)" ]; then \
	    systemd-sysusers /usr/lib/sysusers.d/ocimirror.conf; fi
	install -D -m 0644 README.md $(DESTDIR)/usr/share/doc/ocimirror/README.md
	install -D -m 0644 DESIGN.md $(DESTDIR)/usr/share/doc/ocimirror/DESIGN.md

# Fuzzing (DESIGN.md, Tests): a harness per parser of outside bytes.
# make test replays each seed corpus and every regression input once,
# built with plain cc and ASan/UBSan (no afl++ needed); a sanitizer report,
# a failed check or a crash fails it.  make fuzz builds the harnesses with
# afl-clang-fast (ASan/UBSan too, UB aborts) and runs afl-fuzz on each in
# turn for FUZZ_SECONDS, printing execs and findings per harness.
FUZZ_HARNESSES := $(patsubst tests/fuzz/fuzz_%.c,%,\
                  $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS   ?= 60
AFL_CC         ?= afl-clang-fast
FUZZ_DEPS      := tests/fuzz/fuzz.h $(BUILD)/tests/libocitest.a $(HEADERS)

$(BUILD)/fuzz/replay-%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(CC) $(SRC_CFLAGS) -Itests/fuzz -o $@ $< tests/fuzz/replay.c \
	    $(BUILD)/tests/libocitest.a $(LDLIBS_FETCHER)

$(BUILD)/fuzz/afl-%: tests/fuzz/fuzz_%.c tests/fuzz/afl.c $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(CC) $(SRC_CFLAGS) -Itests/fuzz -o $@ $< tests/fuzz/afl.c \
	    $(BUILD)/tests/libocitest.a $(LDLIBS_FETCHER)

fuzz-replay-bins: $(FUZZ_HARNESSES:%=$(BUILD)/fuzz/replay-%)
fuzz-afl-bins: $(FUZZ_HARNESSES:%=$(BUILD)/fuzz/afl-%)

fuzz-replay:
	$(MAKE) BUILD=$(BUILD)/asan SANITIZE=1 fuzz-replay-bins
	@set -e; for h in $(FUZZ_HARNESSES); do \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(BUILD)/asan/fuzz/replay-$$h tests/fuzz/corpus/$$h \
	        tests/fuzz/regressions/$$h; done

fuzz:
	@scripts/install-deps.sh fuzz
	$(MAKE) BUILD=$(BUILD)/afl CC=$(AFL_CC) SANITIZE=1 \
	    CFLAGS="-O2 -g -fno-sanitize-recover=all" fuzz-afl-bins
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(BUILD)/afl \
	    $(FUZZ_HARNESSES)

clean:
	rm -rf $(BUILD)

FORCE:
