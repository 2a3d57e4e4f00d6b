"""`CurrentPipeline`: a streamer's pipeline in this process, for what must not hold the streamer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metricstream.streamer.correlation import current_correlation_id, scopes_entered

if TYPE_CHECKING:
    from metricstream.streamer.engine.pipeline import Pipeline

__all__ = ["CurrentPipeline"]


class CurrentPipeline:
    """A streamer's pipeline in this process, and the way in for events already checked.

    A forked child's streamer puts its new pipeline here, so whatever holds
    this object (the instruments' timers, the finalizer of a collected
    streamer) always reaches the pipeline of its own process, without
    holding the streamer.

    Attributes:
        pipeline: The pipeline.
    """

    __slots__ = ("pipeline",)

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def send_parts(
        self, measurement: str, tags: dict[str, str], fields: dict[str, Any], timestamp_ns: int
    ) -> bool:
        """`EventStreamer.send` for an event given as parts already checked (the instruments').

        Returns:
            True if queued; False if dropped at once and counted.
        """
        pipeline = self.pipeline
        cid = current_correlation_id() if scopes_entered[0] else None
        buffer = pipeline.buffer
        if len(buffer) >= pipeline.part_limit:  # full, or closed
            return pipeline.send_when_full((measurement, tags, fields, timestamp_ns, cid))
        buffer.extend((measurement, tags, fields, timestamp_ns, cid))
        if not len(buffer) % pipeline.wake_every:
            pipeline.batch_full()
        return True

    def sample(self, rate: float) -> int:
        """Decide one event under ``sample_rate``: its weight if kept, 0 if sampled out.

        Raises:
            ConfigError: If the rate is not 1/N for a whole N.
        """
        return self.pipeline.sampler.draw(rate)
