"""``python -m pylazer_sync.simulator``: run a simulator until interrupted.

It prints its stream URL, REST URL and trusted signer identities, then serves. Faults can
be injected from standard input, one command per line (``help`` lists them), so a
benchmark or a manual test can drop, stall or flood a running endpoint.

:func:`add_arguments` and :func:`serve` let the ``pylazer-sync simulate`` command reuse the
same options and behaviour.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TextIO

from .faults import GARBAGE_KINDS
from .flood import FLOOD_STAMPS
from .simulator import Simulator

_COMMANDS = """commands (one per line on standard input):
  status                         connections and counters
  drop [abrupt]                  drop every connection (clean close, or TCP reset)
  stall [CONN]                   stop sending (and reading) on one or every connection
  resume [CONN]                  end a stall
  delay CONN|all SECONDS         delay every frame of a connection (0 ends it)
  refuse [SECONDS] [close|503]   refuse new connections (for SECONDS, or until accept)
  accept                         accept new connections again
  garbage KIND [CONN]            send a malformed frame; KIND: {kinds}
  flood [RATE_HZ]                flood mode (as fast as possible, or RATE_HZ per subscription)
  noflood                        back to normal ticks
  restart                        stop and start again on the same port
  quit                           stop the simulator and exit""".format(
    kinds=", ".join(GARBAGE_KINDS)
)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or 'max', got {text}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 or 'max', got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to a parser (shared with ``pylazer-sync simulate``)."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=_port, default=0, help="WebSocket port; 0 picks a free one (default: 0)"
    )
    parser.add_argument(
        "--token",
        default=None,
        help="require 'Authorization: Bearer TOKEN' (HTTP 401 otherwise); default: no auth",
    )
    parser.add_argument(
        "--seed",
        default="0",
        help="seed of prices and signing keys; same seed, same bytes (default: %(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=1000.0,
        metavar="HZ",
        help="tick rate of the real_time channel (default: %(default)s Hz)",
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between WebSocket pings; 0 sends none (default: %(default)s)",
    )
    rest = parser.add_mutually_exclusive_group()
    rest.add_argument(
        "--rest-port",
        type=_port,
        default=0,
        help="port of the REST endpoints; 0 picks a free one (default: 0)",
    )
    rest.add_argument("--no-rest", action="store_true", help="do not serve the REST endpoints")
    parser.add_argument(
        "--flood",
        action="store_true",
        help="flood mode: send updates as fast as clients take them (benchmarks)",
    )
    parser.add_argument(
        "--flood-rate",
        type=_positive_float,
        default=None,
        metavar="HZ",
        help="flood at HZ updates per second per subscription (implies --flood)",
    )
    parser.add_argument(
        "--flood-ring",
        type=_positive_int,
        default=200_000,
        metavar="FRAMES",
        help="distinct frames an unlimited flood goes round (default: %(default)s)",
    )
    parser.add_argument(
        "--flood-max-lead",
        type=int,
        default=20_000,
        metavar="FRAMES",
        help="frames a connection of an unlimited flood may run ahead of the slowest; "
        "0: no bound (default: %(default)s)",
    )
    parser.add_argument(
        "--flood-stamp",
        choices=FLOOD_STAMPS,
        default="schedule",
        help="timestamps of a flood at a rate: the ticks' nominal times, or the wall-clock "
        "time at which each frame is sent (latency measurements) (default: %(default)s)",
    )
    parser.add_argument(
        "--replay",
        metavar="PATH",
        default=None,
        help="serve a recording (Parquet or jsonl file or directory, e.g. from 'pylazer-sync "
        "record') instead of the market model: subscriptions that ask for what was recorded "
        "receive its frames, signed envelopes byte for byte",
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="1|10|max",
        help="replay this many times faster than recorded, or 'max': as fast as each "
        "connection takes the frames (default: 1, the original pacing)",
    )
    parser.add_argument(
        "--loop", action="store_true", help="replay the recording again when it ends, for ever"
    )
    parser.add_argument(
        "--no-control",
        action="store_true",
        help="ignore standard input (by default it takes fault commands, see below)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: %(default)s)",
    )


def build_arg_parser() -> argparse.ArgumentParser:
    """The command line parser of ``python -m pylazer_sync.simulator``."""
    parser = argparse.ArgumentParser(
        prog="python -m pylazer_sync.simulator",
        description=(
            "Run a local Pyth Lazer endpoint: the production WebSocket protocol at "
            "ws://HOST:PORT/v1/stream, REST endpoints, deterministic prices and real "
            "signatures. Prints its URLs and trusted signer identities, then serves "
            "until interrupted (Ctrl-C)."
        ),
        epilog=_COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def simulator_from_args(args: argparse.Namespace) -> Simulator:
    """A (not yet started) simulator configured from parsed options."""
    seed: int | str = int(args.seed) if args.seed.lstrip("-").isdigit() else args.seed
    return Simulator(
        args.host,
        args.port,
        token=args.token,
        seed=seed,
        rate_hz=args.rate,
        ping_interval=args.ping_interval if args.ping_interval > 0 else None,
        rest_port=None if args.no_rest else args.rest_port,
        flood=args.flood or args.flood_rate is not None,
        flood_rate_hz=args.flood_rate,
        flood_ring=args.flood_ring,
        flood_max_lead=args.flood_max_lead if args.flood_max_lead > 0 else None,
        flood_stamp=args.flood_stamp,
        replay=args.replay,
        replay_speed=args.speed,
        replay_loop=args.loop,
    )


def describe(sim: Simulator) -> str:
    """The start banner: URLs and trusted signer identities."""
    lines = [f"stream: {sim.url}"]
    if sim.rest_url is not None:
        lines.append(f"rest: {sim.rest_url}")
    lines += [
        f"token: {'required' if sim.token is not None else 'none (anyone may connect)'}",
    ]
    if sim.replay is not None:
        speed = "max" if sim.replay_speed is None else f"{sim.replay_speed:g}x"
        loop = ", looping" if sim.replay_loop else ""
        lines.append(
            f"replay: {sim.replay.source}, {sim.replay.frame_count} frames, speed {speed}{loop}"
        )
        lines.append(f"recorded subscriptions: {sim.replay.describe()}")
        lines += [f"{kind} signer (recorded): {who}" for kind, who in sim.trusted_signers().items()]
        return "\n".join(lines)
    lines += [
        f"solana signer (ed25519 public key): {sim.solana_public_key.hex()}",
        f"evm signer (address): {sim.evm_address}",
        f"leEcdsa signer (compressed secp256k1 key): {sim.le_ecdsa_public_key.hex()}",
    ]
    return "\n".join(lines)


def _conn(arg: str | None) -> int | None:
    return None if arg is None or arg == "all" else int(arg)


def run_command(sim: Simulator, line: str, out: TextIO) -> bool:
    """Execute one control command; returns False when the command is ``quit``."""
    words = line.split()
    if not words:
        return True
    cmd, args = words[0].lower(), words[1:]
    arg = args[0] if args else None
    actions: dict[str, Callable[[], Any]] = {
        "status": lambda: (sim.stats(), [c.conn_id for c in sim.connections()]),
        "drop": lambda: sim.drop_all(abrupt=arg == "abrupt"),
        "stall": lambda: sim.stall(_conn(arg)),
        "resume": lambda: sim.resume(_conn(arg)),
        "delay": lambda: sim.delay_connection(_conn(arg), float(args[1])),
        "refuse": lambda: sim.refuse_connections(
            float(arg) if arg is not None and arg not in ("close", "503") else None,
            "503" if "503" in args else "close",
        ),
        "accept": sim.accept_connections,
        "garbage": lambda: sim.send_garbage(
            arg,  # type: ignore[arg-type]  # checked by the simulator
            _conn(args[1] if len(args) > 1 else None),
        ),
        "flood": lambda: sim.flood(float(arg) if arg is not None else None),
        "noflood": sim.stop_flood,
        "restart": sim.restart,
    }
    if cmd in ("quit", "exit"):
        return False
    if cmd == "help":
        print(_COMMANDS, file=out, flush=True)
        return True
    action = actions.get(cmd)
    if action is None:
        print(f"unknown command {cmd!r}; try 'help'", file=out, flush=True)
        return True
    try:
        result = action()
    except (ValueError, IndexError, TypeError, RuntimeError) as exc:
        print(f"error: {exc}", file=out, flush=True)
    else:
        print(f"ok: {result}" if result is not None else "ok", file=out, flush=True)
    return True


def _stdin_is_ours() -> bool:
    """Whether reading standard input is safe: not closed, and not a terminal that
    belongs to another process group (reading it from the background would stop us)."""
    if sys.stdin is None or sys.stdin.closed:
        return False
    try:
        if sys.stdin.isatty():
            return os.getpgrp() == os.tcgetpgrp(sys.stdin.fileno())
    except (OSError, ValueError):
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until Ctrl-C, SIGTERM, end of input or ``quit``; returns 0, or 1
    (with one error line) if it cannot listen."""
    parser = build_arg_parser()
    try:
        return serve(parser.parse_args(argv))
    except OSError as exc:  # e.g. the port is in use, or --host is no address of ours
        print(f"{parser.prog}: error: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1


def serve(args: argparse.Namespace) -> int:
    """Run a simulator configured by parsed options (see :func:`add_arguments`) until
    Ctrl-C, SIGTERM, end of input or ``quit``; returns 0."""
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sim = simulator_from_args(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        sim.start()
        # A process of our own: move what exists now out of the garbage collector's
        # sight, so that full collections (pauses of ~10 ms) stay rare and short.
        gc.freeze()
        print(describe(sim), flush=True)
        if not args.no_control and _stdin_is_ours():
            # Commands are read on a helper thread so that the main thread stays free for
            # signals; end of input is no reason to stop (`... < /dev/null &` serves on).
            def control() -> None:
                for line in sys.stdin:
                    if not run_command(sim, line, sys.stdout):
                        stop.set()
                        return

            threading.Thread(target=control, name="simulator-control", daemon=True).start()
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
