# SPDX-License-Identifier: GPL-2.0-only
#
# The dm-clone build. The first half is kbuild's: it serves an out-of-tree
# build and a drop into drivers/md of a kernel tree, where these lines go
# into drivers/md/Makefile (and Kconfig's entry into drivers/md/Kconfig),
# the object list being the dm-clone-y line below:
#
#	obj-$(CONFIG_DM_CLONE)	+= dm-clone.o
#	dm-clone-y		+= dm-clone-target.o dm-clone-hydration.o \
#				   dm-clone-copier.o dm-clone-metadata.o
#	include $(src)/dm-clone-probes.mk
#
# (the last one for a kernel older than the code: see dm-clone-compat.h).
# scripts/intree.sh does that drop in the debug kernel's tree (`make
# intree`), and the debug tier runs on the module built there.
#
# The second half wraps kbuild for an out-of-tree build and carries the
# user-facing targets.

ifneq ($(KERNELRELEASE),)

obj-$(if $(CONFIG_DM_CLONE),$(CONFIG_DM_CLONE),m) += dm-clone.o
dm-clone-y += dm-clone-target.o dm-clone-hydration.o dm-clone-copier.o \
	      dm-clone-metadata.o

# Out of tree, the private persistent-data headers come from the build
# cache (see scripts/deps.sh); in a kernel tree they are beside us.
ifneq ($(PDATA_INC),)
ccflags-y += -I$(PDATA_INC)
endif

# The feature probes (dm-clone-probes.c, dm-clone-features.h): in a
# file of their own, which drivers/md/Makefile includes too.
include $(src)/dm-clone-probes.mk

else

# Resolved by `scripts/deps.sh --print`, which only reads the installed
# Debian packages and the cache: parsing this Makefile installs nothing.
# `make deps` installs them; the targets that need them say so when they
# are missing, and the targets that install their own (check, demo, ...)
# run `deps` first, then the rest in a new make that resolves them again.
# Each can be overridden on the command line (for example
# KDIR=/path/to/kernel/tree).
DEPS_VARS := $(shell scripts/deps.sh --print 2>/dev/null)
KDIR ?= $(patsubst KDIR=%,%,$(filter KDIR=%,$(DEPS_VARS)))
PDATA_INC ?= $(patsubst PDATA_INC=%,%,$(filter PDATA_INC=%,$(DEPS_VARS)))
CHECKPATCH ?= $(patsubst CHECKPATCH=%,%,$(filter CHECKPATCH=%,$(DEPS_VARS)))

SOURCES := dm-clone-target.c dm-clone-target.h dm-clone-hydration.c \
	   dm-clone-copier.c dm-clone-copier.h dm-clone-window.h \
	   dm-clone-share.h \
	   dm-clone-metadata.c dm-clone-metadata.h \
	   dm-clone-region.h dm-clone-compat.h dm-clone-probes.c \
	   tests/kunit/dm-clone-kunit.c

.PHONY: all modules deps have-deps sparse checkpatch static unit check \
	check-all check-long check-debug kunit-static intree intree-checkpatch \
	demo bench install dkms clean help \
	stress man install-tools uninstall uninstall-tools deb deb-test

all: modules

# Installs the Debian packages and extracts the kernel's private headers.
deps:
	scripts/deps.sh

# Fails, saying what to run, when the build's dependencies are missing.
have-deps:
	@test -n "$(KDIR)" -a -d "$(KDIR)" || { echo "error: no kernel headers (KDIR='$(KDIR)'): run 'make deps' first (it installs them), or pass KDIR=" >&2; exit 1; }
	@test -f "$(PDATA_INC)/persistent-data/dm-bitset.h" || { echo "error: persistent-data headers missing (PDATA_INC='$(PDATA_INC)'): run 'make deps' first (it extracts them from Debian's linux-source package), or pass PDATA_INC=" >&2; exit 1; }

modules: have-deps
	$(MAKE) -C $(KDIR) M=$(CURDIR) PDATA_INC=$(PDATA_INC) modules

# Static checks: W=1 and sparse (C=2) must print no warning, checkpatch
# --strict must be clean on our files.
sparse: have-deps
	$(MAKE) -C $(KDIR) M=$(CURDIR) PDATA_INC=$(PDATA_INC) W=1 C=2 modules 2>&1 | tee .sparse.log
	@! grep -E "warning:|error:" .sparse.log || { echo "error: W=1/sparse warnings above" >&2; exit 1; }
	@rm -f .sparse.log

checkpatch: have-deps
	@test -f "$(CHECKPATCH)" || { echo "error: checkpatch.pl missing (CHECKPATCH='$(CHECKPATCH)'): run 'make deps' first" >&2; exit 1; }
	$(CHECKPATCH) --strict --no-tree --quiet --show-types -f $(SOURCES) \
		--ignore FILE_PATH_CHANGES,SPDX_LICENSE_TAG

static: sparse checkpatch

unit:
	$(MAKE) -C tests/unit

# The userspace tools: clone_tools and its links (clone_check, clone_dump,
# clone_restore, clone_repair) and dmclone-replay.
.PHONY: tools fuzz
tools:
	$(MAKE) -C tools

# libFuzzer (clang) on the metadata tools' parsers, FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz:
	@command -v $(or $(CLANG),clang) >/dev/null 2>&1 || bash -c '. scripts/common.sh && apt_install clang'
	$(MAKE) -C tests/fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

# The README's test command: build, static checks, unit tests, guest suite.
# KERNEL=6.12 or KERNEL=7 runs the guest suite on that kernel instead of
# Debian 12's 6.1, with the module built for it in its suite's chroot
# (scripts/kernels.sh); the static checks always run on 6.1.
KERNEL ?=
# The long tests (031: a clone of 2^31 regions, ten minutes of a guest
# under software emulation) run apart: `make check-long`, and in CI's
# second lane.
LONG_TESTS := 031
check: deps
	$(MAKE) static unit
	tests/run $(if $(filter-out 6.1,$(KERNEL)),--kernel $(KERNEL)) \
		$(addprefix --skip ,$(LONG_TESTS))

check-long: deps
	tests/run $(if $(filter-out 6.1,$(KERNEL)),--kernel $(KERNEL)) $(LONG_TESTS)

# The guest suite on 6.1, 6.12 and 7 in turn (scripts/check-all.sh).
check-all: deps
	$(MAKE) static unit
	scripts/check-all.sh

# The guest suite on the debug kernel (scripts/debug-kernel.sh: KASAN,
# lockdep, kmemleak, sleeping-in-atomic checks, KUnit), built from
# Debian's linux-source and cached (its first build: ~11 min with 2 CPUs),
# the suite many times the 6.1 suite's time, on dm-clone.ko built in that
# kernel's tree (scripts/intree.sh). The KUnit module is statically
# checked against that tree first, and our files as a patch series.
check-debug: deps
	$(MAKE) static unit kunit-static intree-checkpatch
	tests/run --kernel debug

# tests/kunit built W=1 with sparse against the debug kernel's tree (the
# host's 6.1 has no KUnit to link against): no warning allowed.
kunit-static: deps
	@kdir=$$(scripts/debug-kernel.sh | sed -n 's/^KDIR=//p') && \
	out=$$(mktemp -d) && cp tests/kunit/Makefile tests/kunit/*.c $$out/ && \
	$(MAKE) -C $$kdir M=$$out W=1 C=2 ccflags-y=-I$(CURDIR) modules >$$out/log 2>&1; \
	rc=$$?; cat $$out/log; \
	if [ $$rc != 0 ] || grep -E "warning:|error:" $$out/log >/dev/null; then \
		echo "error: tests/kunit: build failed or W=1/sparse warnings above" >&2; rm -rf $$out; exit 1; \
	fi; rm -rf $$out

# dm-clone.ko built in tree, in drivers/md of (a copy of) the debug
# kernel's tree with CONFIG_DM_CLONE=m (scripts/intree.sh; the debug tier
# builds it so); intree-checkpatch: the tree's checkpatch.pl --strict on
# our files as a patch series against that tree.
intree: deps
	scripts/intree.sh

intree-checkpatch: deps
	scripts/intree.sh checkpatch

demo: deps
	$(MAKE) modules
	scripts/demo.sh

# The benchmarks (bench/README.md): by default on sid's 7.x, the kernel
# that ships its own dm-clone, beside it (--peer: ours / the peer's
# figures); BENCH="..." for other options (BENCH= for 6.1, ours alone).
BENCH ?= --kernel 7 --peer
bench: deps
	$(MAKE) modules
	bench/run $(BENCH)

# The stress test (tests/090-stress.sh) for 20 minutes instead of the
# suite's short run; STRESS_SECONDS=N to choose.
STRESS_SECONDS ?= 1200
stress: deps
	$(MAKE) modules
	tests/run --env STRESS_SECONDS=$(STRESS_SECONDS) 090

# The kernel release the headers in KDIR are for.
KVER ?= $(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"/\1/p' $(KDIR)/include/generated/utsrelease.h 2>/dev/null)

# The version of the release, for the tool, DKMS and the Debian packages.
VERSION := $(shell cat VERSION)

# Manual pages: every man/NAME.8.rst becomes man/NAME.8 (rst2man, from
# python3-docutils; a docutils warning fails the build).
MAN_PAGES := $(patsubst %.rst,%,$(wildcard man/*.8.rst))
man: $(MAN_PAGES)
man/%.8: man/%.8.rst
	@command -v rst2man >/dev/null || { echo "error: rst2man is missing (Debian: apt install python3-docutils)" >&2; exit 1; }
	rst2man --exit-status=warning $< $@.tmp && mv $@.tmp $@

# Installs into updates/, which depmod ranks ahead of a dm-clone the
# kernel may ship itself; refuses when the running kernel's own dm-clone
# is loaded (scripts/install-check.sh names the collision). Then the
# tools (install-tools).
install: modules
	scripts/install-check.sh $(KVER) dm-clone.ko
	$(MAKE) -C $(KDIR) M=$(CURDIR) PDATA_INC=$(PDATA_INC) INSTALL_MOD_DIR=updates modules_install
	depmod -a $(KVER)
	$(MAKE) install-tools

# The tool with its version, manual pages, bash completion, the systemd
# generator and units, the udev rule and its helper, the documentation.
# PREFIX=/usr/local by default (the Debian package: /usr); systemd and
# udev files go where they look by default, /usr/lib/systemd and
# /usr/lib/udev, with the tool's path written into them.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/dmclone
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
SYSTEMDDIR ?= /usr/lib/systemd
UDEVDIR ?= /usr/lib/udev
TOOL_FILES := $(SBINDIR)/dmclone $(COMPLETIONDIR)/dmclone \
	$(addprefix $(SBINDIR)/,clone_tools clone_check clone_dump clone_restore clone_repair) \
	$(SYSTEMDDIR)/system-generators/dmclone-generator \
	$(SYSTEMDDIR)/system/dmclone-finish@.service \
	$(UDEVDIR)/dmclone-destination $(UDEVDIR)/rules.d/61-dmclone-destination.rules \
	$(DOCDIR)/dm-clone.rst $(DOCDIR)/boot.rst $(DOCDIR)/metadata-tools.rst \
	$(DOCDIR)/transports.rst \
	$(patsubst man/%,$(MANDIR)/man8/%,$(MAN_PAGES))
install-tools: man
	install -D -m 755 scripts/dmclone $(DESTDIR)$(SBINDIR)/dmclone
	$(MAKE) -C tools install DESTDIR=$(DESTDIR) SBINDIR=$(SBINDIR)
	sed -i 's/^DMCLONE_VERSION=@VERSION@$$/DMCLONE_VERSION=$(VERSION)/' $(DESTDIR)$(SBINDIR)/dmclone
	install -D -m 644 completion/dmclone $(DESTDIR)$(COMPLETIONDIR)/dmclone
	install -d $(DESTDIR)$(SYSTEMDDIR)/system-generators $(DESTDIR)$(SYSTEMDDIR)/system
	sed 's|/usr/sbin/dmclone|$(SBINDIR)/dmclone|' systemd/dmclone-generator \
		>$(DESTDIR)$(SYSTEMDDIR)/system-generators/dmclone-generator
	chmod 755 $(DESTDIR)$(SYSTEMDDIR)/system-generators/dmclone-generator
	sed 's|/usr/sbin/dmclone|$(SBINDIR)/dmclone|' systemd/dmclone-finish@.service \
		>$(DESTDIR)$(SYSTEMDDIR)/system/dmclone-finish@.service
	install -D -m 755 udev/dmclone-destination $(DESTDIR)$(UDEVDIR)/dmclone-destination
	install -D -m 644 udev/61-dmclone-destination.rules $(DESTDIR)$(UDEVDIR)/rules.d/61-dmclone-destination.rules
	install -D -m 644 -t $(DESTDIR)$(MANDIR)/man8 $(MAN_PAGES)
	install -D -m 644 -t $(DESTDIR)$(DOCDIR) Documentation/dm-clone.rst Documentation/boot.rst \
		Documentation/metadata-tools.rst Documentation/transports.rst

# Undoes `make install`: the module of kernel KVER (the headers' in KDIR)
# and the tools (same PREFIX as the install).
uninstall: uninstall-tools
	rm -f $(DESTDIR)/lib/modules/$(KVER)/updates/dm-clone.ko $(DESTDIR)/lib/modules/$(KVER)/updates/dm-clone.ko.*
	depmod -a $(KVER)
	@! test -d /sys/module/dm_clone || echo "note: dm-clone is still loaded; unload it with 'modprobe -r dm-clone' once no clone uses it"

uninstall-tools:
	rm -f $(addprefix $(DESTDIR),$(TOOL_FILES))
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null

# The Debian packages dm-clone-dkms and dmclone, built in out/deb/
# (scripts/deb.sh: installs the build dependencies, dpkg-buildpackage,
# lintian); deb-test installs them in a fresh bookworm chroot, lets DKMS
# build the module, removes them and checks nothing is left.
deb:
	scripts/deb.sh

deb-test:
	scripts/deb-test.sh

# Register the sources with DKMS so the module follows kernel updates.
dkms: deps
	PDATA_INC=$(or $(PDATA_INC),$$(scripts/deps.sh --print | sed -n 's/^PDATA_INC=//p')) scripts/dkms.sh

clean:
	$(if $(KDIR),$(MAKE) -C $(KDIR) M=$(CURDIR) clean,rm -f *.o *.ko *.mod *.mod.c .*.cmd Module.symvers modules.order dm-clone-features.h .dm-clone-probes.log)
	rm -f $(MAN_PAGES)
	$(MAKE) -C tests/unit clean

help:
	@echo "make          build dm-clone.ko (after 'make deps')"
	@echo "make deps     install what building it needs (Debian packages, kernel headers)"
	@echo "make check    build, static checks, unit tests, guest test suite"
	@echo "              (KERNEL=6.12 or KERNEL=7: the suite on that kernel)"
	@echo "make check-all  the guest suite on 6.1, 6.12 and 7 in turn"
	@echo "make check-long the long tests make check leaves out (031: 2^31 regions)"
	@echo "make check-debug  the guest suite and KUnit tests on the debug kernel"
	@echo "              (KASAN, lockdep, kmemleak; slow: the kernel build alone ~11 min)"
	@echo "make intree   build dm-clone.ko in drivers/md of the debug kernel's tree"
	@echo "make intree-checkpatch  checkpatch --strict on the patch series for that tree"
	@echo "make demo     show a clone working end to end in a guest"
	@echo "make bench    benchmarks on 7.x beside the kernel's own dm-clone (tables of ratios)"
	@echo "make stress   fio verify + hydration + reloads for 20 min (STRESS_SECONDS=N)"
	@echo "make tools    build clone_tools (clone_check/dump/restore/repair)"
	@echo "make fuzz     fuzz the metadata tools' parsers (FUZZ_SECONDS=60 each)"
	@echo "make install  install dm-clone.ko (updates/) and the dmclone tool,"
	@echo "              its man pages, completion, systemd and udev files"
	@echo "              (make uninstall removes them; install-tools: only the tools)"
	@echo "make man      the manual pages (man/*.8.rst -> man/*.8)"
	@echo "make deb      the Debian packages dm-clone-dkms and dmclone (out/deb/)"
	@echo "make deb-test install them in a bookworm chroot, build with DKMS, remove"
	@echo "make dkms     register the module with DKMS"

endif
