"""Serve the example apps on loopback, each in its framework's own server, and stop them again.

Used by the walkthrough (``python -m example_app.demo``) and the tests. Each server runs in a
process group of its own, which :meth:`Server.stop` ends (SIGTERM, then SIGKILL after a grace
period), so nothing it started outlives it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

import httpx

__all__ = ["APPS", "App", "Server", "ServerFailed", "free_port", "serving"]

_GRACE = 5.0
_POLL = 0.05


@dataclass(frozen=True, slots=True)
class App:
    """One example app: how to serve it and where its pages are."""

    key: str  # "django", "flask" or "asgi", as in `make run-<key>`
    label: str
    server: str
    trailing_slash: bool  # Django's URLs end in "/"

    def path(self, name: str) -> str:
        """The URL path of a page or endpoint (``"analytics"``, ``"stripe/webhook"``) in this app."""
        return f"/{name}/" if self.trailing_slash else f"/{name}"

    def command(self, host: str, port: int) -> list[str]:
        """The command that serves the app on ``host:port``, in the foreground, without a reloader."""
        python = sys.executable
        if self.key == "django":
            settings = "example_app.django_app.settings"
            return [python, "-m", "django", "runserver", "--noreload", "--settings", settings, f"{host}:{port}"]
        if self.key == "flask":
            return [
                *(python, "-m", "flask", "--app", "example_app.flask_app", "run"),
                *("--host", host, "--port", str(port), "--no-reload", "--no-debugger"),
            ]
        return [
            *(python, "-m", "uvicorn", "--factory", "example_app.asgi_app:create_app"),
            *("--host", host, "--port", str(port), "--log-level", "warning"),
        ]


APPS = (
    App("django", "Django", "runserver", trailing_slash=True),
    App("flask", "Flask", "flask run", trailing_slash=False),
    App("asgi", "Starlette", "uvicorn", trailing_slash=False),
)


class ServerFailed(RuntimeError):
    """A server did not start, or stopped answering; the message ends with its last log lines."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Server:
    """One example app served by its framework's server on ``host:port`` (a free port by default)."""

    def __init__(self, app: App, env: Mapping[str, str], *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.app = app
        self.env = dict(env)
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"Server({self.app.key!r}, {self.url!r})"

    def start(self) -> None:
        """Start the server process (returns at once; see :meth:`wait_until_ready`)."""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this call; stop() closes it
        self._process = subprocess.Popen(
            self.app.command(self.host, self.port),
            env={**self.env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends whatever it started
        )

    def wait_until_ready(self, deadline: float) -> None:
        """Poll the home page until it answers 200; ``ServerFailed`` if the server exits or ``deadline`` passes.

        ``deadline`` is a ``time.monotonic()`` value.
        """
        assert self._process is not None, "start() the server first"
        with httpx.Client(base_url=self.url, timeout=1.0) as client:
            while True:
                if self._process.poll() is not None:
                    raise ServerFailed(
                        f"{self.app.label} exited with status {self._process.returncode}{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ServerFailed(f"{self.app.label} did not answer on {self.url} in time{self.log_tail()}")
                time.sleep(_POLL)

    def stop(self) -> None:
        """End the server and everything it started, and drop its log; safe to call more than once."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server printed, indented, after a newline (empty when it printed nothing)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        tail = self._log.read().decode("utf-8", "replace").splitlines()[-lines:]
        return "".join(f"\n    {line}" for line in tail)


@contextlib.contextmanager
def serving(apps: Sequence[App], env: Mapping[str, str], *, timeout: float = 30.0) -> Iterator[list[Server]]:
    """Start a server for each app (all at once), wait until each answers, and stop them all on exit.

    Raises ``ServerFailed`` when one does not start within ``timeout`` seconds; the others are
    stopped then too.
    """
    servers = [Server(app, env) for app in apps]
    try:
        for server in servers:
            server.start()
        deadline = time.monotonic() + timeout
        for server in servers:
            server.wait_until_ready(deadline)
        yield servers
    finally:
        for server in servers:
            server.stop()
