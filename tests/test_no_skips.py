"""The test command fails on any skip and names it (tests/no_skips.py), run on throw-away test
files in a pytest of their own, as scripts/test.sh runs the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

FILE = '''
import pytest

def test_runs():
    assert True

def test_cannot_start_its_stack():
    pytest.skip("no vpcd driver (Debian package: vsmartcard-vpcd)")

@pytest.mark.xfail(reason="a known defect", strict=True)
def test_expected_failure():
    assert False
'''


def run_pytest(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_tiny.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    # -p no_skips: the plugin as the suite loads it; no conftest of ours in tmp_path.
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no_skips", "-q",
                           "-p", "no:cacheprovider", *options, str(tmp_path / "test_tiny.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_a_skip_fails_the_test_command_and_is_named(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, FILE, "--fail-on-skip")
    assert out.returncode == pytest.ExitCode.TESTS_FAILED, out.stdout + out.stderr
    assert ("SKIPPED test_tiny.py::test_cannot_start_its_stack: no vpcd driver "
            "(Debian package: vsmartcard-vpcd)") in out.stdout
    # An xfail ran: it is not counted as a skip.
    assert "mfdkit: 1 skipped (the run fails: every test must run)" in out.stdout


def test_a_skipped_module_counts_too(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, 'import pytest\npytest.importorskip("no_such_module_mfdkit")\n'
                     "def test_x():\n    pass\n", "--fail-on-skip")
    assert out.returncode == pytest.ExitCode.TESTS_FAILED, out.stdout + out.stderr
    assert ("SKIPPED test_tiny.py: could not import 'no_such_module_mfdkit': No module named "
            "'no_such_module_mfdkit'") in out.stdout
    assert "mfdkit: 1 skipped" in out.stdout


def test_plain_pytest_counts_skips_but_keeps_its_exit_status(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, FILE)
    assert out.returncode == pytest.ExitCode.OK, out.stdout + out.stderr
    assert "mfdkit: 1 skipped\n" in out.stdout


def test_a_run_without_skips_says_zero_and_passes(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, "def test_x():\n    pass\n", "--fail-on-skip")
    assert out.returncode == pytest.ExitCode.OK, out.stdout + out.stderr
    assert "mfdkit: 0 skipped" in out.stdout


def test_the_test_command_passes_the_option() -> None:
    script = (HERE.parent / "scripts" / "test.sh").read_text()
    assert "python -m pytest -q --fail-on-skip" in script
    assert (HERE.parent / ".ci" / "run").read_text().strip().endswith("exec bash scripts/test.sh")


def test_a_missing_postgresql_fails_the_cloud_tests_naming_it(tmp_path: Path) -> None:
    # Nothing listens on port 1: the [postgres] half of a cloud test must fail, not skip.
    env = {**os.environ, "MFD_TEST_PG": "postgresql://postgres@127.0.0.1:1/postgres"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--fail-on-skip", "tests/test_linking.py::test_import_reads_tsv"],
                         cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == pytest.ExitCode.TESTS_FAILED, out.stdout + out.stderr
    assert "ERROR tests/test_linking.py::test_import_reads_tsv[postgres]" in out.stdout
    assert "PostgreSQL is required and no PostgreSQL at 127.0.0.1:1" in out.stdout
    assert "set MFD_TEST_PG to a server URL" in out.stdout
    assert "1 passed" in out.stdout and "mfdkit: 0 skipped" in out.stdout  # [sqlite] ran
