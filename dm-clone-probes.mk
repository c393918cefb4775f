# SPDX-License-Identifier: GPL-2.0-only
#
# dm-clone's feature probes (see dm-clone-probes.c), for kbuild: included
# after the dm-clone-y line by our Makefile (out of tree) and, in a kernel
# tree, by drivers/md/Makefile (scripts/intree.sh writes the line).
#
# dm-clone-features.h, beside the objects, defines CLONE_HAVE_<NAME> for
# each probe that compiles against this kernel with this kernel's flags.
# It is regenerated only when the kernel (release, tree, compiler) or the
# probes change, which its key line records. Only dm-clone's objects see
# it (per-object flags: in drivers/md, ccflags-y would reach every target).

CLONE_PROBES := QL_DISCARD_MISALIGNED CONST_BM_VALIDATOR DM_DEVT_FROM_PATH \
		PENDING_HOLDERS DM_IO_UNSUP_BITS DM_H
$(foreach o,$(dm-clone-y),$(eval CFLAGS_$(o) += -I$(obj) -DDM_CLONE_FEATURES))
clean-files += dm-clone-features.h .dm-clone-probes.log
clone_probe_flags = $(filter-out -Wp$(comma)% -DKBUILD_MODNAME=% \
			-D__KBUILD_MODNAME=% -DKBUILD_BASENAME=%,$(c_flags)) \
		    -DKBUILD_MODNAME='"dm_clone_probe"' \
		    -DKBUILD_BASENAME='"dm_clone_probe"' \
		    -Werror=incompatible-pointer-types \
		    -Werror=implicit-function-declaration
clone_probe_key = $(KERNELRELEASE) $(abspath $(objtree)) \
		  $(CONFIG_CC_VERSION_TEXT) $(CLONE_PROBES)

$(addprefix $(obj)/,$(dm-clone-y)): $(obj)/dm-clone-features.h

$(obj)/dm-clone-features.h: $(src)/dm-clone-probes.c FORCE
	$(Q)key=$$(echo '$(clone_probe_key)' | cksum | cut -d' ' -f1); \
	if [ -f $@ ] && [ $@ -nt $< ] && grep -qx "/\* key: $$key \*/" $@; then \
		exit 0; \
	fi; \
	echo "  PROBE   $@"; \
	: >$(obj)/.dm-clone-probes.log; \
	{ \
		echo "/* Generated from dm-clone-probes.c by the Makefile: do not edit. */"; \
		echo "/* key: $$key */"; \
		for p in $(CLONE_PROBES); do \
			echo "== $$p" >>$(obj)/.dm-clone-probes.log; \
			if $(CC) $(clone_probe_flags) -DCLONE_PROBE_$$p \
				-fsyntax-only $< >>$(obj)/.dm-clone-probes.log 2>&1; then \
				echo "#define CLONE_HAVE_$$p 1"; \
			else \
				echo "/* CLONE_HAVE_$$p: no */"; \
			fi; \
		done; \
	} >$@.tmp && mv $@.tmp $@
