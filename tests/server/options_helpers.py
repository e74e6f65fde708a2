"""Loading config text the way scserver does, for the options tests (one copy of the helpers)."""

from __future__ import annotations

import pytest

from scserver.conf import ConfigError, parse_string
from scserver.options import Options, from_dict


def opts(text: str) -> Options:
    """The options a config file with this text gives (no environment variables)."""
    return from_dict(parse_string(text, "t.conf", env={}), source="t.conf")


def errors(text: str) -> list[str]:
    """Every reported fault, one line each (the loader collects them all)."""
    with pytest.raises(ConfigError) as info:
        opts(text)
    return str(info.value).splitlines()
