# Shared by scripts/serve and scripts/test: make .venv and install the project
# into it, again only when setup.cfg or pyproject.toml changed.
# Usage: ensure_venv [EXTRAS]   (e.g. ensure_venv test)

ensure_venv() {
    local extras="${1:-}" python="${PYTHON:-python3}" stamp spec
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "BaoLife needs Python 3.11 or newer as '$python' (set PYTHON=...)" >&2
        return 1
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
