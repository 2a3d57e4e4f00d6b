"""The Kafka relay: consumer group -> decode -> (event-time windows) -> sinks.

Applications publish with `KafkaSink`; relays read those topics as one
Kafka consumer group and deliver to any sinks. Add relay processes to share
the partitions; Kafka's group protocol moves a dead relay's partitions to
the others, and its committed offsets are all the state there is.

- `Relay` (`metricstream.relay.relay`): the service, as a context manager
  or with `Relay.run` / `Relay.stop`; ``metricstream relay`` on the
  command line;
- `KafkaSource` and `parse_source` (`metricstream.relay.source`): the
  topics and the group, from a ``kafka://`` URL;
- `RelayOptions` (`metricstream.relay.config`): every option, declared once;
- `RelayHealth` (`metricstream.relay.stats`): ``/healthz`` and ``/metrics``.

Delivery, per sink:

- every sink: at least once. A partition's offset is committed only once
  every sink has written or dropped (counted, with a reason) every event
  before it; on revocation, what was delivered is committed before the
  partition is handed over;
- the Redis counter sink: exactly once. Batches are cut by rules a replay
  repeats (`metricstream.relay.batches`) and carry ids derived from their
  topic, partition and offsets; window results carry ids derived from the
  window and its partitions; the sink applies an id once;
- InfluxDB: exactly once in effect (one point per series and timestamp);
- JSON Lines, Kafka, the console: at least once (a batch delivered just
  before a crash is delivered again).

A message that cannot be decoded is counted (``invalid_messages``), sent to
the dead-letter topic when the source names one, and passed: it never
stops its partition. A sink that is down pauses the partitions
(``consumer.pause``) rather than buffering: the relay holds at most
``max_buffer`` events whatever the lag.
"""

from __future__ import annotations

from metricstream.relay.config import RelayOptions
from metricstream.relay.relay import Relay
from metricstream.relay.source import KafkaSource, parse_source
from metricstream.relay.stats import RelayHealth

__all__ = ["KafkaSource", "Relay", "RelayHealth", "RelayOptions", "parse_source"]
