"""The `$SYS` account: request services (`nats server list/ping/info`) and events."""

from __future__ import annotations

from typing import Any


class SystemServices:
    """Placeholder until the system services land: keeps the hooks the server calls."""

    def __init__(self, server: Any, account: Any) -> None:
        self.server = server
        self.account = account

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def client_connected(self, client: Any) -> None:
        pass

    def client_disconnected(self, client: Any) -> None:
        pass
