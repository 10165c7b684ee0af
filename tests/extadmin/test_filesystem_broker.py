"""The embedded broker (``filesystem://``) never lets a consumer take a message before it is whole.

kombu's own transport created the message file under the name consumers take, then wrote it: an
agent polling its queue in between took an empty file and the nudge was lost. Real folders, a real
kombu connection; a thread lists the folder the whole time the messages are written, as a
consumer would.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection
from kombu.utils.json import dumps

from extadmin.filesystem_broker import WAIT_SECONDS, Transport

pytestmark = pytest.mark.dbless

QUEUE = "node.fs-broker-test"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def _connection(folder: Path) -> Connection:
    return Connection("filesystem://", transport_options={
        "data_folder_in": str(folder), "data_folder_out": str(folder), "control_folder": str(folder / "control"),
        "store_processed": False,
    })


def test_a_message_appears_in_the_queue_folder_only_whole(tmp_path: Path) -> None:
    (tmp_path / "control").mkdir()
    conn = _connection(tmp_path)
    assert isinstance(conn.transport, Transport)  # extadmin.celery made it filesystem://'s transport
    channel = conn.channel()
    payload = {"body": "x" * (16 * 1024 * 1024)}  # written in many milliseconds: a wide window
    whole = len(dumps(payload))
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:  # what a consumer listing the folder finds under a name it takes
        while not done.is_set():
            for name in os.listdir(tmp_path):
                if name.endswith(f".{QUEUE}.msg"):
                    try:
                        seen.append((tmp_path / name).stat().st_size)
                    except FileNotFoundError:
                        continue

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(3):
            channel._put(QUEUE, payload)
    finally:
        done.set()
        watcher.join()
    assert seen and set(seen) == {whole}, f"sizes seen: {sorted(set(seen))[:5]}, whole: {whole}"
    # Each is read back whole, in order; nothing else is left in the folder.
    assert [channel._get(QUEUE) for _ in range(3)] == [payload] * 3
    assert _files(tmp_path) == []
    conn.release()


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "control").mkdir()
    conn = _connection(tmp_path)
    channel = conn.channel()
    with pytest.raises(TypeError):  # a payload that cannot be encoded: refused before any file exists
        channel._put(QUEUE, {"body": object()})
    assert _files(tmp_path) == []
    conn.release()


def test_a_file_that_is_not_a_message_is_dropped_with_a_warning_and_the_next_one_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kombu's own transport raised, and an agent's worker stopped on an "unrecoverable error"."""
    (tmp_path / "control").mkdir()
    (tmp_path / f"0_a.{QUEUE}.msg").write_bytes(b"")  # empty, as a half-written one was
    (tmp_path / f"0_b.{QUEUE}.msg").write_bytes(b"{not json")
    conn = _connection(tmp_path)
    channel = conn.channel()
    channel._put(QUEUE, {"body": "hello"})
    with caplog.at_level(logging.WARNING, logger="extadmin.filesystem_broker"):
        assert channel._get(QUEUE) == {"body": "hello"}
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"the embedded broker dropped a file in queue {QUEUE} that is not a message"
    ] * 2
    with pytest.raises(Empty):
        channel._get(QUEUE)
    assert _files(tmp_path) == []
    conn.release()


def test_a_wait_for_a_message_gives_the_loop_back_within_a_quarter_second(tmp_path: Path) -> None:
    """Celery's loop for this transport (the agent's solo pool) asks for 2 s at a time and hears a
    warm shutdown only between two waits, then waits once more: an agent took 2-5 s to stop on
    SIGTERM. Each wait now ends after at most ``WAIT_SECONDS``; waiting for ever stays for ever."""
    (tmp_path / "control").mkdir()
    conn = _connection(tmp_path)
    queue = conn.SimpleQueue(QUEUE)  # a consumer on the queue, as the agent's worker has
    try:
        t0 = time.monotonic()
        with pytest.raises(socket.timeout):
            conn.drain_events(timeout=2.0)
        waited = time.monotonic() - t0
        assert WAIT_SECONDS <= waited < 1.0, waited
        queue.put({"nudge": 1})
        assert queue.get(timeout=2.0).payload == {"nudge": 1}  # a message still arrives
    finally:
        queue.close()
        conn.release()


def test_queues_bound_at_once_on_a_fresh_folder_all_reach_the_exchanges_table(tmp_path: Path) -> None:
    """Agents starting together on a fresh var/ each bind their queue to the same exchange: kombu
    created the exchange's table empty and wrote it only after taking its lock, and a bind in
    between read the empty file (JSONDecodeError: that agent's worker did not start; found by CI)."""
    rounds, binders = 30, 6
    failures: list[str] = []
    for n in range(rounds):
        folder = tmp_path / f"round-{n}"
        folder.mkdir()
        start = threading.Barrier(binders)

        def bind(i: int, folder: Path = folder, start: threading.Barrier = start, n: int = n) -> None:
            channel = _connection(folder).channel()
            channel.exchange_declare("nudges", type="direct")
            channel.queue_declare(f"node.r{n}n{i}")  # names of its own: kombu keeps bindings per process
            start.wait()
            try:
                channel.queue_bind(f"node.r{n}n{i}", exchange="nudges", routing_key=f"node.r{n}n{i}")
            except Exception as exc:
                failures.append(f"round {n}, binder {i}: {exc!r}")

        threads = [threading.Thread(target=bind, args=(i,)) for i in range(binders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        table = _connection(folder).channel().get_table("nudges")
        assert sorted(q.queue for q in table) == sorted(f"node.r{n}n{i}" for i in range(binders)) or failures, table
    assert failures == []
