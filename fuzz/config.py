"""Fuzz the configuration language (conf lexer + parser) and options.load on a real file.

The only exception a bad config may raise is ``scserver.conf.ConfigError`` (``OptionsError``
for option faults is a subclass) carrying a message; anything else (IndexError, RecursionError,
TypeError, ...) is a crash. A config that loads must also build a Server.

Input layout: the whole input is the file's bytes. It is written to ``main.conf`` in a private
directory that also holds ``inc.conf`` (a valid fragment), so ``include inc.conf`` and
``include main.conf`` (a cycle) are reachable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fuzz.common import Finding, make_server_from_opts
from scserver import options
from scserver.conf import ConfigError, parse_string

_DIR = Path(tempfile.mkdtemp(prefix="scfuzz-conf-"))
(_DIR / "inc.conf").write_text('users: [ {user: a, password: "a b"} ]\nport: 4333\n')
_MAIN = _DIR / "main.conf"
_ENV = {"FUZZ_PORT": "4444", "FUZZ_NAME": "fuzz", "FUZZ_EMPTY": ""}


def _check(err: ConfigError) -> None:
    text = str(err)
    if not text or not err.message:
        raise Finding(f"ConfigError without a message: {err!r}")


def TestOneInput(data: bytes) -> None:
    _MAIN.write_bytes(data)
    try:
        opts = options.load(str(_MAIN))
    except ConfigError as err:
        _check(err)
    else:
        make_server_from_opts(opts)
    # The in-memory path (used for --config-string style callers and tests), hermetic env.
    text = data.decode("utf-8", "replace")
    try:
        conf = parse_string(text, str(_MAIN), str(_DIR), env=_ENV)
        options.from_dict(conf, source=str(_MAIN))
    except ConfigError as err:
        _check(err)


def _cleanup() -> None:  # pragma: no cover - process exit
    for p in _DIR.iterdir():
        p.unlink()
    os.rmdir(_DIR)


import atexit  # noqa: E402

atexit.register(_cleanup)
