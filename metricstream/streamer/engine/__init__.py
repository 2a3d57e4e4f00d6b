"""The streamer's engine: the buffer, the batcher thread and one lane per sink.

Everything here is internal to `metricstream.streamer`: the pipeline
(`pipeline`), the lanes (`lane`) with their writers and retry (`writer`,
`retry`), the isolation of a sink's ``prepare`` (`prepare`), the place of a
lane in the spool (`spill`) and the self-telemetry slot (`uncounted`).
"""
