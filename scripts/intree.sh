#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build dm-clone in a kernel tree, where it is meant to live: drivers/md of
# the debug kernel's tree (scripts/debug-kernel.sh), with CONFIG_DM_CLONE=m.
# This is how the debug tier gets its module (scripts/build-module.sh
# --kernel debug runs it); the distribution kernels' builds stay out of
# tree.
#
#   scripts/intree.sh [-- MAKE-ARGS...]  build; print the module's path
#   scripts/intree.sh patches DIR        write the patch series into DIR
#                                        (its *.patch files replaced)
#   scripts/intree.sh checkpatch         run the tree's checkpatch.pl
#                                        --strict on that series
#
# The cached tree is never changed (out-of-tree builds and tests/kunit
# build against it): the build runs in a copy of it, made once per debug
# kernel (cp -a, ~20 s) in $DMCLONE_OUT/intree/KEY/linux and reused, so a
# rebuild compiles only what changed (10-25 s with 2 CPUs when nothing
# did). In the copy:
#
#   * drivers/md/dm-clone-* (the kernel's own dm-clone, when the tree has
#     it) and its documentation are deleted by name, unread, when the copy
#     is made;
#   * our files go into drivers/md: dm-clone-*.[ch] (not the generated
#     dm-clone-features.h) and dm-clone-probes.mk;
#   * drivers/md/Makefile gets the dm-clone-y line of our Makefile (its
#     object list, so that a new object is picked up), the include of
#     dm-clone-probes.mk (the feature probes run in a tree too: this one
#     is 6.1) and the obj-$(CONFIG_DM_CLONE) line; drivers/md/Kconfig our
#     Kconfig's entry in place of the kernel's; both rewritten from the
#     tree's originals each time;
#   * .config gets CONFIG_DM_CLONE=m (make olddefconfig); then
#     `make drivers/md/dm-clone.ko` (MAKE-ARGS added, e.g. V=1; the tree's
#     other modules named too, for modpost), which must print no warning;
#     the module is checked to be marked in-tree and copied to
#     $DMCLONE_OUT/build/KVER/, where the debug tier's loader takes it
#     (kernel_module_path).
#
# The patch series is what those changes are as patches against the
# tree: a scratch git repository of the tree's drivers/md/Makefile and
# Kconfig, then one commit adding our files, one wiring them into the
# Makefile and Kconfig; `git format-patch`. checkpatch --strict must
# print nothing but the question whether MAINTAINERS needs updating
# (FILE_PATH_CHANGES, ignored: its DEVICE-MAPPER entry covers
# drivers/md/dm*). Build log: $DMCLONE_OUT/intree/KEY/build.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

usage() { sed -n '4,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit "${1:-2}"; }

cmd=build dest=
case "${1:-}" in
-h|--help) usage 0 ;;
patches) cmd=patches; [ -n "${2:-}" ] || usage; dest=$(realpath -m "$2") ;;
checkpatch) cmd=checkpatch ;;
--) shift ;;
"") ;;
*) echo "intree.sh: unknown argument $1" >&2; usage ;;
esac
[ "$cmd" = build ] || [ $# -le 2 ] || usage

eval "$("$here/debug-kernel.sh")"	# KVER ... KDIR
# shellcheck disable=SC2153 # KDIR and KVER come from debug-kernel.sh
kdir=$KDIR kver=$KVER
key=$(basename "$(dirname "$kdir")")
base=$DMCLONE_OUT/intree
dir=$base/$key
tree=$dir/linux
md=$tree/drivers/md
mkdir -p "$dir"
# One run at a time on the copy.
exec 8>"$dir/.lock"
flock 8

# Our files, as they go into drivers/md.
ours=()
for f in "$DMCLONE_ROOT"/dm-clone-*.[ch] "$DMCLONE_ROOT"/dm-clone-probes.mk; do
	case "$f" in */dm-clone-features.h) continue ;; esac
	ours+=("$(basename "$f")")
done

# The object list of our Makefile's dm-clone-y line (continuations joined).
objs=$(awk '
	/^dm-clone-y[ \t]*\+?=/ {
		l = $0
		while (l ~ /\\$/ && (getline n) > 0)
			l = substr(l, 1, length(l) - 1) " " n
		sub(/^dm-clone-y[ \t]*\+?=/, "", l)
		print l
		exit
	}' "$DMCLONE_ROOT/Makefile" | xargs)
[ -n "$objs" ] || die "no dm-clone-y line in $DMCLONE_ROOT/Makefile"

# --- The copy of the tree. ---
# Made again when the cached tree is not the one copied (rebuilt: its
# stamp is newer).
copied="$kdir $(stat -c %Y "$(dirname "$kdir")/.done")"
if [ ! -f "$dir/.copied" ] || [ "$(cat "$dir/.copied")" != "$copied" ]; then
	note "in-tree: copying $kdir into $tree"
	rm -rf "$tree" "$tree.tmp" "$dir/.copied"
	cp -a "$kdir" "$tree.tmp"
	# The kernel's own dm-clone, by name: never read.
	rm -f "$tree.tmp"/drivers/md/dm-clone-* \
		"$tree.tmp/Documentation/admin-guide/device-mapper/dm-clone.rst"
	cp -p "$tree.tmp/drivers/md/Makefile" "$dir/Makefile.orig"
	cp -p "$tree.tmp/drivers/md/Kconfig" "$dir/Kconfig.orig"
	# The tree's modules (a single-target build rewrites modules.order).
	sed 's/\.o$/.ko/' "$tree.tmp/modules.order" >"$dir/modules.order"
	mv "$tree.tmp" "$tree"
	echo "$copied" >"$dir/.copied"
	# Copies for older debug kernels (their cache entries are gone or
	# going: debug-kernel.sh keeps two).
	for d in "$base"/*/; do
		if [ -f "$d/.copied" ] && [ ! -d "$(cut -d' ' -f1 "$d/.copied")" ]; then
			rm -rf "$d"
		fi
	done
fi

# makefile_lines: drivers/md/Makefile with our lines, from the original.
# Our dm-clone-y line replaces the tree's (or goes before the first obj-
# line), the include right after it; the obj- line stays or is added
# after the last obj-$(CONFIG_DM_...).
makefile_lines() {
	objs=$objs awk '
	BEGIN { objs = ENVIRON["objs"] }
	function add(l) { lines[++nl] = l }
	function ours(   n, i, w, l) {
		n = split(objs, w, " ")
		l = "dm-clone-y\t+="
		for (i = 1; i <= n; i++) {
			# Tabs as 8 columns; wrapped as the tree wraps.
			if (i > 1 && length(l) + 8 + length(w[i]) > 72) {
				add(l " \\")
				l = "\t\t  "
			}
			l = l " " w[i]
		}
		add(l)
		add("include $(src)/dm-clone-probes.mk")
		done_y = 1
	}
	skip { skip = /\\$/; next }
	/^dm-clone-y[ \t]*\+?=/ {
		if (!done_y)
			ours()
		skip = /\\$/
		next
	}
	/^obj-/ && !done_y { ours() }
	/^obj-\$\(CONFIG_DM_CLONE\)/ { have_obj = 1 }
	{ add($0) }
	/^obj-\$\(CONFIG_DM_/ { last_dm = nl }
	END {
		for (i = 1; i <= nl; i++) {
			print lines[i]
			if (i == last_dm && !have_obj)
				print "obj-$(CONFIG_DM_CLONE)\t\t+= dm-clone.o"
		}
	}' "$dir/Makefile.orig"
}

# kconfig_lines: drivers/md/Kconfig with our entry (our Kconfig from its
# config line) in place of the tree's config DM_CLONE, or before the last
# endif.
kconfig_lines() {
	entry=$(sed -n '/^config /,$p' "$DMCLONE_ROOT/Kconfig") awk '
	BEGIN { entry = ENVIRON["entry"] }
	in_old && /^(config|menuconfig|endif|endmenu|if|menu|source|choice|comment)([ \t]|$)/ {
		in_old = 0
	}
	in_old { next }
	/^config DM_CLONE$/ {
		lines[++nl] = entry
		lines[++nl] = ""
		done = 1
		in_old = 1
		next
	}
	{ lines[++nl] = $0 }
	/^endif/ { last_endif = nl }
	END {
		for (i = 1; i <= nl; i++) {
			if (i == last_endif && !done) {
				print entry
				print ""
			}
			print lines[i]
		}
	}' "$dir/Kconfig.orig"
}

# put SRC DEST: copy SRC over DEST unless identical (kbuild goes by times).
put() { cmp -s "$1" "$2" || cp "$1" "$2"; }

apply() {
	local f
	# Files of ours that are gone from the repository (not the generated
	# header).
	for f in "$md"/dm-clone-*.[ch] "$md"/dm-clone-*.mk; do
		[ -e "$f" ] || continue
		case " ${ours[*]} dm-clone-features.h " in
		*" $(basename "$f") "*) ;;
		*) rm -f "$f" ;;
		esac
	done
	for f in "${ours[@]}"; do put "$DMCLONE_ROOT/$f" "$md/$f"; done
	makefile_lines >"$dir/Makefile.new"
	kconfig_lines >"$dir/Kconfig.new"
	put "$dir/Makefile.new" "$md/Makefile"
	put "$dir/Kconfig.new" "$md/Kconfig"
}

# --- The patch series. ---
patches() {
	local out=$1 repo=$dir/series name email
	name=$(git -C "$DMCLONE_ROOT" config user.name || echo "dm-clone developers")
	email=$(git -C "$DMCLONE_ROOT" config user.email || echo "dm-clone@localhost")
	rm -rf "$repo"
	mkdir -p "$repo/drivers/md" "$out"
	rm -f "$out"/*.patch
	g() { git -C "$repo" -c user.name="$name" -c user.email="$email" "$@"; }
	g init -q
	cp "$dir/Makefile.orig" "$repo/drivers/md/Makefile"
	cp "$dir/Kconfig.orig" "$repo/drivers/md/Kconfig"
	g add -A && g commit -q -m "base: $kver's drivers/md/Makefile and Kconfig"
	for f in "${ours[@]}"; do cp "$DMCLONE_ROOT/$f" "$repo/drivers/md/"; done
	g add -A
	g commit -q -s -F - <<-EOF
	dm clone: add the dm-clone target

	dm-clone produces a one-to-one copy of a read-only source device on a
	writable destination device. The clone is usable at once: regions not
	yet copied are read from the source, and a background worker copies
	("hydrates") the rest. A bitmap on a metadata device, kept with the
	persistent-data library, records which regions are done so that
	copying resumes after a restart.

	dm-clone-compat.h and the feature probes (dm-clone-probes.c, run by
	dm-clone-probes.mk) let the same sources build on older kernels; on a
	current kernel they compile to its own interfaces.
	EOF
	makefile_lines >"$repo/drivers/md/Makefile"
	kconfig_lines >"$repo/drivers/md/Kconfig"
	g add -A
	g commit -q -s -F - <<-EOF
	dm clone: build dm-clone with CONFIG_DM_CLONE

	Add the Kconfig entry of the clone target, and build dm-clone.ko from
	its objects with its feature probes.
	EOF
	g format-patch -q -o "$out" HEAD~2..HEAD
	ls "$out"/*.patch
}

case "$cmd" in
patches)
	patches "$dest"
	exit 0
	;;
checkpatch)
	patches "$dir/patches" >/dev/null
	note "in-tree: $tree/scripts/checkpatch.pl --strict on $(find "$dir/patches" -name '*.patch' | wc -l) patches"
	(cd "$tree" && scripts/checkpatch.pl --strict --quiet --show-types \
		--ignore FILE_PATH_CHANGES "$dir"/patches/*.patch)
	note "in-tree: checkpatch --strict clean"
	exit 0
	;;
esac

# --- The build. ---
apply
config=$tree/.config
if ! grep -qx CONFIG_DM_CLONE=m "$config"; then
	"$tree/scripts/config" --file "$config" --module DM_CLONE
	make -s -C "$tree" olddefconfig >"$dir/build.log" 2>&1 ||
		{ cat "$dir/build.log" >&2; die "make olddefconfig failed in $tree"; }
fi
grep -qx CONFIG_DM_CLONE=m "$config" ||
	die "CONFIG_DM_CLONE=m did not survive make olddefconfig (its dependencies: see $md/Kconfig)"

jobs=${DMCLONE_JOBS:-$(nproc)}
note "in-tree: make drivers/md/dm-clone.ko in $tree"
start=$(date +%s)
# modpost checks the modules named, resolving their symbols against
# vmlinux and each other: dm-clone.ko needs the persistent-data library's,
# and that others still (a null `make modules` would walk the whole tree:
# ~30 s).
mapfile -t modules <"$dir/modules.order"
make -C "$tree" -j"$jobs" drivers/md/dm-clone.ko "${modules[@]}" "$@" \
	>"$dir/build.log" 2>&1 || {
	tail -n 40 "$dir/build.log" >&2
	die "the in-tree build failed (log: $dir/build.log)"
}
! grep -E "warning:|error:" "$dir/build.log" >&2 ||
	die "the in-tree build printed warnings (above; log: $dir/build.log)"
grep -qx CONFIG_DM_CLONE=m "$tree/include/config/auto.conf" ||
	die "CONFIG_DM_CLONE=m is not in $tree/include/config/auto.conf"
[ "$(modinfo -F intree "$md/dm-clone.ko")" = Y ] ||
	die "$md/dm-clone.ko is not marked as built in tree"
note "in-tree: built in $(($(date +%s) - start)) s"
out=$DMCLONE_OUT/build/$kver
mkdir -p "$out"
cp "$md/dm-clone.ko" "$out/dm-clone.ko"
echo "$out/dm-clone.ko"
