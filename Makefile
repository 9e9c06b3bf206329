# QEMU Rewind: top-level commands. Everything is built under build/.
#
#   make            configure if needed, build QEMU (build/qemu) and our tools
#   make check      build everything, the guest images, and run every test
#                   (TESTS='boot:*' or TESTS='[gdb]' runs a subset)
#   make check-long the long suites (real-VM restore fidelity, [realvm-long])
#   make demo       record a driver's stack smash with its USB device, replay
#                   it under gdb without the device, watch the return address
#                   and reverse-continue to the copying line
#   make vanilla    build the unpatched base into build/vanilla
#   make bench      compare this build with vanilla (not part of check)
#   make images     build the guest kernel + initramfs images
#   make vm-image   build the Debian 12 VM of the real-VM tests (debootstrap)
#   make refresh-patches   export commits in build/src to patches/
#   make fuzz       libFuzzer on the log, bundle and checkpoint readers (clang,
#                   build/fuzz), FUZZ_SECONDS in all (default 600); fails on a crash
#
# As root, missing Debian packages are installed on the way.

SHELL := /bin/bash
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
NINJA ?= ninja
TESTS ?=

# ccache (used when installed) keys on paths: make them relative to the
# checkout so that other clones of the repository hit the same cache.
export CCACHE_BASEDIR := $(TOP)
export CCACHE_NOHASHDIR := 1

.PHONY: all configure qemu tools images vm-image check check-long demo vanilla bench \
        refresh-patches clean distclean deps-test fuzz

all: qemu tools

# ./configure is cheap to re-run: it only redoes what changed.
configure:
	@$(TOP)/configure

# configure has just prepared build/src (patches and overlay) for this build.
qemu: configure
	$(NINJA) -C $(TOP)/build/qemu qemu-system-x86_64 qemu-img

tools: configure
	$(NINJA) -C $(TOP)/build/tools

deps-test:
	@$(TOP)/scripts/install-deps.sh test

images: deps-test
	@$(TOP)/scripts/make-guest-images.sh $(TOP)/build/images

# The Debian VM of the real-VM tests (debootstrap, ~5 min, cached; it
# needs this build's qemu-img).
vm-image: deps-test qemu
	@$(TOP)/scripts/make-debian-vm.sh $(TOP)/build/images/debian-vm

check: all images vm-image
	@$(TOP)/tests/run-tests.sh $(TESTS)

# The long suites: real-VM restore fidelity at 4 GiB and 100 points.
check-long: all images vm-image
	@$(TOP)/tests/run-tests.sh '[realvm-long]'

demo: all images
	@. $(TOP)/scripts/env.sh && $(TOP)/build/tools/tests/demo/rewind-demo

vanilla: configure
	@$(TOP)/scripts/build-vanilla.sh

bench: all vanilla images
	@. $(TOP)/scripts/env.sh && $(TOP)/build/tools/tests/bench/rewind-bench --out $(TOP)/build/bench/results.json $(BENCH_ARGS)

refresh-patches:
	@$(TOP)/scripts/refresh-patches.sh

FUZZ_SECONDS ?= 600
fuzz:
	@$(TOP)/scripts/install-deps.sh fuzz
	@$(TOP)/tests/fuzz/run-fuzzers.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(TOP)/build/qemu $(TOP)/build/tools $(TOP)/build/vanilla $(TOP)/build/test-tmp

# Also drops the fetched base, the prepared trees and the guest images.
distclean:
	rm -rf $(TOP)/build
