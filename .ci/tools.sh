#!/usr/bin/env bash
# Builds the pinned interop peers the end-to-end tests run against, once, into a cache directory that
# later runs reuse (a tool is rebuilt only when its pin changes):
#   cosign          github.com/sigstore/cosign/v3 (Go module proxy)      -> supply-chain interop tests
#   cosign2         github.com/sigstore/cosign/v2, the 2.x line many users still run -> the same, legacy layout
#   referrers-registry  go-containerregistry's pkg/registry with the OCI 1.1 referrers API
#   bazel-remote    github.com/buchgr/bazel-remote/v2 (Go module proxy)  -> REAPI remote-cache tests
#   buildgrid       PyPI buildgrid in a Python 3.13 venv, `bgd` in bin/  -> the same tests, second server
# Usage: .ci/tools.sh [TOOL...]   (default: all). Prints nothing but progress; the directory is
# ${KILN_TOOLS_DIR:-$HOME/.cache/kiln-tools}/bin, which the tests read from KILN_TOOLS_DIR.
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH"

COSIGN_VERSION=v3.1.2
COSIGN2_VERSION=v2.6.5
GGCR_VERSION=v0.22.1
BAZEL_REMOTE_VERSION=v2.6.2
BUILDGRID_VERSION=0.9.1

dir="${KILN_TOOLS_DIR:-$HOME/.cache/kiln-tools}"
mkdir -p "$dir/bin" "$dir/src"
here="$(cd "$(dirname "$0")" && pwd)"

# build NAME PIN MODULE PACKAGE [main.go source dir]: a wrapper module that requires MODULE@PIN and builds
# PACKAGE; `go install pkg@version` is refused by the proxy for modules with replace directives.
build() {
  local name=$1 pin=$2 module=$3 package=$4 src=${5:-}
  local stamp="$dir/bin/.$name.pin"
  local want="$pin $module $package $(cat "$src"/*.go 2>/dev/null | sha256sum | cut -c1-16)"
  if [ -x "$dir/bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "== $name $pin: cached"
    return
  fi
  echo "== building $name $pin (once; cached in $dir)"
  local w="$dir/src/$name"
  rm -rf "$w" && mkdir -p "$w"
  ( cd "$w"
    go mod init "kiln.invalid/tools/$name" >/dev/null 2>&1
    if [ -n "$src" ]; then cp "$src"/*.go .; fi
    GOFLAGS=-mod=mod go get "$module@$pin" >/dev/null 2>&1 || GOFLAGS=-mod=mod go get "$module@$pin"
    if [ -n "$src" ]; then GOFLAGS=-mod=mod go mod tidy >/dev/null; fi
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$dir/bin/$name.tmp" "$package"
  )
  mv "$dir/bin/$name.tmp" "$dir/bin/$name"
  echo "$want" > "$stamp"
}

# buildgrid: a venv in the tools dir (BuildGrid 0.9 needs Python 3.13: python3.13 on PATH, else pyenv's),
# `bgd` linked into bin/.
buildgrid() {
  local stamp="$dir/bin/.buildgrid.pin"
  if [ -x "$dir/bin/bgd" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$BUILDGRID_VERSION" ]; then
    echo "== buildgrid $BUILDGRID_VERSION: cached"
    return
  fi
  local py
  py=""
  # A pyenv shim is on PATH even when 3.13 is not the selected version: check that it runs.
  if python3.13 --version >/dev/null 2>&1; then py="$(command -v python3.13)"; fi
  if [ -z "$py" ]; then
    py="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3 2>/dev/null | sort -V | tail -1 || true)"
  fi
  if [ -z "$py" ]; then
    echo "buildgrid $BUILDGRID_VERSION needs Python 3.13 (python3.13 on PATH or under pyenv)" >&2
    exit 1
  fi
  echo "== installing buildgrid $BUILDGRID_VERSION with $py (once; cached in $dir)"
  rm -rf "$dir/venvs/buildgrid"
  "$py" -m venv "$dir/venvs/buildgrid"
  "$dir/venvs/buildgrid/bin/pip" install --quiet --disable-pip-version-check "buildgrid==$BUILDGRID_VERSION"
  ln -sf "$dir/venvs/buildgrid/bin/bgd" "$dir/bin/bgd"
  echo "$BUILDGRID_VERSION" > "$stamp"
}

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(referrers-registry cosign cosign2 bazel-remote buildgrid)
for t in "${want[@]}"; do
  case "$t" in
    cosign) build cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v3 github.com/sigstore/cosign/v3/cmd/cosign ;;
    cosign2) build cosign2 "$COSIGN2_VERSION" github.com/sigstore/cosign/v2 github.com/sigstore/cosign/v2/cmd/cosign ;;
    referrers-registry) build referrers-registry "$GGCR_VERSION" github.com/google/go-containerregistry . "$here/referrers-registry" ;;
    bazel-remote) build bazel-remote "$BAZEL_REMOTE_VERSION" github.com/buchgr/bazel-remote/v2 github.com/buchgr/bazel-remote/v2 ;;
    buildgrid) buildgrid ;;
    *) echo "unknown tool: $t (known: cosign cosign2 referrers-registry bazel-remote buildgrid)" >&2; exit 2 ;;
  esac
done
