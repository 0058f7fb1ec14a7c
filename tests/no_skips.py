"""A pytest plugin: count skipped tests, always say how many, and with ``--fail-on-skip`` fail the
run when there is any.

Why: a test that cannot start its stack used to skip, and a green run then hid a backend or a
reader family that was never tested. The README's test command (scripts/test.sh) passes
``--fail-on-skip``, so there a skip is a failure that names the test and its reason; a developer
running one file with plain pytest still sees the count but keeps pytest's usual exit status.

tests/conftest.py loads it for the suite; ``pytest -p no_skips`` loads it anywhere (its own test
does that on a throw-away test file).
"""

from __future__ import annotations

import pytest

OPTION = "--fail-on-skip"
_SKIPPED = pytest.StashKey[list[tuple[str, str]]]()
# The report hooks get no config; this run's is kept here from configure on.
_CONFIG: list[pytest.Config | None] = [None]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(OPTION, action="store_true", default=False,
                     help="fail the run if any test or module was skipped (the test command "
                          "sets it: every real-stack test must run)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SKIPPED] = []
    _CONFIG[0] = config


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    # A skip's longrepr is (path, line, "Skipped: reason").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _record(config: pytest.Config, report: pytest.CollectReport | pytest.TestReport) -> None:
    # An expected failure is reported as "skipped" with wasxfail; it ran, so it is no skip.
    if report.skipped and not hasattr(report, "wasxfail"):
        config.stash[_SKIPPED].append((report.nodeid, _reason(report)))


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _CONFIG[0] is not None:
        _record(_CONFIG[0], report)


@pytest.hookimpl(trylast=True)
def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _CONFIG[0] is not None:
        _record(_CONFIG[0], report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    skipped = session.config.stash[_SKIPPED]
    # "No tests collected" too: a run whose only module was skipped tested nothing.
    if skipped and session.config.getoption(OPTION) and exitstatus in (
            pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    skipped = config.stash[_SKIPPED]
    strict = config.getoption(OPTION)
    for nodeid, reason in skipped:
        terminalreporter.write_line(f"SKIPPED {nodeid}: {reason}", red=strict, yellow=not strict)
    verdict = " (the run fails: every test must run)" if skipped and strict else ""
    terminalreporter.write_line(f"mfdkit: {len(skipped)} skipped{verdict}",
                                red=bool(skipped) and strict, green=not skipped)
