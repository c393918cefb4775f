#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The fuzz targets' seed corpus, made by the tools themselves in BUILD:
# seeds-dump/ holds XML and JSON dumps, seeds-image/ the first blocks of
# metadata images restored from them (on a device of 160 blocks, as
# fuzz-image reads them); corpus-*/ are libFuzzer's working corpora.
set -euo pipefail
build=$1
tools=$build/clone_tools
mkdir -p "$build/seeds-dump" "$build/seeds-image" "$build/corpus-dump" "$build/corpus-image"
img=$build/seed.img
n=0
for spec in "512 3:1" "512 0:64" "520 0:10 20:5 64:1" "4096 100:400" "8 0:1" "262144 0:1 32575:3"; do
	read -ra args <<<"$spec"
	set -- "${args[@]}"
	target=$1
	shift
	{
		echo "<superblock version=\"1\" region_size=\"8\" target_size=\"$target\">"
		for r in "$@"; do echo "  <range begin=\"${r%:*}\" length=\"${r#*:}\"/>"; done
		echo "</superblock>"
	} >"$build/seeds-dump/$n.xml"
	rm -f "$img"
	truncate -s $((160 * 4096)) "$img"
	"$tools" clone_restore -i "$build/seeds-dump/$n.xml" -o "$img"
	"$tools" clone_dump --format json -o "$build/seeds-dump/$n.json" "$img"
	# The used blocks only: the fuzz target reads the rest as zeros.
	used=$(od -An -tu8 -j52 -N8 "$img" | tr -d ' ')
	head -c $((used * 4096)) "$img" >"$build/seeds-image/$n"
	n=$((n + 1))
done
rm -f "$img"
echo "seeds: $n dumps (XML and JSON) and $n images in $build"
