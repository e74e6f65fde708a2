"""What the harnesses share: chunking, a fake transport, an in-process server, crash checks.

The connection harnesses drive real scserver objects (Server, ClientConnection,
RouteConnection, GatewayConnection) through ``data_received`` exactly as asyncio would, with a
transport that only records what is written. The event loop they run on refuses every outbound
connection and listener, so gossip that makes the server dial (implicit routes and gateways)
never leaves the process, whatever address the fuzzer invents.
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from collections.abc import Iterator
from typing import Any


class Finding(AssertionError):
    """An invariant the harness checks was broken (libFuzzer reports it as a crash)."""


def chunks(data: bytes, seed: int) -> Iterator[bytes]:
    """Split ``data`` into reads the way a socket might: ``seed`` 0 is one read, others vary
    between 1-byte reads and reads of up to a few hundred bytes."""
    if seed == 0 or not data:
        yield data
        return
    rng = random.Random(seed)
    top = 1 + (seed % 8) ** 3  # 1, 2, 9, 28, 65, 126, 217, 344
    pos = 0
    while pos < len(data):
        step = rng.randint(1, top)
        yield data[pos : pos + step]
        pos += step


class FakeTransport(asyncio.Transport):
    """Records writes and models the write buffer: bytes stay "buffered" until ``drain()``,
    and crossing the high-water mark calls the protocol's pause_writing() as asyncio does, so
    flow control (pausing, stalling producers, slow consumers) is reachable."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 40000), protocol: Any = None) -> None:
        super().__init__()
        self.peer = peer
        self.protocol = protocol
        self.written = 0
        self.buffered = 0
        self.high = 65536
        self.paused = False
        self.tail = b""
        self.everything: list[bytes] | None = None  # set to [] to keep every byte written
        self.closed = False
        self.aborted = False
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise Finding("write after close")
        self.written += len(data)
        self.buffered += len(data)
        self.tail = (self.tail + bytes(data))[-4096:]
        if self.everything is not None:
            self.everything.append(bytes(data))
        if self.protocol is not None and not self.paused and self.buffered > self.high:
            self.paused = True
            self.protocol.pause_writing()

    def writelines(self, list_of_data: Any) -> None:
        for d in list_of_data:
            self.write(d)

    def drain(self) -> None:
        """The peer read everything: empty the buffer, resume the protocol if paused."""
        self.buffered = 0
        if self.paused and not self.closed:
            self.paused = False
            if self.protocol is not None:
                self.protocol.resume_writing()

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high = high if high is not None else 65536

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading


class OfflineLoop(asyncio.SelectorEventLoop):
    """An event loop that never touches the network: dialing and listening fail at once."""

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise ConnectionRefusedError("fuzz harness: no network")

    async def create_server(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise OSError("fuzz harness: no listeners")

    async def getaddrinfo(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise OSError("fuzz harness: no DNS")


class _TracebackTrap(logging.Handler):
    """A log record carrying an exception means the server caught a crash and logged it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.caught: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.caught.append(record)


_trap: _TracebackTrap | None = None


def quiet_logs() -> _TracebackTrap:
    """Silence the server's logging (it would dominate the run) but keep tracebacks."""
    global _trap
    if _trap is None:
        _trap = _TracebackTrap()
        for name in ("scserver", "asyncio"):
            lg = logging.getLogger(name)
            for h in list(lg.handlers):
                lg.removeHandler(h)
            lg.addHandler(_trap)
            lg.setLevel(logging.ERROR)
            lg.propagate = False
    return _trap


def raise_logged_tracebacks() -> None:
    """Turn a traceback the server logged during this input into a finding."""
    trap = quiet_logs()
    if trap.caught:
        rec = trap.caught[0]
        trap.caught.clear()
        exc = rec.exc_info[1] if rec.exc_info else None
        shown = "".join(traceback.format_exception(exc)) if exc is not None else ""
        raise Finding(f"server logged a traceback: {rec.getMessage()}\n{shown}") from exc


_loop: asyncio.AbstractEventLoop | None = None
_tasks: list[asyncio.Task[Any]] = []  # every task created on the loop since the last drain


def loop() -> asyncio.AbstractEventLoop:
    """The harness's offline loop, installed as the current loop (Server() picks it up)."""
    global _loop
    if _loop is None:
        _loop = OfflineLoop()
        asyncio.set_event_loop(_loop)

        def on_error(lp: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
            exc = ctx.get("exception")
            # Dials refused by OfflineLoop are expected; anything else is a crash in a callback.
            if exc is not None and _harness_refusal(exc):
                return
            logging.getLogger("asyncio").error(
                "loop error: %s", ctx.get("message"), exc_info=exc or True
            )

        _loop.set_exception_handler(on_error)

        def track(lp: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
            task = asyncio.Task(coro, loop=lp, **kw)
            _tasks.append(task)
            return task

        _loop.set_task_factory(track)
    return _loop


def run_ready(rounds: int = 3) -> None:
    """Run the callbacks the input scheduled (flushes, tasks) without waiting on timers."""
    lp = loop()
    for _ in range(rounds):
        lp.run_until_complete(asyncio.sleep(0))


def make_server(conf_text: str, *, links: bool = False) -> Any:
    """A real Server built from config text, without listeners; with ``links`` it also gets the
    route and gateway managers so Route/GatewayConnection objects can be driven."""
    from scserver import options
    from scserver.conf import parse_string

    opts = options.from_dict(parse_string(conf_text), source="<fuzz>")
    server = make_server_from_opts(opts)
    if links:
        from scserver.gateway import GatewayManager
        from scserver.route import RouteManager

        server.routes = RouteManager(server)
        server.gateway = GatewayManager(server)
    return server


def make_server_from_opts(opts: Any) -> Any:
    """A Server for already loaded options, on the offline loop, logging quietly."""
    from scserver.server import Server

    quiet_logs()
    loop()
    return Server(opts)


def connect(conn: Any, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> FakeTransport:
    """Open a connection object on a fake transport (INFO is queued, timers armed)."""
    transport = FakeTransport(peer, conn)
    conn.connection_made(transport)
    return transport


def finish(conn: Any) -> None:
    """Close the connection as a peer hang-up would, then let queued work run."""
    run_ready(1)  # flush what the last reads queued (may pause the writer or cut it off)
    if not conn.closed:
        conn.connection_lost(None)
    run_ready()
    drain_tasks()
    raise_logged_tracebacks()


class ServerPool:
    """One in-process server reused across inputs, rebuilt every ``every`` inputs so state an
    input leaves behind (discovered gateways, accounts) cannot pile up over a long run."""

    def __init__(self, conf_text: str, *, links: bool = False, every: int = 2000) -> None:
        self.conf_text = conf_text
        self.links = links
        self.every = every
        self.uses = 0
        self.server: Any = None

    def get(self) -> Any:
        if self.server is None or self.uses >= self.every:
            self.server = make_server(self.conf_text, links=self.links)
            self.uses = 0
        self.uses += 1
        return self.server


def drain_tasks() -> None:
    """Cancel the tasks an input started (dials, solicit loops) so none outlive it, and turn a
    task that died of an unexpected exception into a finding (asyncio would only log it, late,
    as "Task exception was never retrieved")."""
    lp = loop()
    pending = [t for t in _tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        lp.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    tasks = list(_tasks)
    _tasks.clear()
    for t in tasks:
        if t.cancelled():
            continue
        exc = t.exception()
        if exc is not None and not _harness_refusal(exc):
            shown = "".join(traceback.format_exception(exc))
            raise Finding(f"task {t.get_coro()!r} died:\n{shown}") from exc


def _harness_refusal(exc: BaseException) -> bool:
    """The OfflineLoop's refusal to dial or listen, which the server must handle."""
    return isinstance(exc, OSError) and "fuzz harness" in str(exc)
