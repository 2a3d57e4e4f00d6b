"""Every error of metricstream pickles whole, so a multiprocessing worker can raise it."""

from __future__ import annotations

import multiprocessing
import pickle

import pytest

import metricstream.exceptions as errors
from metricstream.sinks.influxdb.errors import PartialWriteError, TooLargeError

from . import mp_workers

EXAMPLES: list[errors.MetricStreamError] = [
    errors.MetricStreamError("plain"),
    errors.ConfigError("batch_size", "must be an integer >= 1, not 0"),
    errors.InvalidEventError("host", "'host' is bad", indexes=(1, 4), reason="limits"),
    errors.LineProtocolError("no fields", line=3, column=7, text="cpu host=a"),
    errors.SchemaVersionError(9, 1),
    errors.BackpressureError("no room", retry_after=1.5, events=40),
    errors.StreamerClosedError("the streamer is shut down"),
    errors.SinkError("down", sink="influxdb", written=3, rejected=2),
    errors.TransientSinkError("timeout", retry_after=2.0, sink="kafka", written=1, rejected=0),
    errors.PermanentSinkError(
        "type conflict", reason="rejected", unhealthy=True, written=5, sink="influxdb", rejected=1
    ),
]


def attributes(error: BaseException) -> dict[str, object]:
    return {"type": type(error), "args": error.args, "str": str(error), **vars(error)}


class TestPickling:
    """Each error comes back from pickle with its type, message and attributes."""

    def test_every_public_error_is_in_the_examples(self) -> None:
        assert {type(example).__name__ for example in EXAMPLES} == set(errors.__all__)

    @pytest.mark.parametrize("error", EXAMPLES, ids=lambda error: type(error).__name__)
    def test_a_round_trip_keeps_everything(self, error: errors.MetricStreamError) -> None:
        copy = pickle.loads(pickle.dumps(error))
        assert attributes(copy) == attributes(error)
        assert copy is not error

    @pytest.mark.parametrize(
        "error",
        [
            PartialWriteError("partial write", dropped=2, unparsed=False, sink="influxdb"),
            TooLargeError("HTTP 413", sink="influxdb"),
        ],
        ids=lambda error: type(error).__name__,
    )
    def test_errors_defined_elsewhere_on_the_tree_pickle_too(
        self, error: errors.MetricStreamError
    ) -> None:
        assert attributes(pickle.loads(pickle.dumps(error))) == attributes(error)


class TestInAPool:
    """An error a pool worker raises reaches the caller, instead of hanging the pool."""

    @pytest.mark.parametrize("method", ["fork", "spawn"])
    def test_invalid_event_error_from_a_worker(self, method: str) -> None:
        with multiprocessing.get_context(method).Pool(1) as pool:
            result = pool.apply_async(mp_workers.raise_invalid, ("host",))
            with pytest.raises(errors.InvalidEventError) as info:
                result.get(timeout=60)
        assert (info.value.key, info.value.problem, info.value.indexes, info.value.reason) == (
            "host",
            "'host' is bad",
            (3, 5),
            "limits",
        )
