"""A relay in a process of its own, for the relay tests (``python tests/relay_worker.py JSON``).

JSON: ``{"endpoints": [...], "redis_url": ..., "stream": ..., "subscriptions": [{...}],
"relay": {...more Relay keywords}}``. Prints ``ready`` once the relay runs; on SIGTERM it
closes the relay and prints its ``stats()`` as one JSON line.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from types import FrameType

import pylazer_sync as pl
from pylazer_sync.relay import Relay

TOKEN = "test-token-6f1d2c"


def main() -> int:
    config = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    client = pl.LazerClient(
        TOKEN,
        endpoints=config["endpoints"],
        num_connections=config.get("num_connections", len(config["endpoints"])),
        timeout=2.0,
        backoff=pl.Backoff(initial=0.05, max_interval=0.5),
        start_timeout=30.0,
    )
    relay = Relay(
        client,
        redis_url=config["redis_url"],
        stream=config["stream"],
        backoff=pl.Backoff(initial=0.05, max_interval=0.5),
        **config.get("relay", {}),
    )
    for sub in config["subscriptions"]:
        relay.subscribe(**sub)
    relay.start()
    print("ready", flush=True)
    stop.wait()
    relay.close()
    stats = relay.stats()
    client.close()
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
