# Shared by scripts/serve and scripts/test: make .venv and install the project
# into it, again only when setup.cfg or pyproject.toml changed.
# Usage: ensure_venv [EXTRAS]   (e.g. ensure_venv test)
#
# The interpreter: $PYTHON if set, else the distribution's /usr/bin/python3
# when it is 3.11 or newer and can make a venv (what docs/OPERATIONS.md
# installs on the VMs), else the first python3 on PATH. The distribution's
# build is the faster one: Debian's is optimized with PGO and LTO and linked
# statically, while a pyenv build by default is a shared library without
# either, and the same server at the same load took 14 % more of its core on
# it (docs/BENCHMARKS.md, issue 15: the interpreter). A .venv made from
# another interpreter is made again.

_venv_python() {
    local system="${BAOLIFE_SYSTEM_PYTHON:-/usr/bin/python3}"  # another path: for tests
    if [ -n "${PYTHON:-}" ]; then
        echo "$PYTHON"
    elif [ -x "$system" ] && "$system" -c \
            'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "$system"
    else
        echo python3
    fi
}

ensure_venv() {
    local extras="${1:-}" python stamp spec base have
    python=$(_venv_python)
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "BaoLife needs Python 3.11 or newer as '$python' (set PYTHON=...)" >&2
        return 1
    fi
    base=$("$python" -c 'import os, sys; print(os.path.realpath(sys.executable))')
    if [ -x .venv/bin/python ]; then
        have=$(.venv/bin/python -c 'import os, sys; print(os.path.realpath(sys._base_executable))' 2>/dev/null || true)
        if [ "$have" != "$base" ]; then
            echo "making .venv again with $base (it was made with ${have:-an interpreter that is gone})" >&2
            rm -rf .venv
        fi
    fi
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv
        .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
    fi
    spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    stamp=".venv/.baolife-installed-${extras:-base}"
    local want
    want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        if ! .venv/bin/python -m pip install --disable-pip-version-check -e "$spec" >.venv/install.log 2>&1 \
                || ! .venv/bin/python -c 'import baolife'; then
            tail -n 40 .venv/install.log >&2
            echo "installing BaoLife into .venv failed (log: .venv/install.log)" >&2
            return 1
        fi
        echo "$want" > "$stamp"
    fi
}
