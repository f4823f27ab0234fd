"""The ``pylazer-sync`` command line, run as a user would (``python -m pylazer_sync``)
against simulators on loopback sockets."""

from __future__ import annotations

import io
import json
import re
import sys
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from cli_support import cli, listening_port, refusing_port, running

import pylazer_sync as pl
from pylazer_sync import cli as cli_module
from pylazer_sync.frames import read_jsonl
from pylazer_sync.protocol import FeedUpdate, Payload, SolanaMessage
from pylazer_sync.simulator import Simulator

TOKEN = "cli-secret-7d41e0"  # distinctive, so a leak is easy to spot
ERROR_LINE = re.compile(r"^pylazer-sync: error: \S.*$")


@pytest.fixture(scope="module")
def sims() -> Iterator[list[Simulator]]:
    """Two simulators with the same seed (redundant endpoints), no token."""
    started = [Simulator(seed=11).start(), Simulator(seed=11).start()]
    yield started
    for sim in started:
        sim.stop()


@pytest.fixture(scope="module")
def locked() -> Iterator[Simulator]:
    """A simulator that wants a token."""
    with Simulator(seed=11, token=TOKEN) as sim:
        yield sim


def endpoints(sims: list[Simulator]) -> list[str]:
    out = []
    for sim in sims:
        out += ["--endpoint", sim.url]
    return out


def assert_one_error_line(stderr: str, *needles: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert ERROR_LINE.match(lines[0]), stderr
    for needle in needles:
        assert needle in lines[0], stderr
    assert "Traceback" not in stderr


# -- help and bad arguments ------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([], ["stream", "demo", "simulate", "symbols", "latest", "exit status"]),
        (["stream"], ["--endpoint", "--feeds", "--symbols", "--count", "--output", "--verify"]),
        (["demo"], ["--seconds", "--simulators"]),
        (["simulate"], ["--port", "--seed", "--token", "--flood"]),
        (["symbols"], ["--query", "--asset-type", "--rest-url"]),
        (["latest"], ["--feeds", "--symbols", "--at", "--rest-url"]),
    ],
)
def test_help_for_every_command(command: list[str], expected: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: pylazer-sync")
    for option in expected:
        assert option in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["stream"],
        ["stream", "--feeds", "x"],
        ["stream", "--feeds", "1", "--symbols", "Crypto.BTC/USD"],
        ["stream", "--feeds", "1", "--channel", "fixed_rate@3ms"],
        ["stream", "--feeds", "1", "--properties", "price,nonsense"],
        ["stream", "--feeds", "1", "--formats", "bitcoin"],
        ["stream", "--feeds", "1", "--count", "0"],
        ["stream", "--feeds", "1", "--verify", "--trusted-signer", "abcd"],
        ["latest", "--feeds", "1", "--at", "yesterday"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # argparse's own errors, in process: they happen before any socket is opened. One
    # line, as every other error (no usage block), that says where the rest is.
    with pytest.raises(SystemExit) as exc:
        cli_module.main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert_one_error_line(captured.err, "--help')")
    assert captured.out == ""


@pytest.mark.parametrize("value", ["-1", "x", str(2**32), "1,,-2"])
def test_a_bad_feed_id_says_what_a_feed_id_is(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli_module.main(["stream", "--feeds", value])
    assert_one_error_line(capsys.readouterr().err, "integers from 0 to 4294967295")


def test_feed_ids_up_to_2_32_minus_1_are_feed_ids(sims: list[Simulator]) -> None:
    # The largest u32 passes the command line; the server then says it knows no such feed.
    result = cli("stream", "--endpoint", sims[0].url, "--feeds", str(2**32 - 1), "--count", "1")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "refused the subscription", str(2**32 - 1))


@pytest.mark.parametrize("command", ["stream", "latest"])
def test_an_endpoint_without_scheme_is_named_before_the_token(command: str) -> None:
    # No token anywhere: the URL is what is wrong, and said first.
    result = cli(command, "--endpoint", "127.0.0.1:8765", "--feeds", "1")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "'127.0.0.1:8765' is not a ws:// or wss:// URL")
    assert "TOKEN" not in result.stderr


def test_bad_arguments_found_after_parsing_exit_2_with_one_line() -> None:
    # Caught by the library's validation (the token would travel in clear text).
    result = cli("stream", "--feeds", "1", "--token", TOKEN, "--endpoint", "ws://example.com/x")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "ws://example.com/x", "clear text")
    assert TOKEN not in result.stdout + result.stderr
    # --trusted-signer without --verify would silently check nothing.
    key = "11" * 32
    result = cli(
        "stream", "--feeds", "1", "--endpoint", "ws://127.0.0.1:1", "--trusted-signer", key
    )
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "--verify")


def test_no_token_for_a_remote_endpoint_is_a_clear_error() -> None:
    result = cli("stream", "--feeds", "1")  # production endpoints, no token anywhere
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "PYTH_LAZER_TOKEN")


# -- demo ----------------------------------------------------------------------------------


def test_demo_streams_verified_prices_and_exits_0() -> None:
    started = time.monotonic()
    result = cli("demo", "--seconds", "2")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    out = result.stdout
    assert "3 local simulators" in out and "4 connections" in out
    rows = [line for line in out.splitlines() if re.match(r"^\d\d:\d\d:\d\d\.\d{3}  ", line)]
    assert rows, out
    for symbol in ("Crypto.BTC/USD", "Crypto.ETH/USD", "Crypto.SOL/USD"):
        assert any(symbol in row for row in rows), out
    for row in rows:
        assert row.endswith("verified"), row
        price = Decimal(row.split()[2])
        assert price > 0 and price.as_tuple().exponent == -8  # a real value, not a mantissa
    assert "FAILED" not in out + result.stderr
    stats = re.search(
        r"stats: (\d+) updates, \d+ unique frames, (\d+) duplicates dropped, "
        r"frames per connection ([\d/]+), (\d+) of (\d+) updates verified",
        out,
    )
    assert stats, out
    updates, duplicates, per_connection, ok, checked = stats.groups()
    assert int(updates) == len(rows) // 3 == int(ok) == int(checked) > 0
    assert len(per_connection.split("/")) == 4
    assert int(duplicates) > 0  # four connections bring every frame four times


# -- stream ----------------------------------------------------------------------------


def test_stream_table_prints_count_updates_once_each(sims: list[Simulator]) -> None:
    result = cli("stream", *endpoints(sims), "--feeds", "1,2", "--count", "3", "--connections", "3")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.strip().splitlines()
    assert header.split()[:5] == ["time", "(UTC)", "feed", "price", "bid"]
    assert len(rows) == 6  # 3 updates x 2 feeds, duplicates from 3 connections dropped
    assert [row.split()[1] for row in rows] == ["1", "2"] * 3
    times = [row.split()[0] for row in rows[::2]]
    assert len(set(times)) == 3  # three distinct updates, none repeated


def test_stream_table_by_symbols_names_the_feeds_by_symbol(sims: list[Simulator]) -> None:
    result = cli(
        "stream", "--endpoint", sims[0].url, "--symbols", "Crypto.BTC/USD,Crypto.ETH/USD",
        "--count", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    _header, *rows = result.stdout.strip().splitlines()
    assert [row.split()[1] for row in rows] == ["Crypto.BTC/USD", "Crypto.ETH/USD"] * 2
    assert "note" not in result.stderr


def test_stream_jsonl_is_a_faithful_replayable_recording(sims: list[Simulator]) -> None:
    result = cli(
        "stream", *endpoints(sims), "--feeds", "1,6", "--count", "4", "--output", "jsonl",
        "--formats", "solana,evm,leEcdsa", "--delivery", "binary",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    records = [json.loads(line) for line in lines]
    updates = list(read_jsonl(io.StringIO(result.stdout)))
    assert len(updates) == 4
    trusted = sims[0].trusted_signers()
    for record, update in zip(records, updates, strict=True):
        assert [f["feed_id"] for f in record["feeds"]] == [1, 6]
        assert update.timestamp_us == record["timestamp_us"]
        # The recording kept the signed bytes: they verify, and say what the record says.
        assert update.solana is not None and update.evm is not None and update.le_ecdsa
        update.solana.verify(trusted_signers=[trusted["solana"]])
        update.evm.verify(trusted_signers=[trusted["evm"]])
        update.le_ecdsa.verify(trusted_signers=[trusted["leEcdsa"]])
        assert update.solana.decode_payload().feeds == update.feeds
        for feed, obj in zip(update.feeds, record["feeds"], strict=True):
            assert obj["price"] == feed.price
            assert Decimal(obj["real"]["price"]) == feed.real("price")
    stamps = [u.timestamp_us for u in updates]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4


def test_stream_by_symbols_with_seconds(sims: list[Simulator]) -> None:
    result = cli(
        "stream", "--endpoint", sims[0].url, "--symbols", "Crypto.ETH/USD", "--seconds", "1",
        "--output", "jsonl", "--channel", "fixed_rate@50ms", "--properties", "price,exponent",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) >= 3  # about 20 in a second; a loaded machine still gets a few
    for record in records:
        (feed,) = record["feeds"]
        assert feed["feed_id"] == 2 and set(feed) == {"feed_id", "price", "exponent", "real"}


def test_stream_verify_against_the_trusted_signers(sims: list[Simulator]) -> None:
    signers = sims[0].trusted_signers()
    trusted = [arg for key in signers.values() for arg in ("--trusted-signer", key)]
    result = cli(
        "stream", *endpoints(sims), "--feeds", "1", "--count", "3", "--verify", *trusted,
        "--formats", "solana,evm,leEcdsa",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "verify: 3 updates checked against the trusted signers, 0 failed" in result.stderr
    assert "FAILED" not in result.stderr


def test_stream_verify_without_trusted_signers_reports_who_signed(sims: list[Simulator]) -> None:
    result = cli(
        "stream", "--endpoint", sims[0].url, "--feeds", "1", "--count", "2", "--verify",
        "--formats", "solana,evm",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    signers = sims[0].trusted_signers()
    assert f"valid signatures by solana {signers['solana']}, evm {signers['evm']}" in result.stderr
    assert "2 updates checked (validity only), 0 failed" in result.stderr


def test_stream_verify_fails_for_an_untrusted_signer(sims: list[Simulator]) -> None:
    other = Simulator(seed="someone else")  # not started: only its keys are needed
    result = cli(
        "stream", "--endpoint", sims[0].url, "--feeds", "1", "--count", "2", "--verify",
        "--formats", "solana,evm", "--trusted-signer", other.trusted_signers()["solana"],
        "--trusted-signer", sims[0].evm_address,
    )  # fmt: skip
    assert result.returncode == 5
    failures = [line for line in result.stderr.splitlines() if line.startswith("verify: FAILED")]
    assert len(failures) == 2
    for line in failures:
        assert f"untrusted key {sims[0].solana_public_key.hex()}" in line
        assert "evm" not in line  # the EVM signer is trusted: only Solana failed
    assert "2 updates checked against the trusted signers, 2 failed" in result.stderr
    assert len(result.stdout.strip().splitlines()) == 3  # the values are still shown


def test_verifier_catches_bad_signatures_and_unsigned_values(sims: list[Simulator]) -> None:
    # In process, on a real update: what the CLI's --verify must refuse.
    with pl.LazerClient(TOKEN, endpoints=[sims[0].url], num_connections=1) as client:
        client.subscribe(price_feed_ids=[1], properties=["price", "exponent"], formats=["solana"])
        update = next(m for m in client if isinstance(m, pl.StreamUpdate))
    assert update.solana is not None and update.parsed is not None
    report = io.StringIO()
    verifier = cli_module.Verifier([("solana", sims[0].solana_public_key)], report)
    assert verifier.check(update) == []
    flipped = bytearray(update.solana.payload)
    flipped[-1] ^= 1
    forged = SolanaMessage(update.solana.signature, update.solana.public_key, bytes(flipped))
    assert verifier.check(pl.StreamUpdate(1, update.parsed, solana=forged)) != []
    # A valid signature, but the values shown (parsed) are not the signed ones.
    feed = update.parsed.feeds[0]
    assert feed.price is not None
    lying = Payload(
        update.parsed.timestamp_us, [FeedUpdate(feed.feed_id, price=feed.price + 1, exponent=-8)]
    )
    failures = verifier.check(pl.StreamUpdate(1, lying, solana=update.solana))
    assert failures == ["solana: the signed payload differs from the values shown"]
    assert verifier.check(pl.StreamUpdate(1, update.parsed)) != []  # nothing signed at all
    assert (verifier.checked, verifier.failed) == (4, 3)
    assert report.getvalue().count("verify: FAILED") == 3


def test_stream_refused_subscription_exits_2(sims: list[Simulator]) -> None:
    result = cli("stream", "--endpoint", sims[0].url, "--feeds", "987654", "--count", "1")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "refused the subscription", "987654")


def test_bad_token_exits_3_without_showing_it(locked: Simulator) -> None:
    wrong = "wrong-" + TOKEN
    for how in (["--token", wrong], []):
        result = cli(
            "stream", "--endpoint", locked.url, "--feeds", "1", "--count", "1", *how,
            PYTH_LAZER_TOKEN=wrong,
        )  # fmt: skip
        assert result.returncode == 3, result.stderr
        assert_one_error_line(result.stderr, "refused the access token")
        assert wrong not in result.stdout + result.stderr
        assert TOKEN not in result.stdout + result.stderr


def test_right_token_from_the_environment_streams(locked: Simulator) -> None:
    result = cli(
        "stream", "--endpoint", locked.url, "--feeds", "1", "--count", "1", "--stats",
        PYTH_LAZER_TOKEN=TOKEN,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert '"unique": ' in result.stderr  # the --stats line
    assert TOKEN not in result.stdout + result.stderr


def test_unreachable_endpoint_exits_4_quickly() -> None:
    with refusing_port() as port:
        url = f"ws://127.0.0.1:{port}/v1/stream"
        started = time.monotonic()
        result = cli("stream", "--endpoint", url, "--feeds", "1", "--connect-timeout", "1")
        elapsed = time.monotonic() - started
    assert result.returncode == 4
    assert_one_error_line(result.stderr, "no connection opened within 1.0 s", url)
    assert elapsed < 30  # 1 s of trying plus interpreter start-up, on a loaded machine


def test_seconds_bounds_the_whole_run_connecting_included() -> None:
    # A dead endpoint: --seconds 1 gives up connecting after 1 s, not after the 30 s
    # --connect-timeout (the message says which bound ended it).
    with refusing_port() as port:
        url = f"ws://127.0.0.1:{port}/v1/stream"
        result = cli("stream", "--endpoint", url, "--feeds", "1", "--seconds", "1")
    assert result.returncode == 4
    assert_one_error_line(result.stderr, "no connection opened within 1.0 s", url)


def test_sigterm_ends_a_stream_like_ctrl_c_with_stats(sims: list[Simulator]) -> None:
    args = [sys.executable, "-m", "pylazer_sync", "stream", "--endpoint", sims[0].url]
    with running([*args, "--feeds", "1", "--stats"]) as proc:
        proc.wait_for_line(lambda line: line.split()[1:2] == ["1"])  # a price row
        status, err = proc.terminate()
    assert status == 143, err
    lines = err.strip().splitlines()
    assert lines[-1] == "pylazer-sync: terminated", err
    stats = json.loads(lines[-2].removeprefix("stats: "))
    assert stats["unique"] >= 1
    assert "Traceback" not in err


def test_ctrl_c_ends_a_stream_with_130_and_no_traceback(sims: list[Simulator]) -> None:
    args = [sys.executable, "-m", "pylazer_sync", "stream", "--endpoint", sims[0].url]
    with running([*args, "--feeds", "1"]) as proc:
        proc.wait_for_line(lambda line: line.split()[1:2] == ["1"])  # a price row
        status, err = proc.interrupt()
    assert status == 130
    assert "interrupted" in err and "Traceback" not in err


# -- REST: symbols and latest --------------------------------------------------------------


def test_symbols_table_and_jsonl(sims: list[Simulator]) -> None:
    rest = sims[0].rest_url
    assert rest is not None
    result = cli("symbols", "--history-url", rest, "--query", "btc")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()[1:]
    expected = sims[0].catalogue.search(query="btc")
    assert [int(row.split()[0]) for row in rows] == [f.feed_id for f in expected]
    assert any("Crypto.BTC/USD" in row for row in rows)
    assert f"{len(expected)} feeds" in result.stderr

    result = cli("symbols", "--history-url", rest, "--asset-type", "fx", "--output", "jsonl")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    fx = sims[0].catalogue.search(asset_type="fx")
    assert fx and [e["pyth_lazer_id"] for e in entries] == [f.feed_id for f in fx]
    assert {e["asset_type"] for e in entries} == {"fx"}


def test_symbols_history_url_derives_from_the_endpoint_host(sims: list[Simulator]) -> None:
    # --endpoint alone: the REST URLs are the endpoint's host and port, where the
    # simulator answers REST too (as production answers on its stream hosts).
    result = cli("symbols", "--endpoint", sims[0].url, "--query", "eth", "--output", "jsonl")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    expected = sims[0].catalogue.search(query="eth")
    assert expected and [e["pyth_lazer_id"] for e in entries] == [f.feed_id for f in expected]


def test_latest_finds_rest_from_the_endpoint(sims: list[Simulator]) -> None:
    result = cli("latest", "--endpoint", sims[1].url, "--feeds", "2", "--output", "jsonl")
    assert result.returncode == 0, result.stderr
    (update,) = read_jsonl(io.StringIO(result.stdout))
    assert [f.feed_id for f in update.feeds] == [2]
    assert update.feeds[0].price == sims[1].market.feed_update(2, update.timestamp_us).price


def test_a_history_url_without_scheme_is_a_usage_error() -> None:
    result = cli("symbols", "--history-url", "history.example.com")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "is not a http:// or https:// URL")


def test_latest_with_verify_and_jsonl(sims: list[Simulator]) -> None:
    rest = sims[0].rest_url
    assert rest is not None
    result = cli(
        "latest", "--rest-url", rest, "--feeds", "1,2", "--output", "jsonl", "--verify",
        "--formats", "solana", "--trusted-signer", sims[0].solana_public_key.hex(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (update,) = read_jsonl(io.StringIO(result.stdout))
    assert [f.feed_id for f in update.feeds] == [1, 2]
    assert update.solana is not None
    update.solana.verify(trusted_signers=[sims[0].solana_public_key])
    now_us = time.time_ns() // 1000
    assert update.timestamp_us is not None and abs(now_us - update.timestamp_us) < 60_000_000
    assert "1 updates checked against the trusted signers, 0 failed" in result.stderr


def test_latest_at_a_time_and_by_symbol(sims: list[Simulator]) -> None:
    rest = sims[0].rest_url
    assert rest is not None
    result = cli(
        "latest", "--rest-url", rest, "--symbols", "Crypto.SOL/USD", "--at",
        "2024-01-02T03:04:05Z", "--output", "jsonl",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (update,) = read_jsonl(io.StringIO(result.stdout))
    at_us = 1704164645 * 1_000_000
    assert update.timestamp_us is not None and 0 <= at_us - update.timestamp_us < 1_000_000
    assert [f.feed_id for f in update.feeds] == [6]
    # The table form of the same answer: a REST answer may be from any day, so with its date.
    result = cli("latest", "--rest-url", rest, "--feeds", "6", "--at", str(at_us))
    assert result.returncode == 0, result.stderr
    _header, row = result.stdout.strip().splitlines()
    assert row.startswith("2024-01-02 03:04:05.") and row.split()[2] == "6"
    # By symbol, the table names the feed by its symbol (from the catalogue, here at the
    # endpoint's host and port); a bare date is midnight UTC.
    result = cli(
        "latest", "--endpoint", sims[0].url, "--symbols", "Crypto.SOL/USD", "--at", "2024-01-02"
    )
    assert result.returncode == 0, result.stderr
    _header, row = result.stdout.strip().splitlines()
    assert row.split()[:3] == ["2024-01-02", "00:00:00.000", "Crypto.SOL/USD"]


def test_rest_errors_exit_3_or_4_in_one_line(locked: Simulator) -> None:
    rest = locked.rest_url
    assert rest is not None
    wrong = "wrong-" + TOKEN
    result = cli("latest", "--rest-url", rest, "--feeds", "1", "--token", wrong)
    assert result.returncode == 3
    assert_one_error_line(result.stderr, "HTTP 401")
    assert wrong not in result.stdout + result.stderr
    with refusing_port() as port:
        result = cli("symbols", "--history-url", f"http://127.0.0.1:{port}", "--timeout", "5")
    assert result.returncode == 4
    assert_one_error_line(result.stderr, f"127.0.0.1:{port}")


# -- simulate ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["--port", "--rest-port", "--host"])
def test_simulate_that_cannot_listen_says_so_in_one_line(where: str) -> None:
    with listening_port() as port:
        value = "no-such-host.invalid" if where == "--host" else str(port)
        result = cli("simulate", where, value, "--no-control", timeout=60)
    assert result.returncode == 1
    role = "REST" if where == "--rest-port" else "stream"
    assert_one_error_line(result.stderr, "cannot listen on", f"({role} port)")
    assert result.stdout == ""


def test_simulate_serves_until_quit() -> None:
    args = [sys.executable, "-m", "pylazer_sync", "simulate", "--seed", "5", "--rate", "100"]
    with running(args, stdin=True) as proc:
        line = proc.wait_for_line(lambda text: text.startswith("stream: "))
        url = line.split()[1]
        result = cli("stream", "--endpoint", url, "--feeds", "1", "--count", "1")
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == 2
        assert proc.proc.stdin is not None
        proc.proc.stdin.write("quit\n")
        proc.proc.stdin.flush()
        assert proc.proc.wait(timeout=30) == 0
