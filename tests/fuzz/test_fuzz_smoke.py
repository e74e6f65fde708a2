"""A short coverage-guided run of every fuzz harness (``make fuzz`` runs them for longer).

Each harness runs in its own process under atheris for ``SC_FUZZ_SMOKE_SECONDS`` (default 15 s),
starting from its seed corpus (fuzz/corpus/<harness>/); any crash, hang or leak libFuzzer reports
fails the test with the crashing input's path and the harness's traceback. New corpus units and
crash files go to the test's temporary directory, never into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.fuzz.fuzz_helpers import ROOT, run_module

from fuzz import HARNESSES

SECONDS = int(os.environ.get("SC_FUZZ_SMOKE_SECONDS", "15"))


def test_every_harness_has_a_seed_corpus() -> None:
    for name in HARNESSES:
        seeds = list((ROOT / "fuzz" / "corpus" / name).iterdir())
        assert len(seeds) >= 3, f"fuzz/corpus/{name} needs valid and near-valid seed inputs"
        assert sum(p.stat().st_size for p in seeds) < 16384, f"fuzz/corpus/{name} is too big"


@pytest.mark.timeout(SECONDS + 90)
@pytest.mark.parametrize("harness", HARNESSES)
def test_fuzz_harness_short_run(harness: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    proc = run_module(
        [
            "fuzz",
            harness,
            f"-max_total_time={SECONDS}",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
            str(work),
            str(ROOT / "fuzz" / "corpus" / harness),
        ],
        timeout=SECONDS + 75,
    )
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and not crashes, (
        f"fuzz harness {harness} failed (exit {proc.returncode}, artifacts {crashes}); "
        f"replay with: python -m fuzz.replay {harness} <file>\n" + out[-6000:]
    )
    assert "stat::number_of_executed_units" in out, out[-2000:]
