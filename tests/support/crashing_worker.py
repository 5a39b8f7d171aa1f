"""`pulse worker` that dies like `kill -9` (os._exit(137)) at one step of a flush, for
tests/agents/test_worker_alerts.py: `python tests/support/crashing_worker.py worker --broker ...` with
PULSE_TEST_CRASH_AT set to

- `before`: before the flush writes anything,
- `after_state`: once the broker has acknowledged the state (before the alerts),
- `after_alerts`: once it has acknowledged the alerts (before the messages are acked),

of the first flush that carries a `lead.stale_resolved` (the alert a restart used to repeat).
It wraps DurableAcks from outside: the product has no crash hook.
"""
from __future__ import annotations

import os
import sys

from pulse.agents import batching
from pulse.cli import main

POINT = os.environ["PULSE_TEST_CRASH_AT"]
_flush = batching.DurableAcks.flush


def _die(self, point: str) -> None:
    if self._crash_armed and point == POINT:
        sys.stderr.write(f"crashing_worker: exiting at {point}\n")
        sys.stderr.flush()
        os._exit(137)


async def flush(self) -> int:
    if not getattr(self, "_crash_wrapped", False):
        self._crash_wrapped, self._crash_armed = True, False
        write_outputs, write_state = self.write_outputs, self.write_state

        async def outputs(records):
            _die(self, "before")
            await write_outputs(records)
            if any(topic.endswith("pipeline.notifications") for topic, *_ in records):
                _die(self, "after_alerts")

        async def state(dirty):
            _die(self, "before")
            await write_state(dirty)
            _die(self, "after_state")

        self.write_outputs, self.write_state = outputs, state
    if any(b'"lead.stale_resolved"' in record[3] for record in self._alerts):
        self._crash_armed = True
    return await _flush(self)


batching.DurableAcks.flush = flush

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
