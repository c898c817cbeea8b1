#!/bin/sh
# Prints the Python interpreter `make` builds .venv with, or says how to get one (exit 1).
#
#   sh scripts/pick_python.sh [PYTHON]
#
# With PYTHON (make PYTHON=...): that one, as given (a warning when it is not 3.10-3.12).
# Without: python3 when it is 3.10, 3.11 or 3.12, else the first of python3.12, python3.11,
# python3.10 on the PATH. mediapipe 0.10.21, which the app needs, has wheels for those only:
# with Python 3.13 (python3 on Debian 13, Ubuntu 25.04, Fedora 41+) pip fails inside its resolver.
# The interpreter must also have the venv module with ensurepip (Debian/Ubuntu: python3.X-venv).

SUPPORTED="3.10 3.11 3.12"

version_of() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

is_supported() {
    for s in $SUPPORTED; do
        [ "$1" = "$s" ] && return 0
    done
    return 1
}

if [ -n "$1" ]; then
    py=$1
    v=$(version_of "$py")
    if [ -z "$v" ]; then
        {
            echo "make: PYTHON=$py does not run:"
            "$py" -c pass 2>&1 | {
                n=0
                while [ $n -lt 3 ] && IFS= read -r line; do echo "    $line"; n=$((n + 1)); done
            }
        } >&2
        exit 1
    fi
    if ! is_supported "$v"; then
        echo "make: warning: PYTHON=$py is Python $v; the app is tested with 3.10-3.12 (mediapipe 0.10.21 has wheels for those only)." >&2
    fi
else
    py=
    for candidate in python3 python3.12 python3.11 python3.10; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        v=$(version_of "$candidate")
        if [ -n "$v" ] && is_supported "$v"; then
            py=$candidate
            break
        fi
    done
    if [ -z "$py" ]; then
        have=$(version_of python3)
        {
            echo "make: no Python 3.10, 3.11 or 3.12 found${have:+ (python3 here is $have)}."
            echo "The app needs one of them: mediapipe 0.10.21 has no wheels for newer Pythons, so pip would fail."
            echo "Get one, then run make again:"
            echo "    Fedora:          sudo dnf install python3.12"
            echo "    Debian/Ubuntu:   sudo apt install python3.12 python3.12-venv   (where the release has it; Ubuntu also: the deadsnakes PPA)"
            echo "    any Linux/macOS: uv python install 3.12   then: make run PYTHON=\"\$(uv python find 3.12)\""
            echo "Or name an interpreter yourself: make run PYTHON=/path/to/python3.12"
        } >&2
        exit 1
    fi
fi

if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    v=$(version_of "$py")
    {
        echo "make: $py (Python $v) cannot create a virtual environment: its venv module (ensurepip) is missing."
        echo "    Debian/Ubuntu:   sudo apt install python$v-venv"
        echo "Then run make again."
    } >&2
    exit 1
fi
echo "$py"
