"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import metricstream as ms
from metricstream.testing import FaultySink

from .servers import servers_required
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
