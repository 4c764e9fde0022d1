"""Serving the app with uvicorn on loopback TCP or a unix socket (mode 0660)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..config import API, is_loopback
from ..errors import ConfigError

__all__ = ["Server", "ServerThread"]


def _without_signals(base: Any) -> Any:
    """uvicorn.Server minus its SIGINT/SIGTERM capture (it would replace the service's own
    handlers and re-raise the signal after shutdown)."""

    class QuietServer(base):  # type: ignore[misc]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return QuietServer


class Server:
    """uvicorn without its signal handlers (the service owns SIGTERM/SIGHUP)."""

    def __init__(
        self,
        app: Any,
        settings: API,
        *,
        log_level: str = "warning",
        grace_s: float = 3.0,
        live: Callable[[], API] | None = None,
    ) -> None:
        """``live`` returns the settings in force (after reloads); default ``settings``."""
        import uvicorn

        from .connections import limited_protocol

        if not settings.unix_socket and not is_loopback(settings.host) and not settings.api_key:
            raise ConfigError(
                [f"api.host: refusing to serve {settings.host!r} without api.api_key"]
            )
        self.settings = settings
        self.sock: socket.socket | None = None
        self._url = ""
        config = uvicorn.Config(
            app,
            http=limited_protocol(live or (lambda: settings)),
            log_level=log_level,
            access_log=False,
            lifespan="off",
            timeout_keep_alive=5,
            # the service drains answers for grace_s before it cuts them: never cut first
            timeout_graceful_shutdown=math.ceil(grace_s) + 2,
            proxy_headers=False,
            server_header=False,
        )
        self._uvicorn = _without_signals(uvicorn.Server)(config)

    def bind(self) -> socket.socket:
        """Open the listening socket now, so a port in use is an error at start."""
        s = self.settings
        try:
            if s.unix_socket:
                path = Path(s.unix_socket)
                if _listening(path):
                    raise ConfigError(
                        [
                            f"api.unix_socket: {path} is in use by another process (another "
                            "qwen-assistant?); stop it or choose another api.unix_socket"
                        ]
                    )
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # a killed service's socket: nobody listens on it
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                old = os.umask(0o117)  # srw-rw----: the service user and its group
                try:
                    sock.bind(str(path))
                finally:
                    os.umask(old)
                os.chmod(path, 0o660)
            else:
                family = socket.AF_INET6 if ":" in s.host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((s.host, s.port))
            sock.listen(128)
        except OSError as exc:
            where = s.unix_socket or f"{s.host}:{s.port}"
            raise ConfigError(
                [
                    f"api: cannot listen on {where}: {exc.strerror or exc}; "
                    "change api.port / api.unix_socket or stop what uses it"
                ]
            ) from None
        sock.setblocking(False)
        self.sock = sock
        self._url = self._address(sock)
        return sock

    def _address(self, sock: socket.socket | None) -> str:
        s = self.settings
        if s.unix_socket:
            return f"unix:{s.unix_socket}"
        host = f"[{s.host}]" if ":" in s.host else s.host
        port = sock.getsockname()[1] if sock else s.port
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """Where it listens; fixed at :meth:`bind` (the socket is closed at stop, and the
        status is still published then)."""
        return self._url or self._address(None)

    async def serve(self) -> None:
        """Serve until :meth:`stop`. Clients may connect as soon as :meth:`bind` returned:
        the kernel queues them until uvicorn accepts."""
        sock = self.sock or self.bind()
        await self._uvicorn.serve(sockets=[sock])

    def stop(self, grace_s: float | None = None) -> None:
        """Stop accepting; open connections get ``grace_s`` + 2 s to finish (the service
        drains answers for ``grace_s`` first, so uvicorn never cuts one before it does)."""
        if grace_s is not None:
            self._uvicorn.config.timeout_graceful_shutdown = math.ceil(grace_s) + 2
        self._uvicorn.should_exit = True

    def close(self) -> None:
        if self.settings.unix_socket:
            with contextlib.suppress(OSError):
                Path(self.settings.unix_socket).unlink()


def _listening(path: Path) -> bool:
    """Whether a process accepts connections on the unix socket ``path``."""
    if not path.is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class ServerThread:
    """The app served from a thread with its own event loop (benchmark, tests)."""

    def __init__(self, app: Any, settings: API) -> None:
        self.server = Server(app, settings)
        self.server.bind()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="api-server", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return self.server.url

    def _serve(self) -> None:
        self.loop.run_until_complete(self.server.serve())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.stop)
        self.thread.join(timeout=10)
        self.server.close()
        self.loop.close()
