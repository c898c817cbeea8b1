"""`make` picks a Python that mediapipe has wheels for, or stops before creating .venv saying how
to get one (issue 11, item 16). Fake interpreters on a PATH of their own; no venv is created."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None or not Path("/bin/sh").exists(), reason="needs make and /bin/sh")


def fake_python(folder: Path, name: str, version: str, venv: bool = True) -> Path:
    """A stand-in interpreter: answers the version question and whether venv/ensurepip import."""
    path = folder / name
    path.write_text("#!/bin/sh\n"
                    'case "$*" in\n'
                    f"  *ensurepip*) exit {0 if venv else 1} ;;\n"
                    f"  *version_info*) echo {version} ;;\n"
                    "  *) exit 0 ;;\n"
                    "esac\n")
    path.chmod(0o755)
    return path


def make(tmp_path: Path, *targets: str, **variables: str) -> subprocess.CompletedProcess:
    args = [MAKE, "-s", "-C", str(ROOT), *targets, *(f"{k}={v}" for k, v in variables.items())]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env={"PATH": str(tmp_path / "bin")})


@pytest.fixture
def bin_dir(tmp_path) -> Path:
    (tmp_path / "bin").mkdir()
    return tmp_path / "bin"


def test_python3_13_is_passed_over_for_python3_12(tmp_path, bin_dir):
    fake_python(bin_dir, "python3", "3.13")
    fake_python(bin_dir, "python3.12", "3.12")
    fake_python(bin_dir, "python3.11", "3.11")
    done = make(tmp_path, "which-python")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "python3.12" and done.stderr == ""


def test_a_supported_python3_is_kept(tmp_path, bin_dir):
    fake_python(bin_dir, "python3", "3.11")
    fake_python(bin_dir, "python3.12", "3.12")
    assert make(tmp_path, "which-python").stdout.strip() == "python3"


def test_no_supported_python_stops_before_the_venv(tmp_path, bin_dir):
    fake_python(bin_dir, "python3", "3.13")
    venv = tmp_path / "venv"
    done = make(tmp_path, "setup", VENV=str(venv))
    assert done.returncode != 0
    assert not venv.exists()  # stopped before creating it
    err = done.stderr
    assert "no Python 3.10, 3.11 or 3.12 found (python3 here is 3.13)" in err
    assert "sudo dnf install python3.12" in err
    assert "sudo apt install python3.12 python3.12-venv" in err
    assert "uv python install 3.12" in err and "PYTHON=" in err
    assert make(tmp_path, "which-python").stderr.split("make: ***")[0] == err.split("make: ***")[0]


def test_a_missing_venv_module_gets_the_apt_command(tmp_path, bin_dir):
    fake_python(bin_dir, "python3", "3.12", venv=False)
    venv = tmp_path / "venv"
    done = make(tmp_path, "setup", VENV=str(venv))
    assert done.returncode != 0 and not venv.exists()
    assert "venv module (ensurepip) is missing" in done.stderr
    assert "sudo apt install python3.12-venv" in done.stderr


def test_python_variable_still_overrides(tmp_path, bin_dir):
    fake_python(bin_dir, "python3.12", "3.12")
    mine = fake_python(tmp_path, "my-python", "3.13")
    done = make(tmp_path, "which-python", PYTHON=str(mine))
    assert done.returncode == 0 and done.stdout.strip() == str(mine)
    assert "is Python 3.13" in done.stderr  # said, not refused
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'no such interpreter' >&2\nexit 127\n")
    broken.chmod(0o755)
    done = make(tmp_path, "which-python", PYTHON=str(broken))
    assert done.returncode != 0 and "does not run" in done.stderr and "no such interpreter" in done.stderr
