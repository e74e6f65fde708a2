"""One rule for skips: under CI, a skip or xfail not on the allow-list fails the run.

Registered as a plugin by the root ``tests/conftest.py``. Outside CI nothing changes. Under CI
(:func:`tests.tools.in_ci`, the one definition) every test report and collection report is
checked:

* a skip (``pytest.skip``, ``importorskip``, a ``skip``/``skipif`` mark, a skipping fixture, a
  module-level skip) passes only when it was raised by :func:`allowed_skip` for an entry of
  ``tests/skip_allowlist.py`` whose ``tests`` patterns cover the node and whose probe, run again
  here, still proves the reason;
* an xfail (mark or ``pytest.xfail``), and a non-strict xpass, passes only when an ``xfail``
  entry covers the node and its probe proves the reason.

Anything else becomes a failure whose message names the reason and points at the allow-list.
Why: a skipped or xfailed test is green in CI, so a tier that silently stops running (a missing
tool, a rejected config turned into an xfail) hides the regressions it was written to catch.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from typing import Any

import pytest
from tests.skip_allowlist import ALLOWED, Allowance
from tests.tools import in_ci

_TAG = re.compile(r"\[allowed:([\w.-]+)\]")


@functools.cache
def probe_evidence(key: str) -> str | None:
    """The evidence entry ``key``'s probe gives on this machine (cached: probes can be slow)."""
    return ALLOWED[key].probe()


def allowed_skip(key: str) -> None:
    """Skip the calling test with allow-list entry ``key`` when its probe proves the reason.

    Returns normally when the probe finds no evidence: the machine can run the test, so it must.
    """
    entry = ALLOWED[key]
    evidence = probe_evidence(key)
    if evidence is not None:
        pytest.skip(f"[allowed:{key}] {entry.reason}: {evidence}")


def allowed_xfail(key: str) -> None:
    """Like :func:`allowed_skip` for an ``xfail`` entry: xfail the test only when proven here."""
    entry = ALLOWED[key]
    evidence = probe_evidence(key)
    if evidence is not None:
        pytest.xfail(f"[allowed:{key}] {entry.reason}: {evidence}")


def _covers(entry: Allowance, nodeid: str) -> bool:
    path = nodeid.split("::", 1)[0]
    return any(fnmatch.fnmatch(nodeid, p) or fnmatch.fnmatch(path, p) for p in entry.tests)


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def violation(nodeid: str, reason: str, xfail: bool) -> str | None:
    """Why a skip (or xfail) of ``nodeid`` with ``reason`` is not allowed under CI, else None."""
    what = "xfail" if xfail else "skip"
    match = _TAG.search(reason)
    entry = ALLOWED.get(match.group(1)) if match else None
    if entry is None:
        return (
            f"{what} under CI is a failure unless allow-listed in tests/skip_allowlist.py "
            f"(raise it with tests.skip_rule.allowed_skip): {reason}"
        )
    if entry.xfail != xfail:
        return f"allow-list entry {entry.key!r} is not for a {what}: {reason}"
    if not _covers(entry, nodeid):
        return f"allow-list entry {entry.key!r} does not cover {nodeid}: {reason}"
    if probe_evidence(entry.key) is None:
        return f"allow-list entry {entry.key!r}: its probe finds no evidence here: {reason}"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Turn a skip or xfail outside the allow-list into a failure (under CI only)."""
    outcome = yield
    report = outcome.get_result()
    if not in_ci():
        return
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None and (report.skipped or report.passed):
        reason = wasxfail or "(no reason)"
        label = "xfail" if report.skipped else "non-strict xpass"
        problem = violation(report.nodeid, reason, xfail=True)
        if problem:
            del report.wasxfail
            report.outcome = "failed"
            report.longrepr = f"{label}: {problem}"
    elif report.skipped:
        problem = violation(report.nodeid, _skip_reason(report), xfail=False)
        if problem:
            report.outcome = "failed"
            report.longrepr = problem


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """A whole module skipped at collection (``importorskip``, ``allow_module_level``) too."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped:
        problem = violation(report.nodeid, _skip_reason(report), xfail=False)
        if problem:
            report.outcome = "failed"
            report.longrepr = problem
