"""Tokenizer for the nats-server configuration language.

The language is context sensitive (a word is a key at the start of an entry and a value after
it; ``include`` is a keyword only in key position), so this lexer walks the nesting itself and
emits a flat list of tokens that already encodes the structure (MAP_START/MAP_END, ...). The
parser then only has to build values, resolve variables and follow includes.

The rules follow nats-server's ``conf/lex.go`` (checked against ``nats-server -t``):

* key/value separators ``=``, ``:`` or only whitespace; values end at a newline, ``;`` or ``,``;
* ``#`` and ``//`` comments; optional ``{ }`` around the whole document (so JSON parses);
* double-quoted strings with ``\\t \\n \\r \\" \\\\ \\xHH``; single-quoted raw strings; bare
  strings; ``( ... )`` block strings whose ``)`` is alone on its line;
* a value starting with a digit is an integer (with an optional size suffix), a float, an ISO 8601
  Zulu date, or an IP-address-like string; if anything else follows the digits it is a string;
* bare ``true/false/yes/no/on/off`` are booleans and bare ``$name`` is a variable reference.

Deliberate deviations, all toward rejecting nonsense that nats-server silently accepts: a stray
``}`` at the top level is an error, a key with no value inside a map is an error, an unknown size
suffix such as ``1kbb`` is an error, and ``]`` ends a number: ``[1, 2]`` holds two integers,
where nats-server 2.15.1 reports a parse error unless a space or newline precedes the ``]``.

Sans-IO: no file access here, no imports of our own modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

__all__ = ["ConfigError", "Pos", "Tok", "Token", "tokenize", "MAX_DEPTH"]

#: Maps and arrays may nest this deep. The limit keeps hostile input from exhausting the Python
#: stack (a RecursionError would not be a ConfigError).
MAX_DEPTH = 128

_SEPARATORS = "=:"
_BOOLS = frozenset({"true", "false", "yes", "no", "on", "off"})
_SIZE_LETTERS = frozenset("kKmMgGtTpPeE")
# Characters that end a bare string value (the quote is special: it ends and is swallowed).
_BARE_END = frozenset("\n\r;,]} \t")
# Characters that end a number; anything else after the digits turns the value into a string.
_NUMBER_END = frozenset("\n\r};, \t]")
_HEX = frozenset("0123456789abcdefABCDEF")


class Pos(NamedTuple):
    """Where something was written: file name, 1-based line, 1-based column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class ConfigError(ValueError):
    """A configuration that cannot be used; always says where (``file:line:col: message``).

    A ValueError subclass so callers that validate many inputs can catch one family.
    """

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column

    @classmethod
    def at(cls, pos: Pos | None, message: str) -> ConfigError:
        """Build an error located at ``pos`` (which may be unknown)."""
        if pos is None:
            return cls(message)
        return cls(message, pos.file, pos.line, pos.col)

    @property
    def pos(self) -> Pos | None:
        """The location as a Pos, or None when the error has no location."""
        if self.file is None or self.line is None:
            return None
        return Pos(self.file, self.line, self.column or 0)

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        if self.line is None:
            return f"{self.file}: {self.message}"
        if self.column is None:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class Tok(Enum):
    """Token kinds. Value kinds carry raw text; the parser converts them."""

    KEY = "key"
    INCLUDE = "include"
    STRING = "string"
    BOOL = "bool"
    INTEGER = "integer"
    FLOAT = "float"
    DATETIME = "datetime"
    VARIABLE = "variable"
    MAP_START = "{"
    MAP_END = "}"
    ARRAY_START = "["
    ARRAY_END = "]"
    EOF = "eof"


@dataclass(slots=True, frozen=True)
class Token:
    """One token: kind, text (already unescaped for strings) and where it starts."""

    kind: Tok
    value: str
    pos: Pos


def tokenize(text: str, filename: str = "<string>") -> list[Token]:
    """Split a whole configuration text into tokens, or raise ConfigError at the first fault."""
    return _Lexer(text, filename).run()


def _show(ch: str) -> str:
    """Render a character for an error message (newlines and EOF made visible)."""
    if ch == "":
        return "end of file"
    if ch == "\n":
        return "'\\n'"
    if ch == "\r":
        return "'\\r'"
    return repr(ch)


class _Lexer:
    """A cursor over the text with one method per grammatical context."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.n = len(text)
        self.file = filename
        self.i = 0
        self.line = 1
        self.line_start = 0  # index of the first character of the current line
        self.out: list[Token] = []
        self.depth = 0

    # -- cursor helpers ---------------------------------------------------------------------

    def pos(self) -> Pos:
        return Pos(self.file, self.line, self.i - self.line_start + 1)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.text[j] if j < self.n else ""

    def advance(self) -> str:
        ch = self.text[self.i]
        self.i += 1
        if ch == "\n":
            self.line += 1
            self.line_start = self.i
        return ch

    def error(self, message: str, pos: Pos | None = None) -> ConfigError:
        return ConfigError.at(pos or self.pos(), message)

    def emit(self, kind: Tok, value: str, pos: Pos) -> None:
        self.out.append(Token(kind, value, pos))

    def skip_blanks(self) -> None:
        """Skip spaces and tabs only (newlines are significant after a value)."""
        while self.i < self.n and self.text[self.i] in " \t":
            self.i += 1

    def skip_space(self) -> None:
        """Skip all whitespace, newlines included."""
        while self.i < self.n and self.text[self.i].isspace():
            self.advance()

    def at_comment(self) -> bool:
        ch = self.peek()
        return ch == "#" or (ch == "/" and self.peek(1) == "/")

    def skip_comment(self) -> None:
        """Skip to the end of the line (the newline itself is left for the caller)."""
        while self.i < self.n and self.text[self.i] not in "\n\r":
            self.i += 1

    def skip_space_and_comments(self) -> None:
        while True:
            self.skip_space()
            if not self.at_comment():
                return
            self.skip_comment()

    def enter(self, pos: Pos) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"maps and arrays nest deeper than {MAX_DEPTH} levels", pos)

    # -- document -----------------------------------------------------------------------------

    def run(self) -> list[Token]:
        braces: list[Pos] = []  # optional braces around the whole document
        while True:
            self.skip_space_and_comments()
            ch = self.peek()
            if ch == "":
                # nats-server accepts a document whose optional outer '{' is never closed.
                break
            if ch == "{":
                braces.append(self.pos())
                self.advance()
                continue
            if ch == "}":
                if not braces:
                    raise self.error("unbalanced braces: '}' without a matching '{'")
                braces.pop()
                self.advance()
                continue
            self.entry(in_map=False)
            self.top_value_end(braces)
        self.emit(Tok.EOF, "", self.pos())
        return self.out

    def top_value_end(self, braces: list[Pos]) -> None:
        """After a top-level value: only blanks, then a comment or a terminator."""
        self.skip_blanks()
        ch = self.peek()
        if ch in ("", "\n", "\r", ";", ","):
            if ch:
                self.advance()
            return
        if self.at_comment():
            self.skip_comment()
            return
        if ch == "}":
            if not braces:
                raise self.error("unbalanced braces: '}' without a matching '{'")
            braces.pop()
            self.advance()
            return
        raise self.error(f"expected a new line, ';' or ',' after a value but got {_show(ch)}")

    # -- keys -----------------------------------------------------------------------------------

    def entry(self, in_map: bool) -> None:
        """One ``key [sep] value`` or ``include path`` entry."""
        start = self.pos()
        ch = self.peek()
        if ch in _SEPARATORS:
            raise self.error(f"unexpected key separator {ch!r} where a key was expected")
        if in_map and ch == "]":
            raise self.error("unexpected ']' inside a map")
        if ch in "\"'":
            self.advance()
            key_start = self.i
            while True:
                c = self.peek()
                if c == "":
                    raise self.error("unterminated quoted key", start)
                if c == ch:
                    break
                self.advance()
            key = self.text[key_start : self.i]
            self.advance()
        else:
            key_start = self.i
            while True:
                c = self.peek()
                if c == "" or c.isspace() or c in _SEPARATORS:
                    break
                self.advance()
            key = self.text[key_start : self.i]
            if key.lower() == "include" and self.peek().isspace():
                self.include(start)
                return
        self.emit(Tok.KEY, key, start)
        self.skip_space()
        has_sep = self.peek() in _SEPARATORS and self.peek() != ""
        if has_sep:
            self.advance()
        if in_map or not has_sep:
            self.skip_space()
        else:
            self.skip_blanks()
        ch = self.peek()
        if ch == "":
            raise self.error(f"key {key!r} has no value (unexpected end of file)", start)
        if ch in "\n\r":
            raise self.error(f"key {key!r} has no value (found a new line)", start)
        if in_map and ch in ",;}":
            raise self.error(f"key {key!r} has no value", start)
        self.value()

    def include(self, start: Pos) -> None:
        """``include path``: the path is quoted or a bare word; the file is read by the parser."""
        self.skip_blanks()
        pos = self.pos()
        ch = self.peek()
        if ch and ch in "\"'":
            self.advance()
            p0 = self.i
            while True:
                c = self.peek()
                if c == "":
                    raise self.error("unterminated quoted include path", pos)
                if c == ch:
                    break
                self.advance()
            path = self.text[p0 : self.i]
            self.advance()
        else:
            if ch == "" or ch in "\n\r":
                raise self.error("include needs a file path", start)
            if ch in "[{(" or ch.isdigit() or ch in "-\\":
                raise self.error(f"include needs a file path but got {_show(ch)}", pos)
            p0 = self.i
            while True:
                c = self.peek()
                if c == "" or c in "\n\r;} \t'":
                    break
                self.advance()
            path = self.text[p0 : self.i]
        self.emit(Tok.INCLUDE, path, start)

    # -- values -------------------------------------------------------------------------------

    def value(self) -> None:
        pos = self.pos()
        ch = self.peek()
        if ch == "[":
            self.advance()
            self.array(pos)
        elif ch == "{":
            self.advance()
            self.map(pos)
        elif ch == "'":
            self.advance()
            p0 = self.i
            while True:
                c = self.peek()
                if c == "":
                    raise self.error("unterminated single-quoted string", pos)
                if c == "'":
                    break
                self.advance()
            self.emit(Tok.STRING, self.text[p0 : self.i], pos)
            self.advance()
        elif ch == '"':
            self.advance()
            self.emit(Tok.STRING, self.double_quoted(pos), pos)
        elif ch == "(":
            self.advance()
            self.block_string(pos)
        elif ch == "-":
            self.advance()
            self.negative_number(pos)
        elif ch.isdigit():
            self.number(pos)
        elif ch == ".":
            raise self.error("floats must start with a digit")
        else:
            self.bare(pos, self.i)

    def array(self, start: Pos) -> None:
        self.enter(start)
        self.emit(Tok.ARRAY_START, "", start)
        while True:
            self.skip_space_and_comments()
            ch = self.peek()
            if ch == "":
                raise self.error("unbalanced brackets: '[' is never closed", start)
            if ch == "]":
                end = self.pos()
                self.advance()
                self.emit(Tok.ARRAY_END, "", end)
                self.depth -= 1
                return
            if ch == ",":
                raise self.error("unexpected ',' in array (empty element)")
            self.value()
            # After an element: blanks, then ',' or newline (next element) or ']'.
            self.skip_blanks()
            ch = self.peek()
            if self.at_comment():
                self.skip_comment()
            elif ch in (",", "\n", "\r"):
                self.advance()
            elif ch not in ("]", ""):
                raise self.error(f"expected ',' or ']' after an array element but got {_show(ch)}")

    def map(self, start: Pos) -> None:
        self.enter(start)
        self.emit(Tok.MAP_START, "", start)
        while True:
            self.skip_space_and_comments()
            ch = self.peek()
            if ch == "":
                raise self.error("unbalanced braces: '{' is never closed", start)
            if ch == "}":
                end = self.pos()
                self.advance()
                self.emit(Tok.MAP_END, "", end)
                self.depth -= 1
                return
            self.entry(in_map=True)
            self.skip_blanks()
            ch = self.peek()
            if self.at_comment():
                self.skip_comment()
            elif ch in (",", ";", "\n", "\r"):
                self.advance()
            elif ch == "":
                raise self.error("unbalanced braces: '{' is never closed", start)
            elif ch != "}":
                raise self.error(f"expected ',' or '}}' after a map value but got {_show(ch)}")

    def escape(self) -> bytes:
        """Decode one escape after a backslash (already consumed) into the bytes it stands for."""
        at = self.pos()
        c = self.peek()
        simple = {"t": b"\t", "n": b"\n", "r": b"\r", '"': b'"', "\\": b"\\"}
        if c and c in simple:
            self.advance()
            return simple[c]
        if c == "x":
            self.advance()
            hexdigits = self.text[self.i : self.i + 2]
            if len(hexdigits) < 2 or not all(h in _HEX for h in hexdigits):
                raise self.error(
                    f"expected two hexadecimal digits after '\\x' but got {hexdigits!r}", at
                )
            self.i += 2
            return bytes([int(hexdigits, 16)])
        bad = "\\" + c
        raise self.error(
            f'invalid escape {bad!r}: only \\xHH, \\t, \\n, \\r, \\" and \\\\ are allowed',
            at,
        )

    def double_quoted(self, start: Pos) -> str:
        parts: list[bytes] = []
        p0 = self.i
        while True:
            c = self.peek()
            if c == "":
                raise self.error("unterminated double-quoted string", start)
            if c == '"':
                parts.append(_utf8(self.text[p0 : self.i]))
                self.advance()
                return _text(parts)
            if c == "\\":
                parts.append(_utf8(self.text[p0 : self.i]))
                self.advance()
                parts.append(self.escape())
                p0 = self.i
                continue
            self.advance()

    def block_string(self, start: Pos) -> None:
        """``(`` ... newline ``)`` alone on a line; the text excludes that final newline."""
        p0 = self.i
        j = p0
        while True:
            k = self.text.find("\n)", j)
            if k < 0:
                raise self.error("unterminated block string: no ')' alone on a line", start)
            after = k + 2
            if after >= self.n or self.text[after] == "\n":
                break
            j = k + 1
        while self.i < k + 2:
            self.advance()
        self.emit(Tok.STRING, self.text[p0:k], start)

    def bare(self, start: Pos, p0: int) -> None:
        """A bare word from index ``p0`` (possibly before the cursor, for number fallbacks)."""
        parts: list[bytes] = []
        escaped = False
        seg = p0
        while True:
            c = self.peek()
            if c == "" or c in _BARE_END:
                break
            if c == "'":
                parts.append(_utf8(self.text[seg : self.i]))
                self.advance()
                self.emit(Tok.STRING, _text(parts), start)
                return
            if c == "\\":
                parts.append(_utf8(self.text[seg : self.i]))
                self.advance()
                parts.append(self.escape())
                escaped = True
                seg = self.i
                continue
            self.advance()
        parts.append(_utf8(self.text[seg : self.i]))
        word = _text(parts)
        if escaped:
            self.emit(Tok.STRING, word, start)
        elif word.lower() in _BOOLS:
            self.emit(Tok.BOOL, word, start)
        elif word.startswith("$"):
            self.emit(Tok.VARIABLE, word[1:], start)
        else:
            self.emit(Tok.STRING, word, start)

    def digits(self) -> None:
        while self.peek().isdigit() and self.peek().isascii():
            self.advance()

    def size_suffix(self) -> bool:
        """Consume a size suffix letter and any b/i letters; True if the number ends there."""
        self.advance()
        while self.peek() in ("b", "B", "i", "I") and self.peek():
            self.advance()
        c = self.peek()
        # nats-server 2.15 reads "1k2" or "1m30s" as strings; only a terminator ends a size.
        return c == "" or c in _NUMBER_END

    def number(self, start: Pos) -> None:
        p0 = self.i
        self.digits()
        c = self.peek()
        if c == "-":
            if self.i - p0 != 4:
                raise self.error("dates must be ISO 8601 in full Zulu form (2006-01-02T15:04:05Z)")
            self.advance()
            self.date(start, p0)
            return
        if c == ".":
            self.advance()
            self.fraction(start, p0)
            return
        if c and c in _SIZE_LETTERS:
            if self.size_suffix():
                self.emit(Tok.INTEGER, self.text[p0 : self.i], start)
            else:
                self.bare(start, p0)
            return
        if c == "" or c in _NUMBER_END:
            self.emit(Tok.INTEGER, self.text[p0 : self.i], start)
            return
        self.bare(start, p0)

    def negative_number(self, start: Pos) -> None:
        p0 = self.i - 1
        if not (self.peek().isdigit() and self.peek().isascii()):
            raise self.error(f"expected a digit after '-' but got {_show(self.peek())}")
        self.digits()
        c = self.peek()
        if c == ".":
            self.advance()
            self.fraction(start, p0)
        elif c and c in _SIZE_LETTERS:
            if self.size_suffix():
                self.emit(Tok.INTEGER, self.text[p0 : self.i], start)
            else:
                self.bare(start, p0)  # "-1m30s" is a (negative) duration string
        else:
            self.emit(Tok.INTEGER, self.text[p0 : self.i], start)

    def fraction(self, start: Pos, p0: int) -> None:
        if not (self.peek().isdigit() and self.peek().isascii()):
            raise self.error(f"floats need a digit after the '.' but got {_show(self.peek())}")
        self.digits()
        if self.peek() == ".":
            # Looks like an IP address (1.2.3.4, optionally :port): a string.
            while self.peek() and (self.peek().isdigit() or self.peek() in ".:-"):
                self.advance()
            self.emit(Tok.STRING, self.text[p0 : self.i], start)
            return
        self.emit(Tok.FLOAT, self.text[p0 : self.i], start)

    def date(self, start: Pos, p0: int) -> None:
        for want in "00-00T00:00:00Z":
            c = self.peek()
            if want == "0":
                if not (c.isdigit() and c.isascii()):
                    raise self.error(f"expected a digit in ISO 8601 date but got {_show(c)}")
            elif c != want:
                raise self.error(f"expected {want!r} in ISO 8601 date but got {_show(c)}")
            self.advance()
        self.emit(Tok.DATETIME, self.text[p0 : self.i], start)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _text(parts: list[bytes]) -> str:
    """Join string pieces as Go would (bytes), reading the result as UTF-8.

    ``\\xHH`` escapes are bytes, so ``"\\xc3\\xa9"`` is ``é``; invalid UTF-8 becomes U+FFFD.
    """
    return b"".join(parts).decode("utf-8", "replace")
