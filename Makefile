# thinbench — build, test, bench, deps, install.
#
#   make            libthinp (.a/.so), the thinp CLI, the fio engine, the unit tests and every
#                   helper program (tests/tools, scenarios/tools, tests/vm, tests/bench)
#   make test       deps + build + run the unit tests and the shell tests (tests/{cli,engine,scenarios})
#   make asan       the same, built in build-asan/ with ASan+UBSan
#   make tsan       the concurrency tests only, built in build-tsan/ with ThreadSanitizer
#   make bench      deps + build + scenarios/run
#   make deps       install missing Debian packages (ci/deps.sh)
#   make install    PREFIX=/usr/local DESTDIR=  (lib, header, CLI, fio engine, libthinp.pc)
#   make format / format-check / clean / uninstall
#
# Variables: CC (gcc or clang), BUILDDIR, SANITIZE=asan|tsan, EXTRA_CFLAGS, EXTRA_LDFLAGS,
# TEST_TIMEOUT (seconds per test), PREFIX, DESTDIR, VERSION, THINP_BIN (the CLI's path), ENGINE_SO
# (the fio engine's path; parallel work trees set BUILDDIR, THINP_BIN and ENGINE_SO apart).

VERSION  ?= 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=

# ---- build mode -------------------------------------------------------------------------------
SANITIZE ?=
ifeq ($(SANITIZE),asan)
BUILDDIR ?= build-asan
OPT      ?= -O1
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# the ASan CLI lives in the ASan build dir so it never clobbers impl/cli/thinp
THINP_BIN ?= $(BUILDDIR)/bin/thinp
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
# sanitizers slow tests down; stretch Check's per-test timeouts
export CK_TIMEOUT_MULTIPLIER ?= 4
else ifeq ($(SANITIZE),tsan)
BUILDDIR ?= build-tsan
OPT      ?= -O1
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
THINP_BIN ?= $(BUILDDIR)/bin/thinp
# any race fails the test (Check then reports the forked test's abort)
export TSAN_OPTIONS ?= halt_on_error=1:abort_on_error=1:second_deadlock_stack=1
export CK_TIMEOUT_MULTIPLIER ?= 10
else ifneq ($(SANITIZE),)
$(error SANITIZE must be empty, 'asan' or 'tsan')
endif

BUILDDIR  ?= build
OPT       ?= -O2
THINP_BIN ?= impl/cli/thinp
TEST_TIMEOUT ?= 900

# ---- flags ------------------------------------------------------------------------------------
# -fvisibility=hidden: libthinp.so exports only what thinp.h marks THINP_API.
CFLAGS   = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT) -g -Iimpl -Iimpl/include -fPIC \
	   -fvisibility=hidden $(SANFLAGS) $(EXTRA_CFLAGS)
DEPFLAGS = -MMD -MP
LDFLAGS  = $(SANFLAGS) $(EXTRA_LDFLAGS)
LDLIBS   = -lpthread
# What libthinp itself links against (libexpat: the XML reader of restore).
LIB_LIBS = -lexpat -lpthread

# Recursively expanded on purpose: evaluated only when a test is compiled/linked,
# i.e. after `make deps` had a chance to install check.
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

# ---- sources ----------------------------------------------------------------------------------
# One line per library layer; new files in these folders are picked up automatically.
LIB_DIRS  := impl/io impl/pdata impl/thin
LIB_SRCS  := $(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
CLI_SRCS  := $(sort $(wildcard impl/cli/*.c))
# The kernel backend (impl/dm/, issue #6) is the only user of libdevmapper: its own archive,
# linked into the CLI only, so libthinp.a/.so never need libdevmapper.
DM_SRCS   := $(sort $(wildcard impl/dm/*.c))
# Docker's devicemapper graph driver (issue #10), a layer above libthinp on its public API, with
# the FUSE bridge that exposes thin devices as files: its own archive, linked into the CLI (and
# the unit tests), so libthinp never needs libfuse3.
GRAPH_SRCS := $(sort $(wildcard impl/graph/*.c))
# Capacity planning (issue #13, `thinp plan`): a workload model on no library at all, its own
# archive linked into the CLI and the unit tests.
PLAN_SRCS := $(sort $(wildcard impl/plan/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
# Other tests/unit/*.c files (no main) are shared helpers linked into every unit test.
UNIT_HELPER_SRCS := $(sort $(filter-out tests/unit/test_%,$(wildcard tests/unit/*.c)))
# Test-only code (the fault-injecting device): its own archive, never inside libthinp.
SUPPORT_SRCS := $(sort $(wildcard tests/support/*.c))
# Stand-alone programs, one .c each (a main): built with the project's flags and sanitizers.
#   tests/tools/NAME.c -> $(BUILDDIR)/tests/tools/NAME   (metadata generators of the CLI tests)
#   tests/vm/NAME.c    -> $(BUILDDIR)/tests/tools/NAME   (the one-session trace replay)
#   tests/bench/NAME.c -> $(BUILDDIR)/tests/tools/NAME   (metadata micro-benchmark)
#   scenarios/tools/NAME.c -> $(BUILDDIR)/bin/thinp-NAME  (the runner's fill-to-full driver)
#   tests/power/NAME.c -> $(BUILDDIR)/tests/tools/NAME (the power-cut test: FUSE write log,
#                          workload, replay; wlog_fs links libfuse3)
#   ci/gate_NAME.c     -> $(BUILDDIR)/tests/tools/gate_NAME (the regression gate's trace driver)
TOOL_SRCS  := $(sort $(wildcard tests/tools/*.c tests/vm/*.c tests/bench/*.c tests/power/*.c ci/gate_*.c))
SCEN_SRCS  := $(sort $(wildcard scenarios/tools/*.c))
# Shell tests, grouped by subject; each runs with THINP and BUILD in its environment.
SCRIPT_TESTS := $(sort $(wildcard tests/api/*.sh)) $(sort $(wildcard tests/cli/*.sh)) \
		$(sort $(wildcard tests/engine/engine_*.sh)) $(sort $(wildcard tests/scenarios/*.sh)) \
		$(sort $(wildcard tests/power/*.sh)) $(sort $(wildcard tests/gate/*.sh))
# Programs that use libthinp as an outsider would: thinp.h only, linked to libthinp.so.
API_SRCS  := $(sort $(wildcard tests/api/test_*.c))

OBJDIR    := $(BUILDDIR)/obj
LIB_OBJS  := $(LIB_SRCS:%.c=$(OBJDIR)/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(OBJDIR)/%.o)
DM_OBJS   := $(DM_SRCS:%.c=$(OBJDIR)/%.o)
GRAPH_OBJS := $(GRAPH_SRCS:%.c=$(OBJDIR)/%.o)
PLAN_OBJS := $(PLAN_SRCS:%.c=$(OBJDIR)/%.o)
UNIT_OBJS := $(UNIT_SRCS:%.c=$(OBJDIR)/%.o)
UNIT_HELPER_OBJS := $(UNIT_HELPER_SRCS:%.c=$(OBJDIR)/%.o)
SUPPORT_OBJS := $(SUPPORT_SRCS:%.c=$(OBJDIR)/%.o)
TOOL_OBJS := $(TOOL_SRCS:%.c=$(OBJDIR)/%.o) $(SCEN_SRCS:%.c=$(OBJDIR)/%.o)
ALL_OBJS  := $(LIB_OBJS) $(CLI_OBJS) $(DM_OBJS) $(GRAPH_OBJS) $(PLAN_OBJS) $(UNIT_OBJS) $(UNIT_HELPER_OBJS) \
	     $(SUPPORT_OBJS) $(TOOL_OBJS)

LIB_A     := $(BUILDDIR)/libthinp.a
# The ABI version: bump SOVERSION on any incompatible change to thinp.h.
SOVERSION := 0
LIB_SONAME := libthinp.so.$(SOVERSION)
LIB_SO    := $(BUILDDIR)/libthinp.so
SUPPORT_A := $(BUILDDIR)/libthinp_testsupport.a
# Nothing to archive yet -> no library (and nothing links against one).
LIB_TARGETS := $(if $(LIB_OBJS),$(LIB_A) $(LIB_SO))
LIB_LINK    := $(if $(LIB_OBJS),$(LIB_A))
DM_A        := $(BUILDDIR)/libthinp_dm.a
DM_LINK     := $(if $(DM_OBJS),$(DM_A))
GRAPH_A     := $(BUILDDIR)/libthinp_graph.a
GRAPH_LINK  := $(if $(GRAPH_OBJS),$(GRAPH_A))
PLAN_A      := $(BUILDDIR)/libthinp_plan.a
PLAN_LINK   := $(if $(PLAN_OBJS),$(PLAN_A))
PLAN_LIBS   := $(if $(PLAN_OBJS),-lm)
GRAPH_LIBS   = $(if $(GRAPH_OBJS),$(shell pkg-config --libs fuse3 2>/dev/null || echo -lfuse3))
# (recursively expanded: evaluated when the CLI links, after `make deps`)
DM_CFLAGS    = $(shell pkg-config --cflags devmapper 2>/dev/null)
DM_LIBS      = $(if $(DM_OBJS),$(shell pkg-config --libs devmapper 2>/dev/null || echo -ldevmapper))
CLI_TARGET  := $(if $(CLI_OBJS),$(THINP_BIN))
UNIT_BINS   := $(UNIT_SRCS:tests/unit/%.c=$(BUILDDIR)/tests/%) \
	       $(API_SRCS:tests/api/test_%.c=$(BUILDDIR)/tests/test_api_%)
TOOL_BINS   := $(foreach f,$(TOOL_SRCS),$(BUILDDIR)/tests/tools/$(basename $(notdir $(f)))) \
	       $(foreach f,$(SCEN_SRCS),$(BUILDDIR)/bin/thinp-$(basename $(notdir $(f))))

HEADER    := impl/include/thinp.h
PC_IN     := libthinp.pc.in
PC_OUT    := $(BUILDDIR)/libthinp.pc

DEPS_SCRIPT := ci/deps.sh
TEST_RUNNER := ci/run-tests.sh
FORMAT_SRCS  = $(shell find impl tests ioengine -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null)

# Environment for the shell tests and the bench runner.
RUN_ENV = THINP=$(abspath $(THINP_BIN)) BUILD=$(abspath $(BUILDDIR)) \
	  THINP_FILL=$(abspath $(BUILDDIR)/bin/thinp-fill) THINP_ENGINE=$(abspath $(ENGINE_SO))

.DEFAULT_GOAL := all
.PHONY: all lib cli tests test run-tests gate-selftest asan tsan run-tsan bench deps install uninstall clean \
	format format-check
.DELETE_ON_ERROR:

# ---- build ------------------------------------------------------------------------------------
all: lib cli tests tools
lib: $(LIB_TARGETS)
cli: $(CLI_TARGET)
tests: $(UNIT_BINS)
tools: $(TOOL_BINS)
.PHONY: tools depcheck

# A fresh machine lacks the -dev packages: say which command installs them instead of a
# compiler error about a missing header. (`make deps`, which `make test` and `make bench` run.)
DEPCHECK_STAMP := $(BUILDDIR)/.deps-ok
depcheck: $(DEPCHECK_STAMP)
$(DEPCHECK_STAMP): $(DEPS_SCRIPT)
	@bash $(DEPS_SCRIPT) --check || { echo "make: missing build dependencies (above): run 'make deps' as root (or 'make test' / 'make bench', which install them first)" >&2; exit 1; }
	@mkdir -p $(@D) && touch $@

# Rebuild everything when the compiler or flags change (e.g. CC=gcc -> CC=clang).
FLAGS_STAMP := $(BUILDDIR)/.build-flags
# Expanded now (:=), so the test objects' target-specific CFLAGS below, which make hands on to
# their prerequisites, never change it (building one test binary rebuilt everything)
BUILD_SIG   := $(CC) | $(CFLAGS) | $(LDFLAGS) | $(LDLIBS)
$(FLAGS_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(BUILD_SIG)' | cmp -s - $@ 2>/dev/null || echo '$(BUILD_SIG)' > $@

$(OBJDIR)/%.o: %.c $(FLAGS_STAMP) | $(DEPCHECK_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

# test sources also see the Check headers
ifneq ($(strip $(UNIT_OBJS) $(UNIT_HELPER_OBJS)),)
$(UNIT_OBJS) $(UNIT_HELPER_OBJS): CFLAGS += -Itests $(CHECK_CFLAGS)
endif
$(SUPPORT_OBJS) $(TOOL_OBJS): CFLAGS += -Itests
# `thinp --version` follows the Makefile's VERSION
$(CLI_OBJS): CFLAGS += -DTHINP_VERSION='"$(VERSION)"'

$(SUPPORT_A): $(SUPPORT_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $(SUPPORT_OBJS)

define tool_rule
$(1): $(2) $$(LIB_LINK) $$(FLAGS_STAMP)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $(2) $$(LIB_LINK) $$(LIB_LIBS)
endef
$(BUILDDIR)/tests/tools/wlog_fs: LIB_LIBS += -lfuse3
$(foreach f,$(TOOL_SRCS),$(eval $(call tool_rule,$(BUILDDIR)/tests/tools/$(basename $(notdir $(f))),$(OBJDIR)/$(f:.c=.o))))
$(foreach f,$(SCEN_SRCS),$(eval $(call tool_rule,$(BUILDDIR)/bin/thinp-$(basename $(notdir $(f))),$(OBJDIR)/$(f:.c=.o))))

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJS)

# (its own pattern rule, not a target-specific CFLAGS, which would leak into $(FLAGS_STAMP))
$(OBJDIR)/impl/dm/%.o: impl/dm/%.c $(FLAGS_STAMP) | $(DEPCHECK_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DM_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(DM_A): $(DM_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $(DM_OBJS)

$(LIB_SO): $(LIB_OBJS) $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,$(LIB_SONAME) -Wl,--no-undefined -o $@ $(LIB_OBJS) \
		$(LIB_LIBS)
	ln -sf libthinp.so $(BUILDDIR)/$(LIB_SONAME)

# The API tests see thinp.h and nothing else of impl/, and load libthinp.so from the build.
API_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT) -g -Iimpl/include $(SANFLAGS) \
	     $(EXTRA_CFLAGS) $(CHECK_CFLAGS)
$(BUILDDIR)/tests/test_api_%: tests/api/test_%.c $(HEADER) $(LIB_SO) $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(API_CFLAGS) $(LDFLAGS) -o $@ $< -L$(BUILDDIR) -lthinp \
		-Wl,-rpath,$(abspath $(BUILDDIR)) $(CHECK_LIBS)

$(THINP_BIN): $(CLI_OBJS) $(PLAN_LINK) $(GRAPH_LINK) $(DM_LINK) $(LIB_LINK) $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJS) $(PLAN_LINK) $(GRAPH_LINK) $(DM_LINK) $(LIB_LINK) $(GRAPH_LIBS) \
		$(DM_LIBS) $(LIB_LIBS) $(PLAN_LIBS)

$(GRAPH_A): $(GRAPH_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $(GRAPH_OBJS)

$(PLAN_A): $(PLAN_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $(PLAN_OBJS)

# (libthinp_dm.a too: its table and status parsers are pure C; the driver's archive pulls in
# its kernel backend, hence libdevmapper)
$(BUILDDIR)/tests/%: $(OBJDIR)/tests/unit/%.o $(UNIT_HELPER_OBJS) $(SUPPORT_A) $(PLAN_LINK) \
		$(GRAPH_LINK) $(DM_LINK) $(LIB_LINK) $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(UNIT_HELPER_OBJS) $(SUPPORT_A) $(PLAN_LINK) $(GRAPH_LINK) $(DM_LINK) \
		$(LIB_LINK) $(CHECK_LIBS) $(GRAPH_LIBS) $(if $(GRAPH_OBJS),$(DM_LIBS)) $(LIB_LIBS) -lm

-include $(ALL_OBJS:.o=.d)

# ---- test / asan / bench ----------------------------------------------------------------------
# Each step is a fresh make so that packages installed by `deps` (e.g. check, found with
# pkg-config) are seen by the build.
test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory run-tests

run-tests:
	@$(RUN_ENV) TEST_TIMEOUT=$(TEST_TIMEOUT) bash $(TEST_RUNNER) $(BUILDDIR)/test-logs \
		$(UNIT_BINS) $(SCRIPT_TESTS)

asan:
	@$(MAKE) --no-print-directory SANITIZE=asan test

# the regression gate's own tests (ci/gate, tests/gate): also part of run-tests
gate-selftest: all
	@$(RUN_ENV) TEST_TIMEOUT=$(TEST_TIMEOUT) bash $(TEST_RUNNER) $(BUILDDIR)/test-logs \
		$(sort $(wildcard tests/gate/*.sh))

# ThreadSanitizer runs only the tests with threads (test_*concurrency*, the control socket, the
# commit with its data flush on a second thread, the device flusher, the FUSE bridge's workers); it cannot
# share a build with ASan. Address-space randomisation is turned off (setarch -R, inherited by
# the tests) where possible: older TSan runtimes abort on kernels with large mmap_rnd_bits
# ("unexpected memory mapping").
TSAN_TESTS   = $(filter %concurrency %_control %commit_io %_expose %_flusher %_shard,$(UNIT_BINS))
TSAN_SETARCH = $(shell setarch -R true >/dev/null 2>&1 && echo setarch -R)
tsan:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory SANITIZE=tsan run-tsan

run-tsan: $(TSAN_TESTS)
	@$(RUN_ENV) TEST_TIMEOUT=$(TEST_TIMEOUT) $(TSAN_SETARCH) bash $(TEST_RUNNER) \
		$(BUILDDIR)/test-logs $(TSAN_TESTS)

# The quick matrix (scenarios/run; <= 10 min on 2 cores) into BENCH_OUT (the runner's own
# default, results/<date>-<host>-<commit>/), then into the same dir the micro-benchmarks that
# scenarios/benchmarks reads for BENCHMARKS.md's goals: the lock-scope ratios (bench_threads,
# 5 repetitions, about a minute: its runs are short, so the median of 5), the lookup cost at
# 10k / 1M / 10M mappings (bench_metadata --quick, about a minute) and the commit's writes and
# waits per 4 KiB first write + fsync (seconds).
# The engine is required here, so `make engine` (which fails loudly) rather than the optional
# build of `all`. BENCH_ARGS passes options through: make bench BENCH_ARGS="--full --repeat 5"
# (the run dir is BENCH_OUT=DIR, not --out).
BENCH_ARGS ?=
BENCH_OUT ?= results/$(shell date +%F)-$(shell hostname -s)-$(shell git rev-parse --short HEAD 2>/dev/null || echo nogit)
bench:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory engine
	@$(RUN_ENV) scenarios/run --out $(BENCH_OUT) $(BENCH_ARGS)
	@$(BUILDDIR)/tests/tools/bench_threads --reps 5 --dir $(BUILDDIR) > $(BENCH_OUT)/bench_threads.txt; \
		st=$$?; cat $(BENCH_OUT)/bench_threads.txt; exit $$st
	@$(BUILDDIR)/tests/tools/bench_metadata --quick --dir $(BUILDDIR) \
		--json $(BENCH_OUT)/bench_metadata.json > $(BENCH_OUT)/bench_metadata.txt; \
		st=$$?; cat $(BENCH_OUT)/bench_metadata.txt; exit $$st
	@$(RUN_ENV) bash tests/bench/commit_syscalls.sh > $(BENCH_OUT)/commit_syscalls.txt; \
		st=$$?; cat $(BENCH_OUT)/commit_syscalls.txt; exit $$st

# Metadata micro-benchmark (not a test): inserts/s, lookups/s and cache memory at 10k and 1M
# mappings (ARGS="--max 10000000" for the 10M point, which takes ~10 minutes).
.PHONY: bench-metadata
bench-metadata: $(BUILDDIR)/tests/tools/bench_metadata
	$(BUILDDIR)/tests/tools/bench_metadata $(ARGS)

# Lock scope benchmark (not a test): 4 KiB overwrites and first writes from 1 and 2 threads,
# memory device and an O_DIRECT file, the 2/1 throughput ratio (issue #14's goal: >= 1.8).
.PHONY: bench-threads
bench-threads: $(BUILDDIR)/tests/tools/bench_threads
	$(BUILDDIR)/tests/tools/bench_threads $(ARGS)

deps:
	@bash $(DEPS_SCRIPT)

# ---- vm-test: real-kernel harness (ci/vm/, tests/vm/; issue #6) ------------------------------
# vm-image builds (or finds up to date) the cached Debian kernel + initramfs; vm-test runs the
# differential smoke (kernel dm-thin in qemu vs libthinp, a hand-written trace), the seeded
# differential traces (tests/vm/differential.sh; VM_SCALE=ci by default, VM_SCALE=full for
# hand runs) and fails on any mismatch, then the kernel backend's own test (thinp --backend
# kernel against the real dm-thin), Docker's driver on it (tests/vm/docker_kernel.sh:
# tests/cli/docker_driver.sh with BACKEND=kernel, about 3 min under TCG) and the passdown
# power-cut check, and scenarios/run --backend kernel's set-up and cleanup (tests/vm/
# kernel_runner.sh: interrupted runs leave nothing), LVM's autoextend on its direct-lvm pool
# (tests/vm/kernel_autoextend.sh), and libthinp's metadata bytes per commit
# against the kernel's (tests/vm/meta_commit.sh, the engine's cases); all always run.
VM_SCALE ?= ci
.PHONY: vm-image vm-test
vm-image:
	@bash ci/vm/build.sh

# scenarios/run's libthinp and kernel cases (--scale tiny, loop-lvm and direct-lvm on two
# more virtual disks) in one boot of the VM,
# merged into one run dir (results/<date>-vm-<commit>; docs/kernel-backend.md). VM_BENCH_ARGS:
# ci/vm/bench.sh's options, e.g. "--repeat 3 --out DIR".
.PHONY: vm-bench
vm-bench: cli engine
	THINP=$(abspath $(THINP_BIN)) THINP_IOENGINE=$(abspath $(ENGINE_SO)) \
		bash ci/vm/bench.sh $(VM_BENCH_ARGS)

REPLAY_BIN := $(abspath $(BUILDDIR)/tests/tools/replay)
vm-test: cli engine $(BUILDDIR)/tests/tools/replay
	@rc=0; THINP=$(abspath $(THINP_BIN)) REPLAY=$(REPLAY_BIN) \
		VM_SMOKE_OUT=$(abspath $(BUILDDIR))/vm/smoke bash tests/vm/smoke.sh || rc=1; \
	THINP=$(abspath $(THINP_BIN)) REPLAY=$(REPLAY_BIN) VM_SCALE=$(VM_SCALE) \
		DIFF_OUT=$(abspath $(BUILDDIR))/vm/differential bash tests/vm/differential.sh || rc=1; \
	THINP=$(abspath $(THINP_BIN)) VM_KB_OUT=$(abspath $(BUILDDIR))/vm/kernel_backend \
		bash tests/vm/kernel_backend.sh || rc=1; \
	THINP=$(abspath $(THINP_BIN)) VM_DK_OUT=$(abspath $(BUILDDIR))/vm/docker_kernel \
		bash tests/vm/docker_kernel.sh || rc=1; \
	VM_PC_OUT=$(abspath $(BUILDDIR))/vm/passdown_crash bash tests/vm/passdown_crash.sh || rc=1; \
	VM_KR_OUT=$(abspath $(BUILDDIR))/vm/kernel_runner bash tests/vm/kernel_runner.sh || rc=1; \
	VM_AE_OUT=$(abspath $(BUILDDIR))/vm/kernel_autoextend bash tests/vm/kernel_autoextend.sh || rc=1; \
	THINP=$(abspath $(THINP_BIN)) THINP_IOENGINE=$(abspath $(ENGINE_SO)) \
		VM_MC_OUT=$(abspath $(BUILDDIR))/vm/meta_commit bash tests/vm/meta_commit.sh || rc=1; \
	exit $$rc

# ---- install ----------------------------------------------------------------------------------
$(PC_OUT): $(PC_IN) FORCE
	@mkdir -p $(@D)
	@sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< | cmp -s - $@ 2>/dev/null || \
		sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# The shared library is installed as libthinp.so.VERSION with the SONAME link and the
# development link beside it, as ldconfig expects; the fio engine goes to lib/thinbench/.
LIBDIR    := $(DESTDIR)$(PREFIX)/lib
ENGINEDIR := $(LIBDIR)/thinbench
install: lib cli engine $(PC_OUT)
	install -d $(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 0644 $(LIB_A) $(LIBDIR)/libthinp.a
	install -m 0755 $(LIB_SO) $(LIBDIR)/libthinp.so.$(VERSION)
	ln -sf libthinp.so.$(VERSION) $(LIBDIR)/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(LIBDIR)/libthinp.so
	install -m 0644 $(HEADER) $(DESTDIR)$(PREFIX)/include/thinp.h
	install -m 0755 $(THINP_BIN) $(DESTDIR)$(PREFIX)/bin/thinp
	install -m 0644 $(PC_OUT) $(LIBDIR)/pkgconfig/libthinp.pc
	@if [ -f $(ENGINE_SO) ]; then install -d $(ENGINEDIR) && \
		install -m 0755 $(ENGINE_SO) $(ENGINEDIR)/thinp.so && \
		echo "installed the fio engine: fio --ioengine=external:$(PREFIX)/lib/thinbench/thinp.so"; \
	else echo "install: $(ENGINE_SO) not built (fio's source could not be had); 'make engine' says why" >&2; exit 1; fi

uninstall:
	rm -f $(LIBDIR)/libthinp.a $(LIBDIR)/libthinp.so $(LIBDIR)/$(LIB_SONAME) \
		$(LIBDIR)/libthinp.so.$(VERSION) $(DESTDIR)$(PREFIX)/include/thinp.h \
		$(DESTDIR)$(PREFIX)/bin/thinp $(LIBDIR)/pkgconfig/libthinp.pc $(ENGINEDIR)/thinp.so
	-rmdir $(ENGINEDIR) 2>/dev/null

# ---- fio external ioengine: ioengine/thinp.so (issue #4) ----------------------------------------
# fio loads an external engine by dlopen() and reads it with its own struct layouts, and refuses
# one whose ops version differs from its FIO_IOOPS_VERSION; so the engine is compiled against the
# headers of the exact fio installed: ioengine/fio-src.sh fetches that version's Debian source
# (`apt-get source`, through a private deb-src apt state; cached in ~/.cache/thinbench/fio-src)
# or checks FIO_SRC=<dir>, runs fio's configure (config-host.h), and refuses a version mismatch.
#   make engine   build it, failing loudly when fio's source cannot be had
#   make / all    build it too, but only warn (exit code 3 of fio-src.sh) when the source cannot
#                 be fetched (no network, no deb-src mirror, fio not from Debian): the library
#                 and CLI stay buildable anywhere; `make test` then fails the engine tests.
# Compile errors and version mismatches always fail. Not built under SANITIZE=asan: fio is not
# an ASan binary, so it cannot load an instrumented .so; the engine tests are skipped there.
FIO_SRC        ?=
ENGINE_SO      ?= ioengine/thinp.so
# Every ioengine/*.c goes into the .so; all but the statistics core (plain C11) need fio's headers.
ENGINE_STATS_OBJ := $(OBJDIR)/ioengine/engine_stats.o
ENGINE_FIO_OBJS  := $(filter-out $(ENGINE_STATS_OBJ), \
		    $(patsubst %.c,$(OBJDIR)/%.o,$(sort $(wildcard ioengine/*.c))))
ENGINE_OBJS    := $(ENGINE_FIO_OBJS) $(ENGINE_STATS_OBJ)
FIO_SRC_SCRIPT := ioengine/fio-src.sh
FIO_SRC_PATH   := $(BUILDDIR)/fio-src.path
ENGINE_TESTS   := $(sort $(wildcard tests/engine/engine_*.sh))
# fio's own compile flags for its engines (fio's Makefile: CPPFLAGS, -include config-host.h);
# gnu11 because fio's headers use GNU C. Warnings stay fatal for our code; fio's headers come in
# through -isystem so theirs do not count. Only `ioengine` is exported from the .so.
ENGINE_CFLAGS   = -std=gnu11 -Wall -Wextra -Werror $(OPT) -g -fPIC -fvisibility=hidden \
		  -D_GNU_SOURCE -D_LARGEFILE_SOURCE -D_FILE_OFFSET_BITS=64 -DFIO_INTERNAL \
		  -DFIO_INC_DEBUG -DBITS_PER_LONG=$(shell getconf LONG_BIT) \
		  -Iimpl -Iimpl/include -Iioengine $(EXTRA_CFLAGS)

.PHONY: engine engine-optional
ifeq ($(SANITIZE),)
all: engine-optional

engine: $(ENGINE_SO)

engine-optional: lib
	@FIO_SRC='$(FIO_SRC)' bash $(FIO_SRC_SCRIPT) >/dev/null; rc=$$?; \
	if [ $$rc -eq 3 ]; then \
		echo "warning: $(ENGINE_SO) NOT built (see above); 'make engine' insists" >&2; \
	elif [ $$rc -ne 0 ]; then exit $$rc; \
	else $(MAKE) --no-print-directory engine; fi

# Re-resolved on every run (cheap once cached); the file changes only when the tree does.
$(FIO_SRC_PATH): FORCE
	@mkdir -p $(@D)
	@dir=$$(FIO_SRC='$(FIO_SRC)' bash $(FIO_SRC_SCRIPT)) || { rm -f $@; exit 1; }; \
	echo "$$dir" | cmp -s - $@ 2>/dev/null || echo "$$dir" > $@

# (rebuilt when the engine's own flags change, as $(FLAGS_STAMP) does for the rest)
ENGINE_STAMP := $(BUILDDIR)/.engine-flags
$(ENGINE_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(CC) | $(ENGINE_CFLAGS)' | cmp -s - $@ 2>/dev/null || echo '$(CC) | $(ENGINE_CFLAGS)' > $@

$(ENGINE_FIO_OBJS): $(OBJDIR)/ioengine/%.o: ioengine/%.c $(FIO_SRC_PATH) $(FLAGS_STAMP) $(ENGINE_STAMP)
	@mkdir -p $(@D)
	@src=$$(cat $(FIO_SRC_PATH)); ver=$$($${FIO:-fio} --version | head -n1); \
	echo "$(CC) [engine flags, fio $$ver headers from $$src] -c $< -o $@"; \
	$(CC) $(ENGINE_CFLAGS) $(DEPFLAGS) -isystem "$$src" -include "$$src/config-host.h" \
		-DTHINP_FIO_VERSION="\"$$ver\"" -c $< -o $@

# (an explicit rule, not a target-specific CFLAGS, which would leak into $(FLAGS_STAMP))
$(ENGINE_STATS_OBJ): ioengine/engine_stats.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=hidden $(DEPFLAGS) -c $< -o $@

# libthinp.a goes into the .so with its symbols kept private (--exclude-libs), so fio's own
# exported symbols can never interpose on them; fio's symbols resolve when fio dlopen()s it.
$(ENGINE_SO): $(ENGINE_OBJS) $(LIB_A) $(FLAGS_STAMP)
	$(CC) -shared $(LDFLAGS) -o $@ $(ENGINE_OBJS) -Wl,--exclude-libs,ALL $(LIB_A) $(LIB_LIBS)

-include $(ENGINE_OBJS:.o=.d)
else
SCRIPT_TESTS := $(filter-out $(ENGINE_TESTS),$(SCRIPT_TESTS))
engine engine-optional:
	@echo "$@: the fio engine is not built with SANITIZE=$(SANITIZE) (fio cannot load an ASan .so)"
endif

.PHONY: engine-clean
clean: engine-clean
engine-clean:
	rm -f $(ENGINE_SO)

# ---- housekeeping -----------------------------------------------------------------------------
clean:
	rm -rf build build-asan build-tsan $(BUILDDIR) impl/cli/thinp

# (guarded: clang-format with no file arguments would read stdin)
format:
	@files="$(FORMAT_SRCS)"; [ -z "$$files" ] || clang-format -i $$files

format-check:
	@files="$(FORMAT_SRCS)"; [ -z "$$files" ] || clang-format --dry-run --Werror $$files

.PHONY: FORCE
FORCE:

# ---- fuzz: libFuzzer harnesses (tests/fuzz) ---------------------------------------------------
# Every tests/fuzz/fuzz_NAME.c is a libFuzzer harness (LLVMFuzzerTestOneInput) over libthinp,
# working in memory only; the other tests/fuzz/*.c files are helpers linked into each, except
# mkcorpus.c, the seed generator. clang builds them into $(FUZZ_DIR)/ with
# -fsanitize=fuzzer,address,undefined, compiling the library sources itself (the coverage
# instrumentation must reach them) with the project's warnings.
#   make fuzz-build    $(FUZZ_DIR)/fuzz_NAME for each harness
#   make fuzz          each harness for FUZZ_SECONDS on its committed corpus tests/fuzz/corpus/NAME/
#                      (read-only: new inputs go to a scratch dir) with tests/fuzz/NAME.dict when
#                      present; fails on any crash, leak, timeout (FUZZ_TIMEOUT s per input) or
#                      out-of-memory; reproducers land in $(FUZZ_DIR)/artifacts/, logs in
#                      $(FUZZ_DIR)/logs/. FUZZ_ARGS passes more libFuzzer options.
#   make fuzz-corpus   regenerate the seed corpora (tests/fuzz/mkcorpus.c)
# Reproduce a finding: $(FUZZ_DIR)/fuzz_NAME FILE. A long run by hand: tests/README.md.
FUZZ_CC      ?= clang
FUZZ_DIR     ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 10
FUZZ_ARGS    ?=
FUZZ_SRCS    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_HELPERS := $(sort $(filter-out tests/fuzz/fuzz_% tests/fuzz/mkcorpus.c, \
		$(wildcard tests/fuzz/*.c)))
FUZZ_NAMES   := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=%)
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 -g -Iimpl -Iimpl/include \
		-Itests/fuzz -fno-omit-frame-pointer -fno-sanitize-recover=all \
		-fsanitize=fuzzer-no-link,address,undefined
FUZZ_OBJS    := $(LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_HELPERS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_STAMP   := $(FUZZ_DIR)/.toolchain-ok
# A smaller ASan quarantine: its default 256 MiB, cycled through by every input's allocations,
# made the pool harness spend more time in page faults than in the pool.
FUZZ_ASAN_OPTIONS ?= quarantine_size_mb=32

.PHONY: fuzz fuzz-build fuzz-corpus
fuzz-build: $(FUZZ_BINS)

# clang and its libFuzzer runtime come from `make deps` (ci/deps.sh); say so instead of failing
# on a missing runtime library.
$(FUZZ_STAMP):
	@mkdir -p $(@D)
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n%s\n' \
		'{ (void)d; (void)n; return 0; }' > $(@D)/probe.c
	@$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $(@D)/probe $(@D)/probe.c \
		2>/dev/null || { echo "make: $(FUZZ_CC) with libFuzzer is missing:" \
		"run 'make deps' as root" >&2; exit 1; }
	@rm -f $(@D)/probe $(@D)/probe.c && touch $@

$(FUZZ_DIR)/obj/%.o: %.c | $(FUZZ_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_OBJS)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIB_LIBS)

$(FUZZ_DIR)/mkcorpus: $(FUZZ_DIR)/obj/tests/fuzz/mkcorpus.o $(FUZZ_OBJS)
	$(FUZZ_CC) -fsanitize=address,undefined -o $@ $^ $(LIB_LIBS)

fuzz-corpus: $(FUZZ_DIR)/mkcorpus
	$(FUZZ_DIR)/mkcorpus tests/fuzz/corpus

fuzz: fuzz-build
	@mkdir -p $(FUZZ_DIR)/logs $(FUZZ_DIR)/artifacts; tmp=$$(mktemp -d); pass=0; fail=0; \
	for n in $(FUZZ_NAMES); do \
		mkdir -p $$tmp/$$n; dict=; \
		[ -f tests/fuzz/$$n.dict ] && dict=-dict=tests/fuzz/$$n.dict; \
		log=$(FUZZ_DIR)/logs/$$n.log; \
		if ASAN_OPTIONS=$(FUZZ_ASAN_OPTIONS) $(FUZZ_DIR)/fuzz_$$n \
			-max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) \
			-rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/artifacts/$$n- $$dict $(FUZZ_ARGS) \
			$$tmp/$$n tests/fuzz/corpus/$$n >$$log 2>&1; then \
			pass=$$((pass + 1)); \
			done=$$(grep -E '^#[0-9]+[[:space:]]+DONE' $$log | tail -n 1); \
			echo "fuzz $$n: ok, $$done"; \
		else \
			fail=$$((fail + 1)); echo "fuzz $$n: FAILED (log: $$log)"; \
			tail -n 40 $$log; \
		fi; \
	done; rm -rf $$tmp; echo "fuzz: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

clean: fuzz-clean
.PHONY: fuzz-clean
fuzz-clean:
	rm -rf $(FUZZ_DIR)

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_DIR)/obj/tests/fuzz/%.d)
