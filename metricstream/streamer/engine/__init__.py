"""The streamer's engine: intake, batcher thread and one lane per sink.

It never imports the operations (`metricstream.streamer.operations`);
they, and the facade, build on it. Its modules are imported by name (this
package imports none of them, so that `metricstream.streamer.config` can
use `RetryConfig` while the engine uses the config):

- `Pipeline` (`.pipeline`): builds the rest, answers flush and health,
  takes whole batches (`Pipeline.send_batch`) and stops;
- `Intake` (`.intake`): the events accepted and not yet with a lane, and
  their counters;
- `Batcher` (`.batcher`): the thread that cuts batches, spools them and
  offers them to the lanes, and runs periodic work (`PeriodicTask`);
- the lanes (`.lane`): one per sink, with its ledger, threads, writer and
  retry (`RetryConfig`);
- `BatchReceipt` (`.receipts`): what became of a batch given whole.
"""
