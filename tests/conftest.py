"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import metricstream as ms
from metricstream.testing import FaultySink

from .support import FAST_RETRY


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
