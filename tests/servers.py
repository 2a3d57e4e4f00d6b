"""Where the real test servers are, and helpers to use them.

The servers are started by ``scripts/services.sh start`` (``make test`` does
that); ``scripts/services.sh env`` prints the variables read here. Each
constant falls back to the script's default port on loopback.

Tests call :func:`require` before touching a server: when it does not answer,
the test is skipped locally but fails under CI (``CI=true``) or when
``METRICSTREAM_REQUIRE_SERVERS=1``, so a missing server cannot go unnoticed.
:func:`require_module` does the same for an optional module a test module
needs (DuckDB, the compiled helpers): a whole module skipped in silence is
a failure there too.

:func:`require_chromium` finds the headless browser of the status page test
(installed, not started, by the same script).

A test that uses any of these (the servers, a private :class:`InfluxdProcess`
or :class:`RedisProcess`, Chromium) is marked ``@pytest.mark.servers``. With
``METRICSTREAM_NO_SERVERS=1`` (the runs on the other Python versions, see
``make test``) the marked tests are deselected, and an unmarked test that
reaches for a server fails, naming it: :func:`no_server_run` and
:data:`SERVER_PORTS` are what ``conftest.py`` checks.

:class:`InfluxdProcess` runs a private, short-lived ``influxd`` for fault
tests that stop and restart the server in the middle of a stream.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:  # typing.Self is new in Python 3.11
    from typing import Self

__all__ = [
    "CHROMIUM_BIN",
    "PROMTOOL_BIN",
    "INFLUXDB_AUTH_PASSWORD",
    "INFLUXDB_AUTH_URL",
    "INFLUXDB_AUTH_USER",
    "INFLUXDB_V1_URL",
    "INFLUXD_BIN",
    "KAFKA_BOOTSTRAP",
    "REDIS_CLUSTER_URL",
    "REDIS_URL",
    "VM_URL",
    "InfluxdProcess",
    "RedisProcess",
    "SERVER_PORTS",
    "free_port",
    "host_port",
    "no_server_run",
    "refuse_in_no_server_run",
    "require",
    "require_chromium",
    "require_influxd",
    "require_module",
    "require_promtool",
    "require_url",
    "servers_required",
]

REDIS_URL: str = os.environ.get("METRICSTREAM_REDIS_URL", "redis://127.0.0.1:26379/0")
REDIS_CLUSTER_URL: str = os.environ.get(
    "METRICSTREAM_REDIS_CLUSTER_URL", "redis+cluster://127.0.0.1:27001"
)
INFLUXDB_V1_URL: str = os.environ.get("METRICSTREAM_INFLUXDB_V1_URL", "http://127.0.0.1:28086")
INFLUXDB_AUTH_URL: str = os.environ.get("METRICSTREAM_INFLUXDB_AUTH_URL", "http://127.0.0.1:28087")
INFLUXDB_AUTH_USER: str = os.environ.get("METRICSTREAM_INFLUXDB_AUTH_USER", "admin")
INFLUXDB_AUTH_PASSWORD: str = os.environ.get(
    "METRICSTREAM_INFLUXDB_AUTH_PASSWORD", "metricstream-secret"
)
VM_URL: str = os.environ.get("METRICSTREAM_VM_URL", "http://127.0.0.1:28428")
KAFKA_BOOTSTRAP: str = os.environ.get("METRICSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:29092")
INFLUXD_BIN: str = os.environ.get("METRICSTREAM_INFLUXD_BIN") or (
    shutil.which("influxd") or "/usr/bin/influxd"
)

CHROMIUM_BIN: str = os.environ.get("METRICSTREAM_CHROMIUM") or (
    shutil.which("chromium") or "/usr/bin/chromium"
)

PROMTOOL_BIN: str = os.environ.get("METRICSTREAM_PROMTOOL") or (
    shutil.which("promtool") or "/usr/bin/promtool"
)

_START_HINT = "run `scripts/services.sh start` (or `make test`) to start the test servers"


def no_server_run() -> bool:
    """Tell whether this run is the one without servers (``METRICSTREAM_NO_SERVERS=1``)."""
    return os.environ.get("METRICSTREAM_NO_SERVERS", "") == "1"


def refuse_in_no_server_run(what: str) -> None:
    """Fail the calling test if this run has no servers: it should be marked ``servers``."""
    if no_server_run():
        pytest.fail(
            f"this test uses {what} but is not marked @pytest.mark.servers "
            "(METRICSTREAM_NO_SERVERS=1 runs only the tests that need no server)",
            pytrace=False,
        )


def servers_required() -> bool:
    """Tell whether a missing server must fail the test rather than skip it.

    True under CI (``CI`` is ``true`` or ``1``) or when
    ``METRICSTREAM_REQUIRE_SERVERS=1``.
    """
    ci = os.environ.get("CI", "").strip().lower()
    return ci in ("true", "1") or os.environ.get("METRICSTREAM_REQUIRE_SERVERS", "") == "1"


def _unavailable(message: str) -> NoReturn:
    """Fail or skip the current test, as :func:`servers_required` says."""
    if servers_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_module(name: str, why: str) -> ModuleType:
    """Import and return module `name`, which the calling test module needs.

    Called at the top of a test module. When the import fails, the whole
    module is skipped with a message saying `why` it is needed, or, under
    CI or ``METRICSTREAM_REQUIRE_SERVERS=1``, its collection fails.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"{name} cannot be imported ({exc}): {why}; install with `make test`"
        if servers_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


def host_port(url: str, default_port: int | None = None) -> tuple[str, int]:
    """Split ``url`` (``scheme://host:port/...`` or bare ``host:port``) into host and port.

    A comma-separated bootstrap list (Kafka) gives its first entry.
    """
    first = url.split(",", 1)[0].strip()
    parsed = urllib.parse.urlsplit(first if "://" in first else f"//{first}")
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or default_port
    if port is None:
        raise ValueError(f"no port in {url!r}")
    return host, port


def _cluster_ports(url: str) -> set[int]:
    """The ports of the cluster's three nodes (``services.sh`` numbers them in a row)."""
    _, first = host_port(url)
    return {first, first + 1, first + 2}


SERVER_PORTS: frozenset[int] = frozenset(
    {
        host_port(url)[1]
        for url in (REDIS_URL, INFLUXDB_V1_URL, INFLUXDB_AUTH_URL, VM_URL, KAFKA_BOOTSTRAP)
    }
    | _cluster_ports(REDIS_CLUSTER_URL)
)
"""The loopback ports of the test servers, which a test not marked ``servers`` never uses."""


def require(name: str, host: str, port: int) -> None:
    """Make sure a TCP connect to ``host:port`` succeeds.

    When it does not, the calling test fails (under CI or with
    ``METRICSTREAM_REQUIRE_SERVERS=1``) or is skipped, with a message naming
    the server and how to start it.
    """
    refuse_in_no_server_run(f"{name} at {host}:{port}")
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return
    except OSError as exc:
        _unavailable(f"{name} is not reachable at {host}:{port} ({exc}); {_START_HINT}")


def require_url(name: str, url: str) -> None:
    """Like :func:`require`, with the host and port taken from ``url``."""
    require(name, *host_port(url))


def require_influxd() -> str:
    """Return the path of an executable ``influxd``, or fail/skip the test."""
    refuse_in_no_server_run("influxd")
    for candidate in (INFLUXD_BIN, shutil.which("influxd")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    _unavailable(f"influxd not found (METRICSTREAM_INFLUXD_BIN={INFLUXD_BIN!r}); {_START_HINT}")


def require_chromium() -> str:
    """Return the path of an executable ``chromium``, or fail/skip the test."""
    refuse_in_no_server_run("chromium")
    for candidate in (CHROMIUM_BIN, shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    _unavailable(f"chromium not found (METRICSTREAM_CHROMIUM={CHROMIUM_BIN!r}); {_START_HINT}")


def require_promtool() -> str:
    """Return the path of an executable ``promtool`` (Debian package prometheus), or fail/skip."""
    refuse_in_no_server_run("promtool")
    for candidate in (PROMTOOL_BIN, shutil.which("promtool")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    _unavailable(f"promtool not found (METRICSTREAM_PROMTOOL={PROMTOOL_BIN!r}); {_START_HINT}")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class InfluxdProcess:
    """A private InfluxDB 1.x server for fault tests.

    It listens on 127.0.0.1 on a free HTTP port and a free RPC port, keeps its
    config, data and log in a temporary directory, and can be stopped and
    started again on the same ports with the same data::

        with InfluxdProcess() as influx:
            influx.create_database("db")
            ...                 # write to influx.url
            influx.stop()       # the server goes away mid-stream
            influx.start()      # and comes back, data intact

    Leaving the ``with`` block stops the server and removes the directory.
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        startup_timeout: float = 30.0,
        http_options: dict[str, int | str | bool] | None = None,
    ) -> None:
        """Prepare (but do not start) the server.

        :param binary: path of ``influxd``; default :data:`INFLUXD_BIN`, else
            ``influxd`` on ``PATH``.
        :param startup_timeout: seconds :meth:`start` waits for ``/ping``.
        :param http_options: extra settings for the ``[http]`` section, e.g.
            ``{"max-body-size": 4096}``.
        """
        refuse_in_no_server_run("a private influxd")
        found = binary or (INFLUXD_BIN if os.access(INFLUXD_BIN, os.X_OK) else None)
        found = found or shutil.which("influxd")
        if not found:
            raise FileNotFoundError("influxd not found: set METRICSTREAM_INFLUXD_BIN")
        self.binary: str = found
        self.startup_timeout: float = startup_timeout
        self.http_port: int = free_port()
        self.rpc_port: int = free_port()
        while self.rpc_port == self.http_port:
            self.rpc_port = free_port()
        self.dir: Path = Path(tempfile.mkdtemp(prefix="metricstream-influxd-"))
        self.config_path: Path = self.dir / "influxdb.conf"
        self.log_path: Path = self.dir / "influxd.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.http_options: dict[str, int | str | bool] = dict(http_options or {})
        self._write_config()

    @property
    def url(self) -> str:
        """Base URL of the HTTP API, e.g. ``http://127.0.0.1:41234``."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        """True while the process this object started is alive."""
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> None:
        """Write the influxd config file (loopback only, no reporting, no auth)."""
        d = self.dir
        extra_http = "".join(
            f"  {key} = {json.dumps(value)}\n" for key, value in self.http_options.items()
        )
        self.config_path.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d / "meta"}"

[data]
  dir = "{d / "data"}"
  wal-dir = "{d / "wal"}"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.http_port}"
  auth-enabled = false
  log-enabled = false
{extra_http}
[monitor]
  store-enabled = false
""",
            encoding="utf-8",
        )

    def _log_tail(self, lines: int = 20) -> str:
        """Return the last ``lines`` lines of the server log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def ping(self) -> bool:
        """Return True if ``GET /ping`` answers 204 right now."""
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=2.0) as resp:
                return bool(resp.status == 204)
        except (OSError, urllib.error.URLError):
            return False

    def start(self) -> None:
        """Start the server (on the same ports and data as before) and wait for ``/ping``.

        :raises RuntimeError: if it exits or does not answer in time.
        """
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "run", "-config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.startup_timeout
        while not self.ping():
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"influxd exited with {self._process.returncode}:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"influxd did not answer /ping within {self.startup_timeout}s:\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server with SIGTERM and wait for it (SIGKILL after ``timeout``)."""
        proc = self._process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._process = None

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """Run an InfluxQL statement with ``POST /query`` and return the decoded JSON.

        :raises RuntimeError: if the server reports an error.
        """
        params = {"q": q}
        if db is not None:
            params["db"] = db
        body = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(f"{self.url}/query", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10.0) as resp:
                result: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{q!r}: HTTP {exc.code}: {exc.read()!r}") from exc
        errors = [r["error"] for r in result.get("results", []) if "error" in r]
        if "error" in result or errors:
            raise RuntimeError(f"{q!r}: {result.get('error') or errors}")
        return result

    def create_database(self, name: str) -> None:
        """Create database ``name`` (a no-op if it exists)."""
        self.query(f'CREATE DATABASE "{name}"')

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        """Start the server."""
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server and remove its directory."""
        self.close()


class RedisProcess:
    """A private ``redis-server`` on a free port, for tests that need their own settings.

    ::

        with RedisProcess("--requirepass", "s3cret") as server:
            ...  # use server.port

    Leaving the ``with`` block stops the server and removes its directory.
    """

    def __init__(self, *args: str, port: int | None = None, startup_timeout: float = 30.0) -> None:
        """Prepare (but do not start) the server.

        :param args: extra ``redis-server`` options (later ones win).
        :param port: the port :meth:`start` waits for; a free one when None.
        """
        refuse_in_no_server_run("a private redis-server")
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable(f"redis-server not found on PATH; {_START_HINT}")
        self.binary: str = binary
        self.args: tuple[str, ...] = args
        self.port: int = free_port() if port is None else port
        self.startup_timeout: float = startup_timeout
        self.dir: Path = Path(tempfile.mkdtemp(prefix="metricstream-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, password: str | None = None) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``."""
        auth = "" if password is None else f":{urllib.parse.quote(password, safe='')}@"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it accepts connections.

        :raises RuntimeError: if it exits or does not listen in time.
        """
        self._process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return
            except OSError:
                if self._process.poll() is not None:
                    code = self._process.returncode
                    raise RuntimeError(f"redis-server exited with {code}") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("redis-server did not listen in time") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> Self:
        """Start the server."""
        try:
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
