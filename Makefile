# SPDX-License-Identifier: GPL-2.0-only
#
# dm-clone build. The first half is kbuild's: it serves an out-of-tree
# build and a drop into drivers/md of a kernel tree, where these two lines
# go into drivers/md/Makefile (and Kconfig's entry into drivers/md/Kconfig):
#
#	obj-$(CONFIG_DM_CLONE)	+= dm-clone.o
#	dm-clone-y		+= dm-clone-target.o dm-clone-metadata.o
#
# The second half wraps kbuild for an out-of-tree build and carries the
# user-facing targets.

ifneq ($(KERNELRELEASE),)

obj-$(if $(CONFIG_DM_CLONE),$(CONFIG_DM_CLONE),m) += dm-clone.o
dm-clone-y += dm-clone-target.o dm-clone-metadata.o

# Out of tree, the private persistent-data headers come from the build
# cache (see scripts/deps.sh); in a kernel tree they are beside us.
ifneq ($(PDATA_INC),)
ccflags-y += -I$(PDATA_INC)
endif

else

# Resolved by scripts/deps.sh from the installed Debian packages; each can
# be overridden on the command line (for example KDIR=/path/to/kernel/tree).
DEPS_VARS := $(shell scripts/deps.sh 2>/dev/null)
KDIR ?= $(patsubst KDIR=%,%,$(filter KDIR=%,$(DEPS_VARS)))
PDATA_INC ?= $(patsubst PDATA_INC=%,%,$(filter PDATA_INC=%,$(DEPS_VARS)))
CHECKPATCH ?= $(patsubst CHECKPATCH=%,%,$(filter CHECKPATCH=%,$(DEPS_VARS)))

SOURCES := dm-clone-target.c dm-clone-metadata.c dm-clone-metadata.h dm-clone-region.h dm-clone-compat.h

.PHONY: all modules deps sparse checkpatch static unit check demo bench \
	install clean help

all: modules

deps:
	scripts/deps.sh

modules:
	@test -n "$(KDIR)" -a -d "$(KDIR)" || { echo "error: no kernel headers (KDIR='$(KDIR)'); run 'make deps' or pass KDIR=" >&2; exit 1; }
	@test -f "$(PDATA_INC)/persistent-data/dm-bitset.h" || { echo "error: persistent-data headers missing (PDATA_INC='$(PDATA_INC)'); run 'make deps' to extract them from Debian's linux-source package" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) PDATA_INC=$(PDATA_INC) modules

# Static checks: W=1 and sparse (C=2) must print no warning, checkpatch
# --strict must be clean on our files.
sparse:
	$(MAKE) -C $(KDIR) M=$(CURDIR) PDATA_INC=$(PDATA_INC) W=1 C=2 modules 2>&1 | tee .sparse.log
	@! grep -E "warning:|error:" .sparse.log || { echo "error: W=1/sparse warnings above" >&2; exit 1; }
	@rm -f .sparse.log

checkpatch:
	$(CHECKPATCH) --strict --no-tree --quiet --show-types -f $(SOURCES) \
		--ignore FILE_PATH_CHANGES,SPDX_LICENSE_TAG

static: sparse checkpatch

unit:
	$(MAKE) -C tests/unit

# The README's test command: build, static checks, unit tests, guest suite.
check: deps static unit
	tests/run

demo: deps modules
	scripts/demo.sh

bench: deps modules
	bench/run

install: modules
	$(MAKE) -C $(KDIR) M=$(CURDIR) PDATA_INC=$(PDATA_INC) modules_install
	depmod -a $(notdir $(KDIR:/usr/src/linux-headers-%=%)) || true

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	$(MAKE) -C tests/unit clean

help:
	@echo "make          build dm-clone.ko"
	@echo "make check    build, static checks, unit tests, guest test suite"
	@echo "make demo     show a clone working end to end in a guest"
	@echo "make bench    benchmarks (prints tables of ratios)"

endif
