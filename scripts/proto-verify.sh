#!/usr/bin/env bash
# proto-verify.sh — fail when the checked-in generated protobuf code is stale.
#
# Usage: scripts/proto-verify.sh
#
# Copies proto/ into a temporary directory, regenerates there with
# scripts/proto.sh (same pinned tools, same lint), and compares every
# generated file — proto/gen/** and proto/openapi/*.swagger.json — with the
# checked-in tree. Exits 1 and names each stale, missing or extra file when
# they differ; run scripts/proto.sh to fix. Works from any working directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

cp -R "$ROOT/proto" "$TMP/proto"
"$ROOT/scripts/proto.sh" "$TMP/proto"

# generated_files DIR lists generated files under DIR, relative to it.
generated_files() {
	(
		cd "$1"
		{
			[[ -d gen ]] && find gen -type f
			find openapi -maxdepth 1 -type f -name '*.swagger.json' 2>/dev/null
		} || true
	)
}

stale=()
while IFS= read -r f; do
	[[ -n "$f" ]] || continue
	if [[ ! -f "$ROOT/proto/$f" ]]; then
		stale+=("proto/$f (missing: not checked in)")
	elif [[ ! -f "$TMP/proto/$f" ]]; then
		stale+=("proto/$f (extra: no longer generated)")
	elif ! cmp -s "$ROOT/proto/$f" "$TMP/proto/$f"; then
		stale+=("proto/$f (differs from generated)")
	fi
done < <({ generated_files "$ROOT/proto"; generated_files "$TMP/proto"; } | sort -u)

if ((${#stale[@]} > 0)); then
	echo "proto-verify: generated protobuf code is stale:" >&2
	printf '  %s\n' "${stale[@]}" >&2
	echo "proto-verify: run scripts/proto.sh and commit the result" >&2
	exit 1
fi
echo "proto-verify: generated protobuf code is up to date" >&2
