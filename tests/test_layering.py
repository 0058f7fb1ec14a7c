"""The arrows between packages hold, and the check that holds them fails on a backward import.

scripts/test.sh runs ``lint-imports`` on the checkout; here it also runs on a copy of the
packages with one backward import added (a reader importing the simulator), to show that the
contracts in pyproject.toml catch it and name the chain, rather than pass on anything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _packages() -> list[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages: list[str] = config["tool"]["importlinter"]["root_packages"]
    return packages


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"lint-imports is not installed beside {sys.executable}: "
                    "install the dev extra (scripts/setup.sh does)", pytrace=False)
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=where,
                          capture_output=True, text=True, timeout=120)


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy)
    for package in _packages():
        shutil.copytree(ROOT / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


def test_the_checkout_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_backward_import_fails_naming_its_path(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    assert _lint(copy).returncode == 0  # the copy alone is clean
    codec = copy / "readers" / "codecs" / "em4100.py"
    codec.write_text(codec.read_text() + "\nfrom simulator import world  # backward\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert "readers is not allowed to import simulator" in result.stdout
    assert "readers.codecs.em4100 -> simulator.world" in result.stdout


def test_a_device_importing_the_cloud_fails(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    app = copy / "device_app" / "app.py"
    app.write_text(app.read_text() + "\nimport cloud.service  # sideways\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert "device_app.app -> cloud.service" in result.stdout


def test_a_badge_codec_loads_the_errors_and_not_the_mqtt_contract() -> None:
    probe = ("import sys, readers.codecs.em4100\n"
             "print(sorted(m for m in sys.modules if m.startswith('protocol')))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, check=True, timeout=60)
    assert result.stdout.strip() == "['protocol', 'protocol.errors']"
