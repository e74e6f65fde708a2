"""The configuration language (``scserver.conf``): grammar, variables, includes, errors, fuzz."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scserver.conf import ConfDict, ConfigError, ConfList, Pos, parse_file, parse_string, to_plain

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"
FILES = Path(__file__).resolve().parent / "conf_files"


def parse(text: str, **env: str) -> ConfDict:
    """Parse with a controlled environment so host variables never leak into results."""
    return parse_string(text, "t.conf", env=env)


def error(text: str, **env: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, **env)
    return info.value


# -- the seed ----------------------------------------------------------------------------------


def test_seed_east_includes_sys_and_keeps_structure() -> None:
    d = parse_file(SEED / "east.conf")
    assert to_plain(d) == {
        "port": 4222,
        "http_port": 8222,
        "server_name": "n1",
        "accounts": {"$SYS": {"users": [{"user": "sys", "password": "sys"}]}},
        "gateway": {
            "name": "east",
            "port": 7222,
            "gateways": [
                {"name": "east", "urls": ["nats://0.0.0.0:7222"]},
                {"name": "west", "urls": ["nats://0.0.0.0:7223"]},
            ],
        },
    }
    # Positions: merged keys point at the file that wrote them.
    assert d.positions["server_name"] == Pos(str(SEED / "east.conf"), 3, 1)
    assert d.positions["accounts"] == Pos(str(SEED / "sys.conf"), 1, 1)
    gateways = d["gateway"]["gateways"]
    assert isinstance(gateways, ConfList)
    assert [p.line for p in gateways.positions] == [9, 10]


def test_seed_west_differs_only_where_it_should() -> None:
    east, west = parse_file(SEED / "east.conf"), parse_file(SEED / "west.conf")
    assert (west["port"], west["http_port"], west["server_name"]) == (4223, 8223, "n2")
    assert west["gateway"]["name"] == "west" and west["gateway"]["port"] == 7223
    assert west["gateway"]["gateways"] == east["gateway"]["gateways"]
    assert west["accounts"] == east["accounts"]


def test_dollar_sys_is_a_key_not_a_variable() -> None:
    d = parse("accounts: { $SYS: { users: [] } }")
    assert list(d["accounts"]) == ["$SYS"]


# -- assignments, comments, blocks -----------------------------------------------------------


def test_every_assignment_style() -> None:
    d = parse(
        """
        a = 1
        b: 2
        c 3
        d {x: 1}
        e = {x: 2}
        f: {x: 3}
        "quoted key": 4
        'single key' = 5
        g
          6
        h = 7; i = 8, j = 9
        """
    )
    assert to_plain(d) == {
        "a": 1,
        "b": 2,
        "c": 3,
        "d": {"x": 1},
        "e": {"x": 2},
        "f": {"x": 3},
        "quoted key": 4,
        "single key": 5,
        "g": 6,
        "h": 7,
        "i": 8,
        "j": 9,
    }


def test_all_comment_styles() -> None:
    d = parse(
        """
        # hash comment
        // slash comment
        a: 1 # trailing hash
        b: 2 // trailing slashes
        m {
          # inside a map
          c: 3 // after a map value
        }
        arr: [
          1 # after an element
          // own line in an array
          2
        ]
        url: nats://host:4222  # a bare value with slashes stays whole
        """
    )
    assert to_plain(d) == {"a": 1, "b": 2, "m": {"c": 3}, "arr": [1, 2], "url": "nats://host:4222"}


def test_arrays_with_mixed_separators() -> None:
    d = parse("a: [1, 2\n 3\n\n 4,\n]\nb: []\nc: [[1, 2], {x: y}, 'z']")
    assert d["a"] == [1, 2, 3, 4]
    assert d["b"] == []
    assert to_plain(d["c"]) == [[1, 2], {"x": "y"}, "z"]


def test_top_level_braces_and_json() -> None:
    assert parse('{"a": 1, "b": [true, "x"], "c": {"d": null_value}}') == {
        "a": 1,
        "b": [True, "x"],
        "c": {"d": "null_value"},
    }
    assert parse("{\n a: 1\n}\n") == {"a": 1}


def test_later_keys_override_earlier() -> None:
    d = parse("a: 1\na: 2")
    assert d["a"] == 2
    assert d.positions["a"].line == 2


# -- scalars ------------------------------------------------------------------------------------


def test_strings() -> None:
    d = parse(
        r"""
        dq: "tab\tnl\nquote\"back\\hex\x41"
        utf: "caf\xc3\xa9"
        sq: 'raw \t $x'
        bare: hello-world
        digitish: 3secret
        dollar_in_quotes: "$NOT_A_VAR"
        ip: 127.0.0.1
        hostport: 10.0.0.1:4222
        block (
line one
  line two
)
        after: 1
        """
    )
    assert d["dq"] == 'tab\tnl\nquote"back\\hexA'
    assert d["utf"] == "café"
    assert d["sq"] == r"raw \t $x"
    assert d["bare"] == "hello-world"
    assert d["digitish"] == "3secret"
    assert d["dollar_in_quotes"] == "$NOT_A_VAR"
    assert d["ip"] == "127.0.0.1"
    assert d["hostport"] == "10.0.0.1:4222"
    assert d["block"] == "\nline one\n  line two"
    assert d["after"] == 1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("On", True),
        ("false", False),
        ("no", False),
        ("off", False),
        ("OFF", False),
        ('"true"', "true"),
    ],
)
def test_booleans(text: str, value: object) -> None:
    assert parse(f"v: {text}")["v"] == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1k", 1000),
        ("1K", 1000),
        ("1kb", 1024),
        ("1KB", 1024),
        ("1Ki", 1024),
        ("1KiB", 1024),
        ("2m", 2_000_000),
        ("2MB", 2 * 1024**2),
        ("2mib", 2 * 1024**2),
        ("3g", 3 * 1000**3),
        ("3GB", 3 * 1024**3),
        ("1T", 1000**4),
        ("1tb", 1024**4),
        ("-1k", -1000),
        ("2s", "2s"),  # durations stay strings for the options layer
        ("1m30s", "1m30s"),
        ("1k2", "1k2"),
        ("-1m30s", "-1m30s"),
        ("500ms", "500ms"),
    ],
)
def test_numbers_and_size_suffixes(text: str, value: object) -> None:
    got = parse(f"v: {text}\n")["v"]
    assert got == value and type(got) is type(value)


def test_datetime() -> None:
    assert parse("d: 2021-03-04T05:06:07Z")["d"] == dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


# -- variables ----------------------------------------------------------------------------------


def test_variables_are_block_scoped() -> None:
    d = parse(
        """
        top = 1
        outer {
          inner = 2
          a: $top
          b: $inner
          nested { c: $inner, d: [$top, $inner] }
        }
        """
    )
    assert to_plain(d["outer"]) == {
        "inner": 2,
        "a": 1,
        "b": 2,
        "nested": {"c": 2, "d": [1, 2]},
    }
    assert "top" in d.used and "inner" in d["outer"].used
    # A key of a sibling block is out of scope.
    e = error("a { x = 1 }\nb { y: $x }")
    assert (e.line, e.column) == (2, 8)
    assert "$x" in e.message


def test_variables_must_be_defined_before_use() -> None:
    e = error("a: $later\nlater: 1")
    assert (e.file, e.line) == ("t.conf", 1)


def test_environment_variables_are_parsed_as_values() -> None:
    d = parse(
        "p: $PORT\nn: $NAME\nl: $LIST\ns: $SIZE\nq: $QUOTED",
        PORT="4222",
        NAME="host-a",
        LIST="[1, 2]",
        SIZE="1KB",
        QUOTED='"a b"',
    )
    assert to_plain(d) == {"p": 4222, "n": "host-a", "l": [1, 2], "s": 1024, "q": "a b"}
    # Like nats-server, the value is parsed as a config value: two bare words are an error.
    e = error("\nn: $NAME", NAME="x y")
    assert (e.line, e.column) == (2, 4) and "NAME" in e.message


def test_environment_value_errors_and_cycles_are_located() -> None:
    e = error("\np: $BAD", BAD="[1,")
    assert (e.line, e.column) == (2, 4)
    assert "BAD" in e.message
    e = error("p: $A", A="$B", B="$A")
    assert "cycle" in str(e)


def test_undefined_variable_names_the_variable_file_and_line() -> None:
    e = error("a: 1\n\nport: $NOPE_NOT_SET")
    assert str(e).startswith("t.conf:3:7: ")
    assert "$NOPE_NOT_SET" in e.message


def test_bcrypt_hash_is_not_a_variable() -> None:
    h = "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG"
    assert parse(f"password: {h}")["password"] == h


# -- includes -----------------------------------------------------------------------------------


def test_nested_includes_resolve_relative_to_the_including_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # prove the cwd plays no part
    main = FILES / "include" / "main.conf"
    d = parse_file(main)
    assert to_plain(d) == {
        "server_name": "inc",
        "port": 4555,
        "http_port": 8555,
        "cluster": {"name": "c1", "port": 6555, "routes": ["nats://127.0.0.1:6556"]},
    }
    assert d.positions["http_port"].file.endswith(os.path.join("sub", "level2.conf"))
    assert d["cluster"].positions["routes"].file.endswith("cluster_part.conf")


def test_include_cycle_is_an_error_naming_file_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_file(FILES / "include" / "cycle_a.conf")
    e = info.value
    assert "cycle" in e.message
    assert e.file is not None and e.file.endswith("cycle_b.conf") and e.line == 2
    assert "cycle_a.conf -> cycle_b.conf -> cycle_a.conf" in e.message


def test_missing_include_names_the_including_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_file(FILES / "include" / "missing.conf")
    e = info.value
    assert e.file is not None and e.file.endswith("missing.conf") and e.line == 3
    assert "does_not_exist.conf" in e.message


def test_error_inside_an_include_names_the_included_file() -> None:
    with pytest.raises(ConfigError) as info:
        parse_file(FILES / "include" / "bad_inner.conf")
    e = info.value
    assert e.file is not None and e.file.endswith("broken.conf")
    assert e.line == 2  # the '{' that is never closed
    assert "bad_inner.conf:2" in e.message  # and where it was included from


def test_include_refuses_directories(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(ConfigError, match="not a regular file"):
        parse_string("include d", "t.conf", base_dir=str(tmp_path), env={})


def test_missing_top_level_file() -> None:
    with pytest.raises(ConfigError) as info:
        parse_file(FILES / "nope.conf")
    assert info.value.file is not None and info.value.file.endswith("nope.conf")


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ("a: 1\ncluster {\n  port: 1\n", 2, 9, "unbalanced braces"),
        ("a: [1, 2", 1, 4, "'[' is never closed"),
        ("a: [1,,2]", 1, 7, "unexpected ','"),
        ("a: 1\n}", 2, 1, "unbalanced braces"),
        ('a: "abc', 1, 4, "unterminated"),
        ("a: 'abc", 1, 4, "unterminated"),
        ('a: "x\\qy"', 1, 7, "invalid escape"),
        ('a: "\\xZZ"', 1, 6, "hexadecimal"),
        ("a:\n1", 1, 1, "no value"),
        ("a", 1, 1, "no value"),
        ("a: 1 2", 1, 6, "after a value"),
        ("a: 1.x", 1, 6, "floats need a digit"),
        ("a: .5", 1, 4, "floats must start"),
        ("a: 1kbb", 1, 4, "size suffix"),
        ("a: 99999999999999999999", 1, 4, "out of range"),
        ("a: 12-01-01", 1, 6, "ISO 8601"),
        ("a: (\nno end", 1, 4, "block string"),
        ("m { : 1 }", 1, 5, "key separator"),
        ("include", 1, 1, "no value"),
        ("include [x]", 1, 9, "file path"),
        ("m { a: 1 x: 2 }", 1, 10, "after a map value"),
    ],
)
def test_errors_name_file_line_and_column(text: str, line: int, col: int, fragment: str) -> None:
    e = error(text)
    assert (e.file, e.line, e.column) == ("t.conf", line, col), str(e)
    assert fragment in e.message
    assert str(e) == f"t.conf:{line}:{col}: {e.message}"
    assert isinstance(e, ValueError)


def test_nesting_depth_is_bounded() -> None:
    e = error("a: " + "[" * 1000 + "]" * 1000)
    assert "nest" in e.message


# -- properties ---------------------------------------------------------------------------------

_ALPHABET = st.sampled_from(
    list("{}[]()=:;,#/\\\"'$ \t\n\r-.0123456789abcdefkmgKMGBiIxyzTZ_") + ["include ", "//", "\n)"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=80).map("".join))
def test_fuzz_config_like_garbage_only_raises_config_error(text: str) -> None:
    try:
        result = parse_string(text, "fuzz.conf", base_dir="/nonexistent-dir", env={})
    except ConfigError as e:
        assert e.file is not None and e.line is not None and e.line >= 1
    else:
        assert isinstance(result, ConfDict)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text_only_raises_config_error(text: str) -> None:
    try:
        parse_string(text, "fuzz.conf", base_dir="/nonexistent-dir", env={})
    except ConfigError as e:
        assert e.file == "fuzz.conf" or (e.file or "").startswith("<environment")


_KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda k: k not in ("true", "false", "yes", "no", "on", "off", "include")
)
_SCALARS = st.one_of(
    st.integers(min_value=-(2**62), max_value=2**62),
    st.booleans(),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=12,
)


def _render(value: object, indent: str = "") -> str:
    """Write a value in config syntax (double-quoted strings with escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        out = []
        for ch in value:
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif ch == "\n":
                out.append("\\n")
            elif ch == "\t":
                out.append("\\t")
            elif ch == "\r":
                out.append("\\r")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_render(v, indent) for v in value) + "]"
    assert isinstance(value, dict)
    inner = indent + "  "
    body = "".join(f"{inner}{k}: {_render(v, inner)}\n" for k, v in value.items())
    return "{\n" + body + indent + "}"


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_round_trip_of_generated_documents(doc: dict[str, object]) -> None:
    text = "".join(f"{k} = {_render(v)}\n" for k, v in doc.items())
    assert to_plain(parse_string(text, "gen.conf", env={})) == doc
