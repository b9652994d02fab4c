"""The embedded default's filesystem broker hands a worker whole messages only (spacedock/broker.py)."""

import threading
from queue import Empty, SimpleQueue

import pytest
from kombu import Connection

from spacedock import broker
from spacedock.broker import Transport

pytestmark = pytest.mark.fast


def channel(transport, folder):
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    options["control_folder"] = str(folder / "control")  # else kombu writes exchanges to ./control
    return Connection("filesystem://", transport=transport, transport_options=options).channel()


def race(transport, folder) -> tuple[list, list]:
    """A web process queues large messages while a worker takes them as fast as it can."""
    producer, consumer = channel(transport, folder), channel(transport, folder)
    count, body = 40, "x" * 2_000_000  # a build's message is small; large ones widen the window
    got, errors, done = [], [], threading.Event()

    def take():
        while not done.is_set() or len(got) + len(errors) < count:
            try:
                got.append(consumer._get("builds")["n"])
            except Empty:
                pass
            except Exception as exc:  # what stops a worker: "Unrecoverable error"
                errors.append(exc)
            if len(got) + len(errors) >= count:
                return

    worker = threading.Thread(target=take)
    worker.start()
    for n in range(count):
        producer._put("builds", {"n": n, "body": body})
    done.set()
    worker.join(60)
    return got, errors


def test_a_worker_never_takes_a_message_before_it_is_whole(tmp_path):
    # With kombu's transport as it ships (filesystem.Transport) the same race handed the worker an
    # empty file in 24 of 26 runs here: JSONDecodeError, the error that stops a Celery worker.
    got, errors = race(Transport, tmp_path)
    assert errors == [] and sorted(got) == list(range(40))
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_an_idle_worker_takes_a_message_when_it_arrives_not_at_its_next_look(tmp_path, monkeypatch):
    """With looks an hour apart, only the message's arrival (inotify) wakes the worker: without
    it, the worker below would take the build an hour late, and the test would fail at 30 s."""
    monkeypatch.setattr(broker, "UNWATCHED_LOOK_SECONDS", 3600)
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control"),
        "polling_interval": 3600,
    }
    worker = Connection("filesystem://", transport=Transport, transport_options=options)
    taken = SimpleQueue()

    def work():
        message = worker.SimpleQueue("builds").get(timeout=3600)  # idle when the build is queued
        message.ack()
        taken.put(message.payload)

    threading.Thread(target=work, daemon=True).start()
    with Connection("filesystem://", transport=Transport, transport_options=options) as web:
        threading.Event().wait(0.5)  # the worker has looked, found nothing, and waits
        web.SimpleQueue("builds").put({"build": 7})
        assert taken.get(timeout=30) == {"build": 7}
