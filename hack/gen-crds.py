#!/usr/bin/env python3
"""Write crds/*.yaml from the pydantic models (`make crds`); `--check` exits 1 when stale.

The CRDs are generated, never edited by hand: tests/operator/test_crds.py fails when the files
differ from what the models produce, so run this after changing operator/scoperator/models.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from scoperator.crds import render_crd_files  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument("--out", type=Path, default=ROOT / "crds")
    args = parser.parse_args()
    stale = []
    for name, text in render_crd_files().items():
        path = args.out / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(("stale: " if args.check else "wrote ") + str(path.relative_to(ROOT)))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
