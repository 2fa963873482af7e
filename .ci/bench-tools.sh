#!/usr/bin/env bash
# Builds the optional contenders of the benchmarks (not the tests; CI does not run this):
#   ko   github.com/google/ko (Go module proxy)   -> `cargo bench -p kiln --bench image` with KILN_BENCH_KO
# Usage: .ci/bench-tools.sh [TOOL...]   (default: all). Installs into
# ${KILN_TOOLS_DIR:-$HOME/.cache/kiln-tools}/bin and skips a tool whose binary there already reports the pin
# (`go version -m`), so a second run costs nothing.
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH"

KO_VERSION=v0.19.1

dir="${KILN_TOOLS_DIR:-$HOME/.cache/kiln-tools}"
mkdir -p "$dir/bin"

# install NAME MODULE PIN: `go install MODULE@PIN`, unless bin/NAME already is that module at that version.
install() {
  local name=$1 module=$2 pin=$3
  if [ -x "$dir/bin/$name" ] &&
    go version -m "$dir/bin/$name" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$pin([[:space:]]|\$)"; then
    echo "== $name $pin: cached in $dir/bin"
    return
  fi
  echo "== building $name $pin (once; cached in $dir/bin)"
  # Same flags the benchmark gives the services: a release-like build of the contender.
  CGO_ENABLED=0 GOBIN="$dir/bin" go install -trimpath -ldflags="-s -w" "$module@$pin"
}

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(ko)
for t in "${want[@]}"; do
  case "$t" in
    ko) install ko github.com/google/ko "$KO_VERSION" ;;
    *) echo "unknown tool $t (known: ko)" >&2; exit 2 ;;
  esac
done
