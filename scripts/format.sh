#!/usr/bin/env bash
# The formatter, with the checked-in .swift-format (4-space indents, 140 columns), over every Swift file
# but the generated ones (scripts/generate-protos.sh writes those; they are checked by digest instead).
#   (no argument)  lints: prints each difference and fails on any (run by scripts/test.sh, so by CI)
#   --fix          rewrites the files in place
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
files=()
while IFS= read -r file; do files+=("$file"); done < <(
  find Package.swift Sources Tests benchmarks -name '*.swift' -not -path '*/Generated/*' -not -path '*/.build/*' | sort)
if [ "${1:-}" = "--fix" ]; then
  swift format format --in-place --configuration .swift-format "${files[@]}"
else
  swift format lint --strict --configuration .swift-format "${files[@]}"
  echo "format: ${#files[@]} files as .swift-format says"
fi
