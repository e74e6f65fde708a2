"""``python -m fuzz.replay <harness> <file>...``: run inputs through a harness, uninstrumented.

For reproducing a crash file (fuzz/artifacts/...) with a plain traceback, and for the regression
tests, which run each input in a fresh process so the harness's quiet logging and offline event
loop never leak into the test session. Exit status 1 on the first input that fails.
"""

from __future__ import annotations

import importlib
import sys
import traceback

from fuzz import HARNESSES


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in HARNESSES:
        print(f"usage: python -m fuzz.replay <{'|'.join(HARNESSES)}> <file>...", file=sys.stderr)
        return 2
    harness = importlib.import_module(f"fuzz.{argv[0]}")
    for path in argv[1:]:
        with open(path, "rb") as fh:
            data = fh.read()
        try:
            harness.TestOneInput(data)
        except BaseException as exc:  # noqa: BLE001 - report any failure with its cause
            print(f"{path}: FAILED", file=sys.stderr)
            traceback.print_exception(exc, file=sys.stderr)
            return 1
        print(f"{path}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
