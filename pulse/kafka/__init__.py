"""Kafka helpers of the commands: broker addresses and probes, the embedded Tansu broker,
and the producer and file replay of `pulse replay` and `pulse simulate`."""
