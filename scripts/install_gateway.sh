#!/usr/bin/env bash
# The one way itsm-gateway gets installed into a runtime: deploy/docker/Dockerfile runs these two
# steps, and tests/test_deploy_image.py runs the very same ones (no image can be built on the CI
# machine), the second as a non-root user, then serves from the result.
#
#   install_gateway.sh wheels  SOURCE_DIR WHEEL_DIR   build a wheel of every package the gateway needs,
#                                                    pinned by SOURCE_DIR/constraints.txt (network)
#   install_gateway.sh install WHEEL_DIR  VENV_DIR    a fresh venv with the gateway, from WHEEL_DIR only
#                                                    (no index, no network, no pip left in the venv)
#
# PYTHON (default python3) runs both steps and becomes the venv's interpreter; it needs pip >= 22.3
# (`pip --python`). Nothing is written outside WHEEL_DIR, VENV_DIR and (for `wheels`) SOURCE_DIR's
# build folders, so a non-root user can run `install` into a directory it owns.
set -euo pipefail

PYTHON="${PYTHON:-python3}"

usage() {
    echo "usage: install_gateway.sh wheels SOURCE_DIR WHEEL_DIR | install WHEEL_DIR VENV_DIR" >&2
    exit 2
}

build_wheels() {
    local source="$1" wheels="$2"
    [[ -f "$source/pyproject.toml" && -f "$source/constraints.txt" ]] \
        || { echo "install_gateway.sh: $source has no pyproject.toml and constraints.txt" >&2; exit 2; }
    mkdir -p "$wheels"
    # The constraints pin every transitive dependency, so the image gets exactly what CI tested.
    "$PYTHON" -m pip wheel --quiet --constraint "$source/constraints.txt" --wheel-dir "$wheels" "$source"
}

install_venv() {
    local wheels="$1" venv="$2"
    [[ -d "$wheels" ]] || { echo "install_gateway.sh: no wheel directory $wheels" >&2; exit 2; }
    [[ ! -e "$venv" ]] || { echo "install_gateway.sh: $venv already exists; want a fresh one" >&2; exit 2; }
    # No pip (nor the setuptools ensurepip brings) inside the runtime venv: nothing there installs
    # anything at run time, and scanners have less to flag. The outer pip installs into it.
    "$PYTHON" -m venv --without-pip "$venv"
    # PIP_CONFIG_FILE=/dev/null: the machine's pip.conf (extra indexes, find-links) must not decide
    # what goes in; only WHEEL_DIR does. Byte code is compiled here, because the runtime's root
    # filesystem is read-only.
    PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$PYTHON" -m pip --python "$venv/bin/python" install --quiet --no-index --find-links "$wheels" \
        itsm-gateway
    # Fail here, not at the first container start, if the entry point cannot import its modules.
    "$venv/bin/itsm-gateway" --help >/dev/null
}

[[ $# -eq 3 ]] || usage
case "$1" in
    wheels) build_wheels "$2" "$3" ;;
    install) install_venv "$2" "$3" ;;
    *) usage ;;
esac
