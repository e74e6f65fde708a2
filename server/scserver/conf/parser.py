"""Build values from tokens: maps, arrays, scalars, variables and includes.

Everything a caller gets back is plain Python data except that maps are ``ConfDict`` and arrays
are ``ConfList``: subclasses that also remember where each key or element was written, so that
``scserver.options`` can report ``file:line:col`` for a bad option long after parsing.

Semantics follow nats-server's ``conf/parse.go``:

* integers may carry a size suffix: ``k``/``m``/``g``/``t``/``p``/``e`` are powers of 1000 and
  ``kb``/``ki``/``kib`` (and likewise for the others) powers of 1024, case-insensitive;
* ``$name`` looks ``name`` up among keys already defined in the enclosing maps, innermost first,
  then in the environment, whose value is parsed as a config value (so ``4222`` is an int);
  a reference that resolves nowhere is an error; ``$2a$...`` is a bcrypt hash, kept as a string;
* ``include path`` parses another file (relative to the including file's directory) and merges
  its top-level keys into the current map; unlike nats-server, include cycles are reported
  instead of recursing until the stack runs out;
* a key that was used as a variable is remembered in ``ConfDict.used``: nats-server does not
  report such keys as unknown options, and neither should we.

File access is limited to reading included files; there is no other I/O and no asyncio.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

from .lexer import ConfigError, Pos, Tok, Token, tokenize

__all__ = ["ConfDict", "ConfList", "parse_file", "parse_string", "to_plain"]

_SUFFIX = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "p": 1000**5,
    "e": 1000**6,
}
for _i, _letter in enumerate("kmgtpe", start=1):
    for _form in ("b", "i", "ib"):
        _SUFFIX[_letter + _form] = 1024**_i

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_BCRYPT_PREFIX = "2a$"
_ENV_KEY = "pk"


class ConfDict(dict[str, Any]):
    """A config map that knows where each key was written.

    ``positions[key]`` is the Pos of the key (in the file that defined it, which for keys merged
    by ``include`` is the included file); ``pos`` is where the map itself starts; ``used`` holds
    the keys that some later ``$key`` reference read.
    """

    __slots__ = ("positions", "pos", "used")

    def __init__(self, *args: Any, pos: Pos | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.positions: dict[str, Pos] = {}
        self.pos = pos
        self.used: set[str] = set()

    def pos_of(self, key: str) -> Pos | None:
        """Where ``key`` was written, falling back to the map's own position."""
        return self.positions.get(key, self.pos)


class ConfList(list[Any]):
    """A config array that knows where each element (and the array itself) was written."""

    __slots__ = ("positions", "pos")

    def __init__(self, *args: Any, pos: Pos | None = None) -> None:
        super().__init__(*args)
        self.positions: list[Pos] = []
        self.pos = pos

    def pos_of(self, index: int) -> Pos | None:
        """Where element ``index`` was written, falling back to the array's own position."""
        if 0 <= index < len(self.positions):
            return self.positions[index]
        return self.pos


def parse_string(
    text: str,
    filename: str = "<string>",
    base_dir: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> ConfDict:
    """Parse configuration text. ``base_dir`` anchors relative includes (default: the cwd).

    ``env`` replaces ``os.environ`` for ``$VAR`` lookups, which keeps tests hermetic.
    """
    if base_dir is None:
        base_dir = os.path.dirname(filename) if os.path.isfile(filename) else os.getcwd()
    return _Parser(text, filename, base_dir, os.environ if env is None else env, (), set()).parse()


def parse_file(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> ConfDict:
    """Parse a configuration file; includes are resolved relative to its directory."""
    path = os.fspath(path)
    text = _read(path, None)
    real = os.path.realpath(path)
    return _Parser(
        text,
        path,
        os.path.dirname(path) or ".",
        os.environ if env is None else env,
        (real,),
        set(),
    ).parse()


def to_plain(value: Any) -> Any:
    """Strip positions: ConfDict/ConfList become dict/list (handy for JSON and comparisons)."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


def _read(path: str, at: Pos | None) -> str:
    """Read a config file as text, turning every failure into a located ConfigError."""

    def fail(reason: str) -> ConfigError:
        if at is not None:
            return ConfigError.at(at, f"cannot include {path!r}: {reason}")
        return ConfigError(f"cannot read config file: {reason}", path)

    if not os.path.exists(path):
        raise fail("no such file")
    if not os.path.isfile(path):
        # Refuse directories, FIFOs and devices: reading /dev/stdin or a FIFO would hang.
        raise fail("not a regular file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise fail(e.strerror or str(e)) from None
    # Go reads bytes; invalid UTF-8 must not crash us, so replace rather than fail.
    text = data.decode("utf-8", "replace")
    return text.removeprefix("\ufeff")


class _Parser:
    """Consumes one file's tokens; a new _Parser handles each include and environment value."""

    def __init__(
        self,
        text: str,
        filename: str,
        base_dir: str,
        env: Mapping[str, str],
        includes: tuple[str, ...],
        env_refs: set[str],
    ) -> None:
        self.filename = filename
        self.base_dir = base_dir
        self.env = env
        self.includes = includes  # real paths of the files being parsed, outermost first
        self.env_refs = env_refs  # environment variables being expanded (cycle detection)
        self.tokens: Iterator[Token] = iter(tokenize(text, filename))
        self.scopes: list[ConfDict] = []

    def parse(self) -> ConfDict:
        root = ConfDict(pos=Pos(self.filename, 1, 1))
        self.scopes.append(root)
        self.fill_map(root, Tok.EOF)
        return root

    def fill_map(self, m: ConfDict, end: Tok) -> None:
        for tok in self.tokens:
            if tok.kind is end:
                return
            if tok.kind is Tok.INCLUDE:
                self.include(m, tok)
                continue
            if tok.kind is not Tok.KEY:  # the lexer guarantees structure; be defensive anyway
                raise ConfigError.at(tok.pos, f"unexpected {tok.kind.value} where a key belongs")
            value = self.value(next(self.tokens))
            m[tok.value] = value
            m.positions[tok.value] = tok.pos

    def value(self, tok: Token) -> Any:
        kind = tok.kind
        if kind is Tok.STRING:
            return tok.value
        if kind is Tok.INTEGER:
            return _integer(tok)
        if kind is Tok.BOOL:
            return tok.value.lower() in ("true", "yes", "on")
        if kind is Tok.MAP_START:
            d = ConfDict(pos=tok.pos)
            self.scopes.append(d)
            try:
                self.fill_map(d, Tok.MAP_END)
            finally:
                self.scopes.pop()
            return d
        if kind is Tok.ARRAY_START:
            arr = ConfList(pos=tok.pos)
            for item in self.tokens:
                if item.kind is Tok.ARRAY_END:
                    return arr
                arr.append(self.value(item))
                arr.positions.append(item.pos)
            raise ConfigError.at(tok.pos, "unbalanced brackets: '[' is never closed")
        if kind is Tok.VARIABLE:
            return self.lookup(tok)
        if kind is Tok.FLOAT:
            f = float(tok.value)
            if math.isinf(f):
                raise ConfigError.at(tok.pos, f"float {tok.value!r} is out of range")
            return f
        if kind is Tok.DATETIME:
            try:
                parsed = _dt.datetime.strptime(tok.value, "%Y-%m-%dT%H:%M:%SZ")
            except ValueError:
                raise ConfigError.at(tok.pos, f"invalid date {tok.value!r}") from None
            return parsed.replace(tzinfo=_dt.UTC)
        raise ConfigError.at(tok.pos, f"unexpected {kind.value} where a value belongs")

    def lookup(self, tok: Token) -> Any:
        name = tok.value
        if name.startswith(_BCRYPT_PREFIX):
            return "$" + name
        for scope in reversed(self.scopes):
            if name in scope:
                scope.used.add(name)
                return scope[name]
        if name in self.env_refs:
            raise ConfigError.at(tok.pos, f"variable reference cycle for '${name}'")
        raw = self.env.get(name)
        if raw is None:
            raise ConfigError.at(
                tok.pos,
                f"variable '${name}' is not defined: no key {name!r} precedes it in an "
                "enclosing block and there is no such environment variable",
            )
        self.env_refs.add(name)
        try:
            sub = _Parser(
                f"{_ENV_KEY}={raw}",
                f"<environment variable {name}>",
                self.base_dir,
                self.env,
                self.includes,
                self.env_refs,
            ).parse()
        except ConfigError as e:
            raise ConfigError.at(
                tok.pos, f"value of environment variable {name!r} (for '${name}') is invalid: {e}"
            ) from None
        finally:
            self.env_refs.discard(name)
        if _ENV_KEY not in sub:
            raise ConfigError.at(tok.pos, f"environment variable {name!r} has no usable value")
        return sub[_ENV_KEY]

    def include(self, m: ConfDict, tok: Token) -> None:
        if "\0" in tok.value:
            # No file system takes such a name; os.path raises a bare ValueError for it.
            raise ConfigError.at(tok.pos, f"cannot include {tok.value!r}: NUL byte in the path")
        path = os.path.join(self.base_dir, tok.value)
        real = os.path.realpath(path)
        if real in self.includes:
            chain = " -> ".join(os.path.basename(p) for p in (*self.includes, real))
            raise ConfigError.at(tok.pos, f"include cycle: {chain}")
        text = _read(path, tok.pos)
        try:
            sub = _Parser(
                text,
                path,
                os.path.dirname(path) or ".",
                self.env,
                (*self.includes, real),
                self.env_refs,
            ).parse()
        except ConfigError as e:
            if "(included from " in e.message:
                raise
            e.message += f" (included from {tok.pos.file}:{tok.pos.line})"
            e.args = (e.message,)
            raise
        for key, value in sub.items():
            m[key] = value
            m.positions[key] = sub.positions[key]
            if key in sub.used:
                m.used.add(key)


def _integer(tok: Token) -> int:
    text = tok.value
    split = len(text)
    for idx, ch in enumerate(text):
        if not (ch.isdigit() or ch == "-"):
            split = idx
            break
    digits, suffix = text[:split], text[split:].lower()
    if suffix not in _SUFFIX:
        raise ConfigError.at(tok.pos, f"invalid size suffix {text[split:]!r} in {text!r}")
    try:
        base = int(digits)
    except ValueError:
        raise ConfigError.at(tok.pos, f"expected an integer but got {text!r}") from None
    value = base * _SUFFIX[suffix]
    if not _INT64_MIN <= base <= _INT64_MAX or not _INT64_MIN <= value <= _INT64_MAX:
        raise ConfigError.at(tok.pos, f"integer {text!r} is out of range")
    return value
