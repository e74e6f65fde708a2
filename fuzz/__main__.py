"""``python -m fuzz <harness> [libFuzzer flags]``: run one harness under atheris.

The harness module is imported inside ``atheris.instrument_imports`` so that scserver's code is
compiled with coverage feedback; importing it anywhere else (tests) leaves it uninstrumented.
By default new corpus units go to ``fuzz/grown/<harness>/`` and crash files to
``fuzz/artifacts/`` (both git-ignored), while ``fuzz/corpus/<harness>/`` seeds the run read-only.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import atheris

from fuzz import HARNESSES

HERE = Path(__file__).resolve().parent
DICTS = {"config": "conf.dict", "connect_info": "json.dict"}


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help", "--list"):
        print("usage: python -m fuzz <harness> [libFuzzer flags] [corpus dirs]")
        print("harnesses: " + " ".join(HARNESSES))
        raise SystemExit(0 if argv else 2)
    name, flags = argv[0], argv[1:]
    if name not in HARNESSES:
        raise SystemExit(f"unknown harness {name!r}; one of: {' '.join(HARNESSES)}")
    dirs = [a for a in flags if not a.startswith("-")]
    if not dirs:
        # libFuzzer writes new units into the first directory only: keep the seeds clean.
        work = HERE / "grown" / name
        work.mkdir(parents=True, exist_ok=True)
        flags += [str(work), str(HERE / "corpus" / name)]
    if not any(f.startswith("-artifact_prefix=") for f in flags):
        art = HERE / "artifacts"
        art.mkdir(exist_ok=True)
        flags.append(f"-artifact_prefix={art}/{name}-")
    if not any(f.startswith("-dict=") for f in flags):
        flags.append(f"-dict={HERE / 'dicts' / DICTS.get(name, 'protocol.dict')}")
    if not any(f.startswith("-timeout=") for f in flags):
        flags.append("-timeout=10")  # a single input running 10 s is a hang, not slowness
    if not any(f.startswith("-rss_limit_mb=") for f in flags):
        flags.append("-rss_limit_mb=1024")
    with atheris.instrument_imports(include=["scserver"]):
        mod = importlib.import_module(f"fuzz.{name}")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    atheris.Setup([sys.argv[0], *flags], mod.TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
