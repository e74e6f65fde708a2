"""Value parsing shared by the option builder and the flags: Go durations, URLs,
``host:port`` pairs, type names for messages, and the lists of options nats-server knows that
scserver accepts with a warning."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

MAX_PAYLOAD_WARN = 8 * 1024 * 1024
_INT32_MAX = 2**31 - 1
COMPRESSION_MODES = frozenset(
    {"off", "accept", "s2_fast", "s2_better", "s2_best", "s2_auto", "s2_uncompressed"}
)


# --------------------------------------------------------------------------------------------
# durations

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # noqa: RUF001 - Go accepts the micro sign
    "μs": 1e-6,  # noqa: RUF001 - and the Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")  # noqa: RUF001


def parse_duration(value: str | int | float) -> float:
    """Seconds from a Go duration string (``"2s"``, ``"1m30s"``, ``"500ms"``) or a number of
    seconds (the legacy integer form nats-server still accepts). Raises ValueError otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration, got {type(value).__name__}")
    text = value.strip()
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f"invalid duration {value!r}")
    total = 0.0
    at = 0
    while at < len(text):
        m = _DURATION_PART.match(text, at)
        if m is None:
            rest = text[at:]
            if re.match(r"(\d+\.?\d*|\.\d+)$", rest):
                raise ValueError(f"missing unit in duration {value!r}")
            unit = re.match(r"[\d.]*(\D*)", rest)
            if unit and unit.group(1):
                raise ValueError(f"unknown unit {unit.group(1)!r} in duration {value!r}")
            raise ValueError(f"invalid duration {value!r}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        at = m.end()
    return sign * total


# --------------------------------------------------------------------------------------------
# building

# Top-level keys nats-server understands that this server does not implement: accepted with a
# warning so a config shared with nats-server still loads.
_UNSUPPORTED_TOP = frozenset(
    """
    trace_verbose trace_headers logtime_utc disable_sublist_cache no_sublist_cache
    http_base_path leaf leafnodes store_dir storedir jetstream
    logfile_size_limit log_size_limit logfile_max_num log_max_num syslog remote_syslog
    ports_file_dir prof_port prof_block_rate proxy_protocol max_traced_msg_len max_sub_tokens
    max_subscription_tokens write_timeout no_header_support
    connect_error_reports reconnect_error_reports websocket ws mqtt server_tags server_metadata
    feature_flags default_js_domain no_fast_producer_stall max_closed_clients proxies
    """.split()  # noqa: SIM905 - a word list reads better than 60 quoted strings
)
_UNSUPPORTED_CLUSTER = frozenset({"connect_backoff", "write_deadline", "write_timeout"})
_UNSUPPORTED_GATEWAY = frozenset({"connect_backoff", "write_deadline", "write_timeout"})
_UNSUPPORTED_ACCOUNT = frozenset(
    {
        "nkey",
        "jetstream",
        "limits",
        "msg_trace",
        "trace_dest",
    }
)


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map"
    if isinstance(v, list):
        return "array"
    return type(v).__name__


def _url_problem(url: Any) -> str | None:
    """Why ``url`` is not a usable route/gateway URL, or None if it is."""
    if not isinstance(url, str):
        return f"expected a URL string, got {_type_name(url)}"
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        return f"invalid URL {url!r}: {e}"
    if not parts.scheme or not parts.hostname:
        return f"invalid URL {url!r}: expected scheme://host:port"
    if port is None:
        return f"invalid URL {url!r}: no port"
    return None


def _cluster_url(url: str) -> tuple[str, int, str | None, str | None] | None:
    """(host, port, user, password) of a ``-cluster`` URL; port -1 (random) is allowed."""
    m = re.fullmatch(
        r"([a-z][a-z0-9+.-]*)://(?:([^:@/]*)(?::([^@/]*))?@)?(\[[^\]]*\]|[^:/@]+):(-1|\d+)/?",
        url,
        re.I,
    )
    if m is None:
        return None
    _, user, password, host, port = m.groups()
    host = host.strip("[]")
    unq = urllib.parse.unquote
    return host, int(port), (unq(user) if user else None), (unq(password) if password else None)


def _split_host_port(v: str) -> tuple[str, int] | None:
    """Go's net.SplitHostPort for ``host:port`` / ``[v6]:port`` strings (None if malformed);
    port -1 asks for a random port, as in nats-server."""
    m = re.fullmatch(r"\[([^\]]*)\]:(-1|\d+)|([^:\[\]]*):(-1|\d+)", v)
    if m is None:
        return None
    host = m.group(1) if m.group(1) is not None else m.group(3)
    port = m.group(2) or m.group(4)
    return host, int(port)


def _plain(value: Any) -> Any:
    """A deep copy as plain dicts/lists, so later layers never depend on conf types."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
