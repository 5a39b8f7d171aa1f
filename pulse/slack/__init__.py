"""`pulse slack`: the alerts of `pipeline.notifications` as Slack messages (docs/slack.md).

- config.py    the `slack:` section of the configuration: validation and routing rules
- blocks.py    Block Kit messages (pure)
- api.py       slack_sdk clients (Web API, incoming webhook), errors sorted transient/permanent
- ledger.py    the Redis delivery ledger (claims, posted messages, open stale leads)
- notifier.py  per-channel queues, retries, exactly-once delivery, resolution, digest
- consumer.py  the aiokafka consumer group and its offset commits
- metrics.py   Prometheus counters, GET /metrics and /health
- cli.py       the command
"""
