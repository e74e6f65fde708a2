"""The server: listeners, accounts, the registry of connections, reload and lame duck."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import sys
import time
from typing import Any

from scserver import NATS_COMPAT_VERSION, exchanges, gcpolicy, imports, log
from scserver import reload as reload_mod
from scserver.accounts import GLOBAL_ACCOUNT, Account, Authenticator, User
from scserver.auth import HashPending, check_password
from scserver.client import ClientConnection
from scserver.connection import Connection
from scserver.log import logger
from scserver.net.addresses import local_ips as _local_ips
from scserver.permissions import compile_permissions
from scserver.protocol.parser import CLIENT
from scserver.tls import TLSContexts, TLSListener, accept_tls

_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def new_server_id() -> str:
    """A 56-character upper-case id starting with N, shaped like a server nkey."""
    return "N" + "".join(secrets.choice(_BASE32) for _ in range(55))


class Server:
    """One scserver process. Owns every connection and applies options, including on reload."""

    def __init__(self, opts: Any) -> None:
        self.opts = opts
        self.server_id = new_server_id()
        self.loop: asyncio.AbstractEventLoop = asyncio.get_event_loop()
        self.start_time = time.time()
        self.config_time = self.start_time
        self._cid = 0
        self.clients: dict[int, ClientConnection] = {}
        self.accounts: dict[str, Account] = {}
        self._accounts_b: dict[bytes, Account] = {}
        self.global_account = self._ensure_account(GLOBAL_ACCOUNT)
        self.system_account: Account | None = None
        self.auth = Authenticator()
        self._dirty: list[Connection] = []
        self._flush_pending = False
        # Flow control is per consumer (Connection.queue/flush): the server only knows which
        # connection's bytes are being processed, so a gated consumer can name its producer.
        self.reader: Connection | None = None
        self.lame_duck = False
        self.shutting_down = False
        self.slow_consumers = 0
        #: Slow consumers cut per kind, as nats-server's /varz ``slow_consumer_stats``.
        self.slow_consumer_stats = {"clients": 0, "routes": 0, "gateways": 0, "leafs": 0}
        self.stalls = 0  # times a client producer waited for a gated consumer
        self.auth_failures = 0
        self.total_connections = 0
        self.closed_stats = [0, 0, 0, 0]  # in_msgs, in_bytes, out_msgs, out_bytes of closed conns
        self.listeners: list[asyncio.base_events.Server] = []
        self.client_listener: asyncio.base_events.Server | None = None
        self.monitor: Any = None
        self.routes: Any = None  # scserver.route.RouteManager once clustering is configured
        self.gateway: Any = None  # scserver.gateway.GatewayManager once gateways are configured
        self.system: Any = None  # scserver.system.SystemServices
        self.done = asyncio.Event()
        self.reloads = 0
        self._info_cache: dict[str, Any] | None = None
        self._watch_task: asyncio.Task | None = None
        self.closed_conns: list[dict[str, Any]] = []
        #: The SSL contexts of the loaded config; a reload swaps the whole object.
        self.tls = TLSContexts.build(opts)
        self.apply_accounts(opts)

    # --- identity ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.opts.server_name or self.server_id

    def next_cid(self) -> int:
        self._cid += 1
        return self._cid

    @property
    def cluster_name(self) -> str:
        if self.opts.cluster is not None and self.opts.cluster.name:
            return self.opts.cluster.name
        if self.opts.gateway is not None and self.opts.gateway.name:
            return self.opts.gateway.name
        return self.routes.cluster_name if self.routes is not None else ""

    def client_urls(self) -> list[str]:
        """This server's own client address(es) as host:port, for connect_urls."""
        opts = self.opts
        if opts.client_advertise:
            return [opts.client_advertise]
        host = opts.host
        port = self.client_port
        if host in ("0.0.0.0", "::", ""):
            return [f"{ip}:{port}" for ip in _local_ips()]
        return [f"{host}:{port}"]

    @property
    def client_port(self) -> int:
        if self.client_listener is not None and self.client_listener.sockets:
            return self.client_listener.sockets[0].getsockname()[1]
        return self.opts.port

    def client_info_base(self) -> dict[str, Any]:
        """The INFO every client gets; rebuilt when anything in it changes."""
        if self._info_cache is None:
            opts = self.opts
            host, port = opts.host, self.client_port
            if opts.client_advertise:
                host, _, p = opts.client_advertise.rpartition(":")
                port = int(p) if p.isdigit() else port
                host = host or opts.client_advertise
            info: dict[str, Any] = {
                "server_id": self.server_id,
                "server_name": self.name,
                "version": NATS_COMPAT_VERSION,
                "proto": 1,
                "go": f"python{sys.version_info.major}.{sys.version_info.minor}",
                "host": host,
                "port": port,
                "headers": True,
                "max_payload": opts.max_payload,
            }
            if self.auth.advertise_required:
                info["auth_required"] = True
            if opts.tls is not None:
                # nats-server: tls_required unless plain clients are allowed (tls_available).
                info["tls_required" if not opts.allow_non_tls else "tls_available"] = True
                if opts.tls.verify:
                    info["tls_verify"] = True
            cluster = self.cluster_name
            if cluster:
                info["cluster"] = cluster
            if self.routes is not None and not self.routes.no_advertise:
                urls = self.routes.all_client_urls()
                if urls:
                    info["connect_urls"] = urls
            if self.lame_duck:
                info["ldm"] = True
            self._info_cache = info
        return dict(self._info_cache)

    def info_changed(self, notify: bool = True) -> None:
        """Forget the cached INFO and tell protocol>=1 clients, as nats-server does."""
        self._info_cache = None
        if notify:
            for c in list(self.clients.values()):
                if c.connected:
                    c.send_async_info()

    # --- accounts and auth -------------------------------------------------------------------

    def _ensure_account(self, name: str) -> Account:
        acc = self.accounts.get(name)
        if acc is None:
            acc = Account(name)
            self.accounts[name] = acc
        return acc

    def lookup_account(self, name: str) -> Account | None:
        return self.accounts.get(name)

    @property
    def wire_accounts(self) -> dict[bytes, Account]:
        """The wire-name cache behind ``account_by_name_b``; links alias it for the RMSG hot
        path, which holds because accounts are only ever added (reload keeps removed ones)."""
        return self._accounts_b

    def account_by_name_b(self, name: bytes) -> Account | None:
        """Account named on the wire (RMSG, RS+), without decoding on every message."""
        acc = self._accounts_b.get(name)
        if acc is None:
            # Accounts are only ever added (reload keeps removed ones), so the cache stays valid.
            acc = self.accounts.get(name.decode(errors="replace"))
            if acc is not None:
                self._accounts_b[name] = acc
        return acc

    def register_account(self, name: str) -> Account:
        """Create an account on first sight (e.g. named by a peer) and tell gateways."""
        existing = self.accounts.get(name)
        if existing is not None:
            return existing
        acc = self._ensure_account(name)
        if self.gateway is not None:
            self.gateway.account_registered(acc)
        return acc

    def apply_accounts(self, opts: Any) -> None:
        """Build accounts and the authenticator from options (at start and on reload)."""
        for name in opts.accounts:
            self._ensure_account(name)
        sys_name = None if getattr(opts, "no_system_account", False) else opts.system_account
        if sys_name:
            sys_acc = self._ensure_account(sys_name)
            sys_acc.is_system = True
            self.system_account = sys_acc
        users: dict[str, User] = {}
        nkey_users: dict[str, User] = {}
        for u in opts.users:
            nkey = getattr(u, "nkey", None)
            user = User(u.username, u.password, u.account or GLOBAL_ACCOUNT, u.permissions, nkey)
            if nkey:
                nkey_users[nkey] = user
            else:
                users[u.username] = user
        previous_implicit = self.auth.implicit_user
        self.auth = Authenticator(
            users=users, nkeys=nkey_users, token=opts.token, no_auth_user=opts.no_auth_user
        )
        only_system = set(opts.accounts) <= ({sys_name} if sys_name else set())
        if (
            (users or nkey_users)
            and only_system
            and not opts.no_auth_user
            and not opts.token
            and not getattr(opts, "auth_block_defined", False)
        ):
            self.auth.add_implicit_user(GLOBAL_ACCOUNT, previous_implicit)

    def compile_permissions(self, user: User | None) -> Any:
        return compile_permissions(user.permissions if user is not None else None)

    def client_connected(self, client: ClientConnection) -> None:
        self.total_connections += 1
        if self.system is not None:
            self.system.client_connected(client)

    # --- interest propagation hooks ------------------------------------------------------------

    def interest_added(self, account: Account, sub: Any) -> None:
        if account.links is not None and sub.conn.kind == CLIENT:
            imports.client_sub_added(account, sub)
        if self.routes is not None:
            self.routes.local_interest_added(account, sub)
        if self.gateway is not None:
            self.gateway.interest_added(account, sub)

    def interest_removed(self, account: Account, sub: Any) -> None:
        if account.links is not None and sub.conn.kind == CLIENT:
            imports.client_sub_removed(account, sub)
        if self.routes is not None:
            self.routes.local_interest_removed(account, sub)
        if self.gateway is not None:
            self.gateway.interest_removed(account, sub)

    # --- flushing ----------------------------------------------------------------------------

    def schedule_flush(self, conn: Connection) -> None:
        self._dirty.append(conn)
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self._flush_all)

    def _flush_all(self) -> None:
        """Write what every connection queued during this loop turn, once per connection."""
        self._flush_pending = False
        dirty = self._dirty
        self._dirty = []
        for conn in dirty:
            if conn.flush_scheduled:
                conn.flush()

    def connection_closed(self, conn: Connection) -> None:
        stats = self.closed_stats
        stats[0] += conn.in_msgs
        stats[1] += conn.in_bytes
        stats[2] += conn.out_msgs
        stats[3] += conn.out_bytes
        hook = conn.spec.on_closed  # the kind's close hook (scserver.core.kinds)
        if hook is not None:
            hook(self, conn)
        self._lame_duck_idle()

    def _lame_duck_idle(self) -> None:
        """In lame duck mode: no client left to move and the gateway links peers had to us
        moved (or given time to): stop waiting (nats-server exits once no client is left)."""
        if self.lame_duck and not self.clients and self._ldm_event is not None:
            if self.gateway is None or self.gateway.links_moved():
                self._ldm_event.set()

    def client_closed(self, conn: Any) -> None:
        """A client is gone: keep its /connz?state=closed entry and tell $SYS."""
        info = self.monitor_conn_info(conn, closed=True)
        info["_account"] = conn.account.name
        info["_user"] = getattr(conn, "username", "")
        self.closed_conns.append(info)
        if len(self.closed_conns) > 10000:
            del self.closed_conns[:1000]
        if self.system is not None and getattr(conn, "connected", False):
            self.system.client_disconnected(conn)

    def monitor_conn_info(self, conn: Any, closed: bool = False) -> dict[str, Any]:
        from scserver.monitor import conn_info

        return conn_info(self, conn, closed)

    # --- start / stop --------------------------------------------------------------------------

    async def start(self) -> None:
        opts = self.opts
        self.loop = asyncio.get_running_loop()
        gcpolicy.install(self.loop)  # full GC collections must not freeze the loop
        logger.info("Starting nats-server")
        logger.info("  Version:  %s (scserver)", NATS_COMPAT_VERSION)
        logger.info("  Name:     %s", self.name)
        logger.info("  ID:       %s", self.server_id)
        if opts.config_file:
            logger.info("Using configuration file: %s", opts.config_file)
        for warning in getattr(opts, "warnings", []) or []:
            logger.warning("%s", warning)
        if opts.pid_file:
            with open(opts.pid_file, "w") as fh:
                fh.write(str(os.getpid()))
        from scserver.system import SystemServices

        if self.system_account is not None:
            self.system = SystemServices(self, self.system_account)
        if opts.http_port or opts.https_port:
            from scserver.monitor import Monitor

            self.monitor = Monitor(self)
            await self.monitor.start(
                opts.monitor_host, opts.https_port or opts.http_port, https=bool(opts.https_port)
            )
        if opts.cluster is not None and opts.cluster.port:
            from scserver.route import RouteManager

            self.routes = RouteManager(self)
            await self.routes.start()
        if opts.gateway is not None and opts.gateway.port:
            from scserver.gateway import GatewayManager

            self.gateway = GatewayManager(self)
            await self.gateway.start()
        if opts.tls is not None:
            # TLS listeners accept sockets themselves (scserver.tls.accept_tls).
            self.client_listener = await TLSListener.create(  # type: ignore[assignment]
                _bind_host(opts.host), max(opts.port, 0), self._accept_client
            )
        else:
            self.client_listener = await self.loop.create_server(
                lambda: ClientConnection(self),
                host=_bind_host(opts.host),
                port=max(opts.port, 0),  # -1: a random port, as nats-server
                reuse_address=True,
                backlog=1024,
            )
        self.listeners.append(self.client_listener)
        logger.info("Listening for client connections on %s:%d", opts.host, self.client_port)
        imports.apply(self, opts)
        if self.system is not None:
            self.system.start()
        logger.info("Server is ready")
        self._install_signals()
        if opts.config_file:
            self._watch_task = self.loop.create_task(self._watch_config())

    async def _accept_client(self, sock: socket.socket) -> None:
        """One socket from the TLS client listener: INFO, handshake, then ClientConnection."""
        try:
            peer = sock.getpeername()
        except OSError:  # gone before we got to it
            sock.close()
            return
        conn = ClientConnection(self)
        conn.host, conn.port = peer[0], peer[1]
        tls = self.tls  # the contexts of the config loaded now; a reload swaps the object
        await accept_tls(
            sock,
            conn,
            ctx=tls.client,
            cfg=tls.client_cfg,
            info=conn.initial_info,
            allow_non_tls=self.opts.allow_non_tls,
        )

    def _install_signals(self) -> None:
        handlers = {
            signal.SIGTERM: self._on_sigterm,
            signal.SIGINT: lambda: self.loop.create_task(self.shutdown()),
            signal.SIGHUP: lambda: self.reload("signal"),
            signal.SIGUSR2: lambda: self.loop.create_task(self.enter_lame_duck()),
            signal.SIGUSR1: self._reopen_log,
        }
        for sig, handler in handlers.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self.loop.add_signal_handler(sig, handler)

    def _on_sigterm(self) -> None:
        """Shut down, unless lame duck mode is already closing clients gradually.

        As nats-server: Kubernetes sends SIGTERM right after the preStop hook (which only
        signals lame duck), so a SIGTERM during lame duck must not cut it short; the pod's
        termination grace period still bounds it. SIGINT always shuts down at once.
        """
        if self.lame_duck:
            logger.info("Ignoring SIGTERM: lame duck mode is in progress")
            return
        self.loop.create_task(self.shutdown())

    def _reopen_log(self) -> None:
        opts = self.opts
        log.configure(opts.debug, opts.trace, opts.logtime, opts.log_file)
        logger.info("Reopened log file")

    async def shutdown(self) -> None:
        if self.shutting_down:
            return
        self.shutting_down = True
        logger.info("Initiating Shutdown...")
        if self._watch_task is not None:
            self._watch_task.cancel()
        for listener in self.listeners:
            listener.close()
        if self.system is not None:
            self.system.stop()
        for c in list(self.clients.values()):
            c.close("Server Shutdown")
        for manager in self.link_managers():
            manager.stop()
        if self.monitor is not None:
            await self.monitor.stop()
        await asyncio.sleep(0)
        if self.opts.pid_file:
            with contextlib.suppress(OSError):
                os.unlink(self.opts.pid_file)
        logger.info("Server Exiting..")
        self.done.set()

    _ldm_event: asyncio.Event | None = None

    async def enter_lame_duck(self) -> None:
        """Stop accepting, tell clients (INFO ldm), close them over the duration, then exit."""
        if self.lame_duck or self.shutting_down:
            return
        opts = self.opts
        self.lame_duck = True
        self._ldm_event = asyncio.Event()
        logger.info("Entering lame duck mode, stop accepting new clients")
        if self.system is not None:
            self.system.lame_duck()
        if self.client_listener is not None:
            self.client_listener.close()
        self.info_changed(notify=True)
        exchanges.track(self.clients.values())
        if self.routes is not None:
            self.routes.send_lame_duck()
        if self.gateway is not None:
            self.gateway.send_lame_duck(self._lame_duck_idle)
        self._lame_duck_idle()
        grace = opts.lame_duck_grace_period
        logger.info("Grace period of %s before closing clients", grace)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ldm_event.wait(), grace)
        clients = list(self.clients.values())
        if clients:
            duration = max(opts.lame_duck_duration - grace, 0.0)
            batch_delay = duration / len(clients) if clients else 0.0
            logger.info("Closing %d existing clients over %.1fs", len(clients), duration)
            for c in clients:
                # between two of its request/reply exchanges (scserver.exchanges)
                waited = await exchanges.close_between_exchanges(c, "Server Shutdown")
                if batch_delay > 0 and not self._ldm_event.is_set():
                    await asyncio.sleep(max(min(batch_delay, 1.0) - waited, 0.0))
        await self.shutdown()

    # --- reload ------------------------------------------------------------------------------

    def reload(self, why: str = "signal") -> bool:
        """Re-read the config file; apply what can change, keep running on a bad file."""
        from scserver import options as options_mod

        if not self.opts.config_file:
            logger.error("Failed to reload server configuration: no configuration file")
            return False
        try:
            new = options_mod.load(self.opts.config_file)
            new = options_mod.apply_flags(new, **getattr(self.opts, "flag_overrides", {}))
        except Exception as exc:  # noqa: BLE001 - any failure keeps the running config
            logger.error("Failed to reload server configuration: %s", exc)
            return False
        return reload_mod.apply(self, self.opts, new, why)

    def reauthorize_clients(self) -> None:
        """After a reload, ask the new authenticator about every client again.

        As nats-server's ``reloadAuthorization``: a client that logged in as a user (name or
        nkey) that is gone or now belongs to another account is closed (nats-server closes
        it too, with "Client Closed", and lets it reconnect into its new account); the others
        are checked with the credentials (and nonce) they connected with, and closed with an
        authorization violation if those no longer pass (a changed password, auth turned on
        for anonymous clients). Everyone else stays, with their new permissions applied in
        place and subscriptions those no longer allow removed. Anonymous clients mapped to
        ``$G`` (only other accounts have users) or to ``no_auth_user`` keep passing and so
        stay connected.

        A user whose bcrypt hash changed needs each of its clients' passwords hashed again
        (tens of milliseconds each, on purpose): those checks run in worker threads, one per
        distinct (password, hash) pair, and the verdicts are applied when they are in
        (:meth:`_rehash_off_loop`). Meanwhile such a client keeps its connection with the
        permissions of the user it names, as it would under nats-server while its reload
        goroutine works through the client list.
        """
        auth = self.auth
        pending: dict[tuple[str, str], list[ClientConnection]] = {}
        for c in list(self.clients.values()):
            if not c.connected or c.closed:
                continue
            hashing = self._reauthorize_client(c, auth)
            if hashing is not None:
                pending.setdefault((hashing.given, hashing.configured), []).append(c)
        if pending:
            self.loop.create_task(self._rehash_off_loop(auth, pending))

    def _reauthorize_client(self, c: ClientConnection, auth: Authenticator) -> Any:
        """Keep, update or close one client; a :class:`HashPending` when a bcrypt check must
        run first (the client then has the named user's new permissions meanwhile)."""
        creds = c.credentials
        if creds.nkey or creds.user:
            named = auth.nkeys.get(creds.nkey) if creds.nkey else auth.users.get(creds.user)
            if named is None or named.account != c.account.name:
                c.close("Client Closed")
                return None
        try:
            result = c.login_again(auth, defer_hash=True)
        except HashPending as pending:
            user = auth.lookup(creds)
            c.reauthorized(user, self.compile_permissions(user))
            return pending
        if not result.ok:
            c.close("Authentication Failure", "Authorization Violation", log_error=True)
            return None
        if result.account != c.account.name:
            # nats-server moves such a client to its new account; we close it and let it
            # reconnect there. Unreachable while the checks above hold; kept as a guard.
            c.close("Client Closed")
            return None
        c.reauthorized(result.user, self.compile_permissions(result.user))
        return None

    async def _rehash_off_loop(
        self, auth: Authenticator, pending: dict[tuple[str, str], list[ClientConnection]]
    ) -> None:
        """Run the bcrypt checks a reload needs in worker threads, then decide each client.

        A verdict is kept in the client's cache either way; it is acted on only while ``auth``
        is still the current authenticator (a later reload checks every client again itself).
        """
        keys = list(pending)
        verdicts = await asyncio.gather(
            *(self.loop.run_in_executor(None, check_password, g, h) for g, h in keys),
            return_exceptions=True,
        )
        for (given, configured), verdict in zip(keys, verdicts, strict=True):
            ok = verdict is True
            for c in pending[(given, configured)]:
                c.auth_cache[configured] = ok
                if c.closed or self.auth is not auth:
                    continue
                self._reauthorize_client(c, auth)  # the cache answers now

    async def _watch_config(self) -> None:
        """Reload when the config file (or an include) changes on disk.

        Kubernetes updates a ConfigMap volume by swapping a symlink, so the watcher compares the
        resolved path and the file's identity and content, not just the mtime.
        """
        from scserver import options as options_mod

        interval = float(os.environ.get("SCSERVER_WATCH_INTERVAL", "1.0"))
        last = _fingerprint(self.opts.config_file, options_mod)
        seen = last
        while not self.shutting_down:
            await asyncio.sleep(interval)
            current = _fingerprint(self.opts.config_file, options_mod)
            # A change is applied once two polls in a row see the same files: an editor writing
            # in place truncates first, and a reload of the half-written file (an include
            # emptied of its accounts) would have closed clients the finished edit keeps.
            stable = current == seen
            seen = current
            if stable and current != last:
                last = current
                if current is not None:
                    self.reload("config file changed")

    # --- statistics ----------------------------------------------------------------------------

    def link_managers(self) -> list[Any]:
        """The running link kinds' managers (scserver.link_manager.LinkManager): routes, then
        gateways; a new link kind adds its manager here."""
        return [m for m in (self.routes, self.gateway) if m is not None]

    def all_connections(self) -> list[Connection]:
        conns: list[Connection] = list(self.clients.values())
        for manager in self.link_managers():
            conns.extend(manager.connections())
        return conns

    def totals(self) -> tuple[int, int, int, int]:
        s = self.closed_stats
        in_m, in_b, out_m, out_b = s
        for c in self.all_connections():
            in_m += c.in_msgs
            in_b += c.in_bytes
            out_m += c.out_msgs
            out_b += c.out_bytes
        return in_m, in_b, out_m, out_b

    def num_subscriptions(self) -> int:
        return sum(acc.sublist.count() for acc in self.accounts.values())


def _fingerprint(path: str, options_mod: Any) -> Any:
    """Identity of the config file and everything it includes, or None while unreadable."""
    files = [path, *_included_files(path)]
    parts = []
    for f in files:
        try:
            real = os.path.realpath(f)
            st = os.stat(real)
            with open(real, "rb") as fh:
                content = fh.read()
        except OSError:
            return None
        parts.append((real, st.st_ino, st.st_mtime_ns, hash(content)))
    return tuple(parts)


_INCLUDE_RE = re.compile(r"^\s*include\s+['\"]?([^'\";\s]+)", re.MULTILINE)


def _included_files(path: str, seen: set[str] | None = None) -> list[str]:
    """Files pulled in by `include`, so that editing one of them also triggers a reload."""
    seen = seen if seen is not None else {os.path.realpath(path)}
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return []
    out: list[str] = []
    for name in _INCLUDE_RE.findall(text):
        inc = os.path.join(os.path.dirname(path), name)
        real = os.path.realpath(inc)
        if real in seen:
            continue
        seen.add(real)
        out.append(inc)
        out.extend(_included_files(inc, seen))
    return out


def _bind_host(host: str) -> str | None:
    return None if host in ("0.0.0.0", "") else host
