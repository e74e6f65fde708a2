"""Mutation testing of the core with mutmut 3, one module at a time (``make mutate``).

Why a driver instead of a bare ``mutmut run``: mutmut names a mutant after its file path
(``server/scserver/sublist.py`` -> ``server.scserver.sublist``), while the tests import
``scserver.sublist`` (the source roots are ``server/`` and ``operator/``).  The names would never
match and every mutant would be "no tests".  So each module gets a staging tree under
``.cache/mutmut/<module>/`` with the packages at its top (``scserver/``, ``scoperator/``), a copy of
``tests/`` and a generated ``pyproject.toml`` whose ``[tool.mutmut]`` section mutates only that
module and selects only the fast, in-process unit tests that exercise it.  mutmut then runs, for
each mutant, just the tests that reached the mutated function.

Subprocess tests (scserver or nats-server started as a process) are left out on purpose: the
child runs the installed, unmutated code, so they cannot kill a mutant and only cost minutes.

Usage::

    python hack/mutation.py run [MODULE ...]     # stage + mutmut run (all modules by default)
    python hack/mutation.py report               # write docs/mutation.md from the results
    python hack/mutation.py survivors MODULE     # list surviving mutants with their diffs
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / ".cache" / "mutmut"
REPORT = ROOT / "docs" / "mutation.md"
EQUIVALENT = ROOT / "docs" / "mutation-equivalent.json"
TARGET = 85.0
#: Read-only inputs the unit tests load from the repo root (examples, golden configs).
DATA_DIRS = ("examples",)


@dataclass(frozen=True)
class Module:
    """One module under mutation and the unit tests that are allowed to kill its mutants."""

    name: str
    path: str  # relative to the staging root (package at the top); may be a glob
    tests: tuple[str, ...]
    # pytest -k expression removing in-module tests that start processes (see module doc)
    exclude: str = ""
    # more test files by glob (helpers write per-topic kill tests, e.g. test_options_tls_blocks.py)
    extra_globs: tuple[str, ...] = ()


_NO_PROCS = "not nats_server and not natscli and not kube and not e2e"

MODULES: tuple[Module, ...] = (
    Module("accounts", "scserver/accounts.py", ("tests/server/test_accounts_unit.py",)),
    Module("permissions", "scserver/permissions.py", ("tests/server/test_permissions_unit.py",)),
    Module(
        "subjects",
        "scserver/subjects.py",
        (
            "tests/server/test_subjects.py",
            "tests/server/test_sublist.py",
            "tests/server/test_permissions_unit.py",
        ),
    ),
    Module("routing", "scserver/routing.py", ("tests/server/test_routing_unit.py",)),
    Module(
        "naming",
        "scoperator/naming.py",
        ("tests/operator/test_render.py",),
        exclude="accepts_every_config",
    ),
    Module(
        "sublist",
        "scserver/sublist.py",
        ("tests/server/test_sublist.py",),
        # the stateful Hypothesis machine takes ~30 s per run: too slow to repeat per mutant
        exclude="TestSublistMachine",
    ),
    Module(
        "parser",
        "scserver/protocol/parser.py",
        ("tests/server/test_parser.py",),
        extra_globs=("tests/server/test_parser_survivors.py",),
    ),
    Module(
        "render",
        "scoperator/render.py",
        (
            "tests/operator/test_render.py",
            # the in-process knobs tests that reach render's merge plan and PodMonitor
            "tests/operator/test_knobs.py::test_merge_into_tls_and_accounts_blocks",
            "tests/operator/test_knobs.py::test_pod_monitor_only_when_asked_and_per_cluster",
        ),
        exclude="accepts_every_config",
    ),
    Module(
        "options",
        "scserver/options/*.py",
        (
            "tests/server/test_options.py",
            "tests/server/test_refused_options.py",
            "tests/tls/test_tls_options.py",
        ),
        exclude="config_test_flag_fails or agrees_with_nats_server",
        extra_globs=("tests/server/test_options_*.py",),
    ),
)
BY_NAME = {m.name: m for m in MODULES}


def _extra_tests(module: Module) -> list[str]:
    """Tests written to kill this module's mutants (``tests/**/test_<name>_mutants.py``)."""
    found: set[str] = set()
    for pattern in (f"tests/**/test_{module.name}_mutants.py", *module.extra_globs):
        found.update(str(p.relative_to(ROOT)) for p in ROOT.glob(pattern))
    return sorted(found - set(module.tests))


def _selection(module: Module) -> list[str]:
    tests = [t for t in module.tests if (ROOT / t.split("::")[0]).exists()] + _extra_tests(module)
    if not tests:
        raise SystemExit(f"mutation: no unit tests found for {module.name}: {module.tests}")
    marker = _NO_PROCS
    args = [*tests, "-m", marker]
    if module.exclude:
        args += ["-k", f"not ({module.exclude})"]
    return args


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _pyproject(module: Module) -> str:
    """The staging tree's pyproject: the project's pytest settings, imports from the top."""
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pytest_ini = data["tool"]["pytest"]["ini_options"]
    mm = data["tool"].get("mutmut", {})
    markers = _toml_list(pytest_ini.get("markers", []))
    return f"""# generated by hack/mutation.py for {module.name}; edit [tool.mutmut] in the repo's pyproject
[tool.pytest.ini_options]
pythonpath = ["."]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
timeout = 60
markers = {markers}

[tool.mutmut]
source_paths = ["scserver", "scoperator"]
only_mutate = [{json.dumps(module.path)}]
pytest_add_cli_args = {_toml_list(mm.get("pytest_add_cli_args", ["-x", "-q"]))}
pytest_add_cli_args_test_selection = {_toml_list(_selection(module))}
timeout_multiplier = {float(mm.get("timeout_multiplier", 10.0))}
timeout_constant = {float(mm.get("timeout_constant", 5.0))}
use_git_change_detection = false
also_copy = {_toml_list(list(DATA_DIRS))}
"""


def _sync(src: Path, dst: Path) -> None:
    """Mirror ``src`` into ``dst`` keeping mtimes (mutmut re-mutates a file only when it changed)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def stage(module: Module) -> Path:
    d = STAGE / module.name
    d.mkdir(parents=True, exist_ok=True)
    _sync(ROOT / "server" / "scserver", d / "scserver")
    _sync(ROOT / "operator" / "scoperator", d / "scoperator")
    _sync(ROOT / "tests", d / "tests")
    for name in DATA_DIRS:
        link = d / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name, target_is_directory=True)
    old = _staged_selection(d)
    (d / "pyproject.toml").write_text(_pyproject(module))
    _keep_verdicts_if_tests_only_grew(d, old, _selection(module))
    # mutmut keeps its own copy under mutants/; refresh the parts it never re-copies
    mutants = d / "mutants"
    if mutants.exists():
        shutil.rmtree(mutants / "tests", ignore_errors=True)
        for meta in mutants.glob(module.path + ".meta"):
            _rejudge(meta)
        for src in d.glob(module.path):
            # copied unmutated by an earlier run with another selection: mutmut would take the
            # copy (newer than the source) as already mutated, so drop it
            copy = mutants / src.relative_to(d)
            if copy.exists() and not Path(str(copy) + ".meta").exists():
                copy.unlink()
    return d


def _staged_selection(d: Path) -> list[str] | None:
    """The test selection of the last staging (None if never staged)."""
    import tomllib

    py = d / "pyproject.toml"
    if not py.exists():
        return None
    return tomllib.loads(py.read_text())["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]


def _keep_verdicts_if_tests_only_grew(d: Path, old: list[str] | None, new: list[str]) -> None:
    """Keep mutmut's verdicts when the selection only gained test files.

    mutmut resets every verdict (hours for options) when the selection changes.  A mutant
    killed by a subset of the tests is still killed by the superset, so when the only change
    is added files (same markers and -k), the stored fingerprint is moved to the new selection;
    mutmut then collects stats for the new tests and ``_rejudge`` re-runs the survivors.
    """
    stats = d / "mutants" / "mutmut-stats.json"
    if old is None or old == new or not stats.exists():
        return

    def split(sel: list[str]) -> tuple[set[str], list[str]]:
        i = sel.index("-m") if "-m" in sel else len(sel)
        return set(sel[:i]), sel[i:]

    (old_files, old_opts), (new_files, new_opts) = split(old), split(new)
    if old_opts != new_opts or not old_files <= new_files:
        return
    import hashlib

    data = json.loads(stats.read_text())
    fp = data.get("config_fingerprint") or {}
    fp["test_selection"] = hashlib.sha256(repr(tuple(new)).encode()).hexdigest()[:12]
    data["config_fingerprint"] = fp
    stats.write_text(json.dumps(data, indent=4))


def _rejudge(meta: Path) -> None:
    """Forget the verdicts new tests could change (survived, no tests, suspicious).

    mutmut keeps every decided verdict while the mutated function is unchanged, even when
    tests were added since; killed and timed-out mutants stay decided, the rest run again.
    """
    if not meta.exists():
        return
    data = json.loads(meta.read_text())
    codes = data["exit_code_by_key"]
    for key, code in codes.items():
        if code is not None and _status(code) not in ("killed", "timeout"):
            codes[key] = None
    meta.write_text(json.dumps(data, indent=4))


def run(names: list[str], children: int) -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    rc = 0
    for name in names or [m.name for m in MODULES]:
        module = BY_NAME.get(name)
        if module is None:
            raise SystemExit(f"mutation: unknown module {name!r}; known: {', '.join(BY_NAME)}")
        d = stage(module)
        print(f"== mutmut: {module.name} ({module.path}) in {d}", flush=True)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env.pop("CI", None)  # the skip rule of CI is for the real suite, not for mutants
        res = subprocess.run(
            [str(mutmut), "run", "--max-children", str(children)], cwd=d, env=env, check=False
        )
        if res.returncode != 0:
            print(f"mutation: mutmut failed for {module.name} (exit {res.returncode})", flush=True)
            rc = res.returncode
    return rc


# ------------------------------------------------------------------------------------ results

_STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
_TIMEOUT = {36, 24, -24, 152, 255}


def _status(code: int | None) -> str:
    if code is None:
        return "not checked"
    if code in _TIMEOUT:
        return "timeout"
    return _STATUS.get(code, "suspicious")


def results(module: Module) -> dict[str, str]:
    out: dict[str, str] = {}
    for meta in sorted((STAGE / module.name / "mutants").glob(module.path + ".meta")):
        data = json.loads(meta.read_text())
        out.update({k: _status(v) for k, v in data["exit_code_by_key"].items()})
    return out


def _equivalent() -> dict[str, str]:
    if not EQUIVALENT.exists():
        return {}
    return json.loads(EQUIVALENT.read_text())


def diff(module: Module, key: str) -> str:
    mutmut = Path(sys.executable).with_name("mutmut")
    res = subprocess.run(
        [str(mutmut), "show", key],
        cwd=STAGE / module.name,
        capture_output=True,
        text=True,
        check=False,
    )
    return res.stdout.strip()


def survivors(name: str) -> None:
    module = BY_NAME[name]
    eq = _equivalent()
    for key, status in sorted(results(module).items()):
        if status in ("survived", "no tests", "suspicious", "not checked") and key not in eq:
            print(f"--- {key} [{status}]")
            print(diff(module, key))


#: What mutation testing turned up besides weak tests (kept in the report).
FINDINGS = (
    "parser: the PUB and RMSG fast paths counted the CRLF toward `max_control_line` (a line of "
    "exactly the limit was refused on the fast path, accepted on the general one); fixed by "
    "helper shape in 2e34363 (`test_control_line_limit_counts_the_line_without_its_crlf`).",
    "naming: `certificate_names` takes the advertised gateway host as the text before the last "
    "`:`; for an IPv6 literal (`[2001:db8::1]:7222`) that gives `[2001:db8::1]`, which is not a "
    "valid DNS SAN (an IP SAN would be needed). Not changed here.",
    "parser: a link's too-long control line was reported silently (send=False) on the RMSG fast "
    "path but with -ERR on the general path; nats-server's `overMaxControlLineLimit` sends -ERR "
    "for every connection kind, so the fast path now does too "
    "(`tests/server/test_parser_survivors.py` pins every path).",
)


def report() -> None:
    eq = _equivalent()
    rows = []
    left: list[tuple[str, str, str]] = []
    used_eq: dict[str, list[tuple[str, str]]] = {}
    for m in MODULES:
        res = results(m)
        if not res:
            rows.append(f"| {m.name} | `{m.path}` | – | – | – | – | – | – | – | not run |")
            continue
        count = dict.fromkeys(
            ("killed", "survived", "timeout", "no tests", "equivalent", "not checked", "other"), 0
        )
        for key, status in res.items():
            if status in ("survived", "no tests") and key in eq:
                count["equivalent"] += 1
                used_eq.setdefault(m.name, []).append((key, eq[key]))
            elif status in count:
                count[status] += 1
            else:
                count["other"] += 1
            if status not in ("killed", "timeout", "not checked") and key not in eq:
                left.append((m.name, key, status))
        judged = count["killed"] + count["timeout"] + count["survived"] + count["no tests"]
        judged += count["other"]
        score = 100.0 * (count["killed"] + count["timeout"]) / judged if judged else 0.0
        if count["not checked"]:
            verdict = "run incomplete"
        else:
            verdict = "meets 85 %" if score >= TARGET else "below 85 %"
        rows.append(
            f"| {m.name} | `{m.path}` | {len(res)} | {count['killed']} | {count['timeout']} | "
            f"{count['survived'] + count['no tests'] + count['other']} | {count['equivalent']} | "
            f"{count['not checked']} | {score:.1f} % | {verdict} |"
        )
    lines = [
        "# Mutation testing of the core",
        "",
        "Generated by `make mutate` (`hack/mutate.sh` -> `hack/mutation.py`, mutmut 3). Not part of",
        "CI: it takes a long time on a small machine (`bash hack/mutate.sh parser` runs one module;",
        "`MUTMUT_CHILDREN=2` uses two cores).  Each module is staged under `.cache/mutmut/<module>/`",
        "and its mutants are judged only by fast in-process unit tests (the selection per module is",
        "below); tests that start server processes run unmutated code, so they are left out.",
        "Score = (killed + timeout) / judged, equivalents left out; *not checked* mutants were not reached",
        "by the last run.  Target: at least 85 % per module.",
        "",
        "| module | file | mutants | killed | timeout | survived | equivalent | not checked"
        " | score | |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "## Tests that judge each module",
        "",
    ]
    for m in MODULES:
        sel = [a for a in _selection(m) if a.startswith("tests/")]
        extra = f" (pytest -k `not ({m.exclude})`)" if m.exclude else ""
        lines.append(f"- {m.name}: " + ", ".join(f"`{t}`" for t in sel) + extra)
    lines += ["", "## Findings", ""]
    lines += [f"- {f}" for f in FINDINGS]
    lines += [
        "",
        "## Equivalent mutants",
        "",
        "Surviving mutants that cannot change behaviour, with the reason (kept in",
        "`docs/mutation-equivalent.json`; mutant numbers are mutmut's and move when the function",
        "changes, so re-check the list after editing a module).",
        "",
    ]
    for mod in [m.name for m in MODULES if m.name in used_eq]:
        lines.append(f"### {mod}")
        lines.append("")
        for key, why in sorted(used_eq[mod]):
            lines.append(f"- `{key}`: {why}")
        lines.append("")
    if not used_eq:
        lines += ["None.", ""]
    lines += ["## Survivors not yet killed", ""]
    if left:
        lines.append(
            "Inspect one with `cd .cache/mutmut/<module> && ../../../.venv/bin/mutmut show <name>`."
        )
        lines.append("")
        for mod, key, status in sorted(left):
            lines.append(f"- {mod}: `{key}` ({status})")
    else:
        lines.append("None.")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[10 : 12 + len(rows)]))
    print(f"wrote {REPORT.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "report", "survivors", "stage"):
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        children = int(os.environ.get("MUTMUT_CHILDREN", "1"))
        return run(rest, children)
    if cmd == "stage":
        for n in rest:
            print(stage(BY_NAME[n]))
        return 0
    if cmd == "survivors":
        for n in rest:
            survivors(n)
        return 0
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
