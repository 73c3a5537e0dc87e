# Shared set-up for scripts/test, scripts/example and .ci/run: installs what
# the build and the tests need when it is missing, idempotently, and says
# what to do when it cannot. Source it; then call the functions you need.

# Runs a system package install as root (directly, or through sudo).
_omnigraph_apt() {
  if ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || return 1
    sudo="sudo -n"
  fi
  $sudo apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# protoc: Lance's build compiles protobuf definitions with it.
omnigraph_need_protoc() {
  if command -v protoc >/dev/null 2>&1 || [ -n "${PROTOC:-}" ]; then
    return 0
  fi
  echo "== installing protoc (protobuf-compiler), which Lance's build needs" >&2
  if ! _omnigraph_apt protobuf-compiler; then
    echo "error: protoc is missing and could not be installed here (no apt-get, or no root/sudo)." >&2
    echo "       Install the protobuf compiler (Debian/Ubuntu: apt-get install protobuf-compiler;" >&2
    echo "       macOS: brew install protobuf) or set PROTOC to its path, then run again." >&2
    return 1
  fi
}

# moto, the S3-compatible server the storage contract's s3 backend runs
# against (its own virtualenv under ~/.cache; the tests start it on
# 127.0.0.1). Exports OMNIGRAPH_MOTO_PYTHON.
omnigraph_need_moto() {
  local venv="$HOME/.cache/omnigraph-moto"
  if ! "$venv/bin/python" -c "import moto.server" >/dev/null 2>&1; then
    echo "== installing moto[server] into $venv (the storage contract's S3 stand-in)" >&2
    if ! command -v python3 >/dev/null 2>&1; then
      _omnigraph_apt python3 python3-venv || {
        echo "error: python3 is missing and could not be installed; install python3 and python3-venv, then run again." >&2
        return 1
      }
    fi
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      _omnigraph_apt python3-venv && python3 -m venv "$venv" || {
        echo "error: could not create a Python virtualenv; install python3-venv, then run again." >&2
        return 1
      }
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==5.2.5" || {
      echo "error: installing moto from PyPI failed (see above); the s3 backend tests need it." >&2
      return 1
    }
  fi
  export OMNIGRAPH_MOTO_PYTHON="$venv/bin/python"
}

# The reference server's openapi.json for the wire-shape test
# (tests/server/contract.rs), from this machine's stored mirror of the
# reference project when it has one; never committed. Without it the test
# checks our own document only and says so.
omnigraph_reference_openapi() {
  local mirror="${OMNIGRAPH_REFERENCE_MIRROR:-/work/.mirror/ModernRelay+omnigraph/repo}"
  if [ -z "${OMNIGRAPH_REFERENCE_OPENAPI:-}" ] && git -C "$mirror" cat-file -e HEAD:openapi.json 2>/dev/null; then
    git -C "$mirror" show HEAD:openapi.json >"${TMPDIR:-/tmp}/omnigraph-reference-openapi.json"
    export OMNIGRAPH_REFERENCE_OPENAPI="${TMPDIR:-/tmp}/omnigraph-reference-openapi.json"
  fi
}
