# Shared setup for ./test and ./run: source it, don't execute it.
#
# Leaves the shell in the repository root with .venv active and the package
# installed (editable, with the test, bench and bioimageio extras). The
# second time it only activates: the pip steps are skipped while the stamp
# file .venv/.segloop-installed is newer than pyproject.toml and this
# script.
#
# Environment:
#   PYTHON               interpreter used to create .venv (default python3)
#   SEGLOOP_SKIP_APT=1   never call apt-get (see segloop_ensure_xvfb)
#   SEGLOOP_REINSTALL=1  redo the pip steps even when the stamp is fresh

SEGLOOP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$SEGLOOP_ROOT"

SEGLOOP_VENV="$SEGLOOP_ROOT/.venv"
SEGLOOP_STAMP="$SEGLOOP_VENV/.segloop-installed"
# torch first and pinned: this version is a CPU build on local disk, while
# an unpinned torch would pull gigabytes of CUDA wheels.
SEGLOOP_TORCH="${SEGLOOP_TORCH:-torch==2.13.0}"
SEGLOOP_APT_PACKAGES=(
    xvfb xauth libgl1 libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0
    libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0
    libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1
)

segloop_log() {
    printf '[segloop] %s\n' "$*" >&2
}

segloop_is_root() {
    [ "$(id -u)" -eq 0 ]
}

# apt-get update + install, non-interactive (CI has no stdin). Returns
# non-zero, after saying why, when that is not possible.
segloop_apt_install() {
    if [ "${SEGLOOP_SKIP_APT:-0}" = 1 ]; then
        segloop_log "SEGLOOP_SKIP_APT=1: not installing $*"
        return 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        segloop_log "apt-get not found: cannot install $*"
        return 1
    fi
    if ! segloop_is_root; then
        segloop_log "not root: cannot apt-get install $*"
        return 1
    fi
    segloop_log "apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null ||
        { segloop_log 'apt-get update failed'; return 1; }
    apt-get install -y -q "$@" </dev/null ||
        { segloop_log "apt-get install failed: $*"; return 1; }
}

segloop_create_venv() {
    local python="${PYTHON:-python3}"
    if [ -x "$SEGLOOP_VENV/bin/python" ]; then
        return 0
    fi
    if ! command -v "$python" >/dev/null 2>&1; then
        segloop_log "$python not found: install Python >= 3.11"
        return 1
    fi
    segloop_log "creating .venv with $("$python" --version 2>&1)"
    if ! "$python" -m venv "$SEGLOOP_VENV"; then
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        rm -rf "$SEGLOOP_VENV"
        segloop_apt_install python3-venv || {
            segloop_log "'$python -m venv' failed; install python3-venv"
            return 1
        }
        "$python" -m venv "$SEGLOOP_VENV"
    fi
}

segloop_install_needed() {
    [ "${SEGLOOP_REINSTALL:-0}" = 1 ] && return 0
    [ -f "$SEGLOOP_STAMP" ] || return 0
    [ "$SEGLOOP_STAMP" -nt "$SEGLOOP_ROOT/pyproject.toml" ] || return 0
    [ "$SEGLOOP_STAMP" -nt "$SEGLOOP_ROOT/.ci/setup.sh" ] || return 0
    return 1
}

segloop_setup() {
    segloop_create_venv || return 1
    # shellcheck disable=SC1091
    . "$SEGLOOP_VENV/bin/activate"
    if ! segloop_install_needed; then
        return 0
    fi
    local pip=(python -m pip --disable-pip-version-check)
    segloop_log 'installing into .venv (skipped next time)'
    rm -f "$SEGLOOP_STAMP"
    "${pip[@]}" install --progress-bar off --upgrade pip || return 1
    "${pip[@]}" install --progress-bar off "$SEGLOOP_TORCH" || return 1
    "${pip[@]}" install --progress-bar off -e '.[napari,distributed,test,bench,bioimageio]' || return 1
    touch "$SEGLOOP_STAMP"
}

# Make xvfb-run available for the GUI tests when it is missing, via apt
# (root only, unless SEGLOOP_SKIP_APT=1). Returns non-zero when it is still
# missing afterwards.
segloop_ensure_xvfb() {
    command -v xvfb-run >/dev/null 2>&1 && return 0
    segloop_apt_install "${SEGLOOP_APT_PACKAGES[@]}" || true
    command -v xvfb-run >/dev/null 2>&1
}

segloop_setup || {
    segloop_log 'setup failed (see above)'
    exit 1
}
