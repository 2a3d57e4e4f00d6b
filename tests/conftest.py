"""Fixtures shared by the test modules, and the run without servers.

With ``METRICSTREAM_NO_SERVERS=1`` the tests marked ``servers`` are
deselected, and a test that connects to one of the test servers' ports
anyway (or calls `tests.servers.require`) fails with the server's name: a
test that needs a server must say so with ``@pytest.mark.servers``.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import metricstream as ms
from metricstream.testing import FaultySink

from .servers import SERVER_PORTS, no_server_run, servers_required
from .support import FAST_RETRY

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note every skipped test (for `pytest_sessionfinish`)."""
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """Note every test module skipped whole (for `pytest_sessionfinish`)."""
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI or METRICSTREAM_REQUIRE_SERVERS=1, a run that skipped any test fails.

    What a test needs (a server, DuckDB, the compiled helpers) is there in
    CI; a skip there would hide that it was not tested.
    """
    if _skipped and servers_required() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(
                f"{len(_skipped)} test(s) skipped under CI / METRICSTREAM_REQUIRE_SERVERS=1,"
                f" which must run everything: {', '.join(_skipped[:5])}",
                red=True,
            )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without servers, deselect the tests marked ``servers``."""
    if not no_server_run():
        return
    marked = [item for item in items if item.get_closest_marker("servers") is not None]
    if marked:
        config.hook.pytest_deselected(items=marked)
        items[:] = [item for item in items if item.get_closest_marker("servers") is None]


@pytest.fixture(autouse=True)
def _no_server_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Without servers, refuse (and afterwards fail the test for) a connection to one."""
    if not no_server_run():
        yield
        return
    touched: list[str] = []
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def server_address(address: Any) -> str | None:
        if isinstance(address, tuple) and len(address) >= 2 and address[1] in SERVER_PORTS:
            return f"{address[0]}:{address[1]}"
        return None

    def connect(self: socket.socket, address: Any) -> None:
        if (server := server_address(address)) is not None:
            touched.append(server)
            raise ConnectionRefusedError(f"{server} is a test server; the test is not marked")
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if (server := server_address(address)) is not None:
            touched.append(server)
            raise ConnectionRefusedError(f"{server} is a test server; the test is not marked")
        return original_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield
    if touched:
        pytest.fail(
            f"this test connected to the test server(s) {', '.join(sorted(set(touched)))} but "
            "is not marked @pytest.mark.servers",
            pytrace=False,
        )


@pytest.fixture
def make_streamer() -> Iterator[Callable[..., ms.EventStreamer]]:
    """Build streamers (no atexit hook, fast retries by default); shut them all down after."""
    made: list[ms.EventStreamer] = []

    def make(sinks: list[object], **options: object) -> ms.EventStreamer:
        options.setdefault("register_atexit", False)
        options.setdefault("retry", FAST_RETRY)
        streamer = ms.EventStreamer(sinks, **options)  # type: ignore[arg-type]
        made.append(streamer)
        return streamer

    yield make
    for streamer in made:
        for sink in streamer.sinks:
            release = getattr(sink, "release", None)
            if isinstance(sink, FaultySink) or callable(release):
                release()  # type: ignore[misc]
        streamer.shutdown(timeout=2)


@pytest.fixture(autouse=True, scope="session")
def _query_cache_in_a_temporary_directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Query caches made by the tests go to a temporary directory, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METRICSTREAM_QUERY_CACHE", str(tmp_path_factory.mktemp("query-cache")))
        yield


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of the test's own (test Redis, database 0); its keys are deleted after."""
    import redis

    from .servers import REDIS_URL

    name = f"test-{uuid.uuid4().hex[:10]}:"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{name}*", count=1000))
    for first in range(0, len(keys), 1000):
        client.delete(*keys[first : first + 1000])
    client.close()
