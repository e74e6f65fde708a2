"""The skip rule (tests/skip_rule.py): under CI a skip or xfail outside the allow-list fails.

Each case runs a small pytest session in a subprocess (``pytester``) with the rule loaded as a
plugin and a few allow-list entries added by the inner conftest, under ``CI=true`` and without.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from tests.skip_allowlist import ALLOWED
from tests.tools import REPO_ROOT, in_ci

INNER_CONFTEST = """
from tests.skip_allowlist import ALLOWED, Allowance

ALLOWED["demo"] = Allowance(
    "demo", "this machine has no widget", ("test_rule.py::test_allowed*",), lambda: "no /widget"
)
ALLOWED["absent"] = Allowance(
    "absent", "the widget is missing", ("test_rule.py::*",), lambda: None
)
ALLOWED["demo-xfail"] = Allowance(
    "demo-xfail", "widget bug 7", ("test_rule.py::test_xfail_allowed",), lambda: "bug 7", xfail=True
)
"""

INNER_TESTS = """
import pytest
from tests.skip_rule import allowed_skip, allowed_xfail

def test_plain_skip():
    pytest.skip("no widget")

@pytest.mark.skipif(True, reason="widgets are rare")
def test_skipif_mark():
    pass

def test_importorskip():
    pytest.importorskip("no_such_module_anywhere")

@pytest.mark.xfail(reason="known widget bug")
def test_xfail_mark():
    assert False

@pytest.mark.xfail(reason="maybe broken")
def test_xpass_mark():
    pass

def test_xfail_call():
    pytest.xfail("known widget bug")

def test_allowed_skip():
    allowed_skip("demo")

def test_allowed_skip_proven_absent_runs():
    allowed_skip("absent")
    assert False, "ran because the probe found no evidence"

def test_forged_tag():
    pytest.skip("[allowed:absent] the widget is missing")

def test_outside_entry():
    allowed_skip("demo")

def test_xfail_allowed():
    allowed_xfail("demo-xfail")

def test_passes():
    pass
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None):
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_rule=INNER_TESTS)
    parts = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in parts if p))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    return pytester.runpytest_subprocess(
        "-p", "tests.skip_rule", "-p", "no:cacheprovider", "-rA", "-v", timeout=120
    )


def _outcomes(stdout: str) -> dict[str, str]:
    """test name -> its verbose outcome (PASSED, FAILED, SKIPPED, XFAIL, XPASS, ERROR).

    A test that fails in setup (a ``skipif`` mark turned into a failure) reports ERROR.
    """
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        m = re.match(r"test_rule\.py::(\w+) (PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR)\b", line)
        if m:
            out.setdefault(m.group(1), m.group(2))
    return out


def test_under_ci_only_allow_listed_skips_pass(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, "true")
    got = _outcomes(result.stdout.str())
    assert got == {
        "test_plain_skip": "FAILED",
        "test_skipif_mark": "ERROR",  # skipped in setup, so failed in setup
        "test_importorskip": "FAILED",
        "test_xfail_mark": "FAILED",
        "test_xpass_mark": "FAILED",
        "test_xfail_call": "FAILED",
        "test_allowed_skip": "SKIPPED",
        "test_allowed_skip_proven_absent_runs": "FAILED",
        "test_forged_tag": "FAILED",
        "test_outside_entry": "FAILED",
        "test_xfail_allowed": "XFAIL",
        "test_passes": "PASSED",
    }, result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str()
    assert "skip under CI is a failure unless allow-listed in tests/skip_allowlist.py" in text
    assert "xfail: xfail under CI is a failure unless allow-listed" in text
    assert "ran because the probe found no evidence" in text
    assert "allow-list entry 'absent': its probe finds no evidence here" in text
    assert "allow-list entry 'demo' does not cover test_rule.py::test_outside_entry" in text
    assert "[allowed:demo] this machine has no widget: no /widget" in text


def test_outside_ci_skips_and_xfails_stay(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, None)
    got = _outcomes(result.stdout.str())
    assert got["test_plain_skip"] == "SKIPPED"
    assert got["test_skipif_mark"] == "SKIPPED"
    assert got["test_importorskip"] == "SKIPPED"
    assert got["test_xfail_mark"] == "XFAIL"
    assert got["test_xpass_mark"] == "XPASS"
    assert got["test_forged_tag"] == "SKIPPED"
    assert got["test_allowed_skip_proven_absent_runs"] == "FAILED"  # the probe says: run it
    assert got["test_passes"] == "PASSED"


def test_only_allow_listed_all_pass_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose only skip is allow-listed and proven is green under CI."""
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(
        test_rule="""
from tests.skip_rule import allowed_skip

def test_allowed_skip():
    allowed_skip("demo")

def test_passes():
    pass
"""
    )
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.setenv("CI", "yes")
    result = pytester.runpytest_subprocess("-p", "tests.skip_rule", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK


def test_module_level_skip_fails_collection_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_mod="""
import pytest
widget = pytest.importorskip("no_such_widget_module")

def test_never():
    pass
"""
    )
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.setenv("CI", "1")
    result = pytester.runpytest_subprocess("-p", "tests.skip_rule", "-p", "no:cacheprovider")
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*skip under CI is a failure unless allow-listed*"])
    monkeypatch.setenv("CI", "false")
    result = pytester.runpytest_subprocess("-p", "tests.skip_rule", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("", False), ("false", False)],
)
def test_in_ci_is_one_definition(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool):
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_the_real_allow_list_is_short_and_sound() -> None:
    """Every entry names a reason, covers existing test files, and its probe answers here."""
    assert len(ALLOWED) <= 5
    for key, entry in ALLOWED.items():
        assert entry.key == key and entry.reason
        for pattern in entry.tests:
            assert list(Path(REPO_ROOT).glob(pattern.split("::")[0])), (key, pattern)
        evidence = entry.probe()
        assert evidence is None or (isinstance(evidence, str) and evidence), (key, evidence)
