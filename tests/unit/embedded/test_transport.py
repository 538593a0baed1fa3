"""The embedded broker (app.embedded.transport) on a real folder: whole messages, FIFO order."""

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer, Queue

from app.embedded import transport

BIG = 512 * 1024  # a message large enough that writing it takes many system calls


def connect(folder: Path) -> Connection:
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(folder / "control"),
        "polling_interval": 0.01,
    }
    return Connection(f"{transport.SCHEME}://", transport_options=options)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "broker"
    path.mkdir()
    return path


@pytest.fixture
def connection(folder: Path) -> Iterator[Connection]:
    with connect(folder) as conn:
        yield conn


def publish(connection: Connection, queue: str, body: dict[str, Any]) -> None:
    target = Queue(queue, Exchange(queue), routing_key=queue)
    Producer(connection.default_channel).publish(
        body, exchange=target.exchange, routing_key=queue, declare=[target], serializer="json"
    )


def drain(connection: Connection, queues: list[str], count: int, folder: Path | None = None) -> list[dict[str, Any]]:
    """Message bodies from one consumer of `queues`, in the order they arrive, until `count` have
    arrived or, when `folder` is given, been set aside there as torn."""
    received: list[dict[str, Any]] = []
    targets = [Queue(name, Exchange(name), routing_key=name) for name in queues]

    def on_message(body: dict[str, Any], message: Any) -> None:
        received.append(body)
        message.ack()

    with connection.Consumer(targets, callbacks=[on_message], accept=["json"]):
        while len(received) + (len(rejected(folder)) if folder else 0) < count:
            connection.drain_events(timeout=30)
    return received


def rejected(folder: Path) -> list[str]:
    return os.listdir(folder / transport.REJECTED) if (folder / transport.REJECTED).exists() else []


def write_big_messages(folder: str, count: int) -> None:
    with connect(Path(folder)) as conn:
        for index in range(count):
            publish(conn, "training", {"index": index, "blob": "x" * BIG})


def test_a_reader_racing_a_writer_never_gets_a_partial_message(folder: Path, connection: Connection) -> None:
    count = 60
    writer = multiprocessing.get_context("spawn").Process(target=write_big_messages, args=(str(folder), count))
    writer.start()
    try:
        received = drain(connection, ["training"], count, folder)
    finally:
        writer.join(timeout=60)
    assert rejected(folder) == []
    assert [body["index"] for body in received] == list(range(count))
    assert all(len(body["blob"]) == BIG for body in received)


def test_messages_leave_in_the_order_they_were_sent(folder: Path, connection: Connection) -> None:
    for index in range(200):
        publish(connection, "training", {"index": index})
    assert [body["index"] for body in drain(connection, ["training"], 200)] == list(range(200))


def test_order_holds_when_the_clock_stands_still_or_steps_back(
    folder: Path, connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter([5_000, 5_000, 5_000, 4_000, 4_000, 3_000] * 10)
    monkeypatch.setattr(transport.time, "time_ns", lambda: next(clock))
    for index in range(60):
        publish(connection, "training", {"index": index})
    assert [body["index"] for body in drain(connection, ["training"], 60)] == list(range(60))


def test_one_consumer_of_two_queues_gets_their_messages_in_sending_order(connection: Connection) -> None:
    queues = ["training"] * 5 + ["training.gpu"] * 5 + ["training"] * 5
    for index, queue in enumerate(queues):
        publish(connection, queue, {"index": index})
    received = drain(connection, ["training", "training.gpu"], len(queues))
    assert [body["index"] for body in received] == list(range(len(queues)))


def test_a_file_that_is_not_a_message_is_set_aside_and_the_next_one_delivered(
    folder: Path, connection: Connection
) -> None:
    publish(connection, "training", {"index": 1})
    torn = folder / f"{0:020d}_{'0' * 32}.training.msg"  # sorts first; empty, as a torn write left it
    torn.touch()
    assert drain(connection, ["training"], 1) == [{"index": 1}]
    assert rejected(folder) == [torn.name]


def test_a_consumer_is_visible_while_it_consumes(folder: Path, connection: Connection) -> None:
    queues = ("training", "training.gpu")
    consumer = connection.Consumer([Queue(name, Exchange(name), routing_key=name) for name in queues])
    with consumer:
        assert transport.consuming(folder, os.getpid(), queues)
        assert not transport.consuming(folder, os.getpid() + 1, queues)
    assert not transport.consuming(folder, os.getpid(), queues)


def test_an_empty_queue_raises_empty(connection: Connection) -> None:
    with pytest.raises(Empty):
        connection.default_channel._get("training")
