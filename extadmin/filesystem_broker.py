"""The embedded broker: kombu's filesystem transport, with every message whole before it is seen.

kombu's own ``Channel._put`` creates a message's file under its final name, then writes it. A
consumer that lists the queue folder in between (an agent polls it every 0.2 s) moves the file away
while it is still empty or half written, cannot decode it, and the message is gone: a nudge lost
that way leaves the node waiting for its periodic pass. Here the message is written under a name
no queue matches (a leading dot: kombu takes ``<time>_<uuid>.<queue>.msg`` only) and renamed to
its final name once complete; a rename within one folder is atomic, so a consumer sees no file or
the whole message. ``extadmin.celery`` makes this the transport of ``filesystem://``.

An exchange's table (``control/<exchange>.exchange``, which queues it routes to) is created whole
too. kombu created it empty and only then locked and wrote it: a second process binding a queue
(agents starting together on a fresh ``var/``) or publishing in between read an empty file, and
the agent's worker stopped on the ``JSONDecodeError``.

A file in the queue folder that is not a message (copied there by hand, or left by a writer of an
earlier release) is dropped with a warning naming its queue; kombu's own raised, and the agent's
worker stopped on an "unrecoverable error", so its node heard no nudge any more.
"""
from __future__ import annotations

import contextlib
import logging
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

log = logging.getLogger(__name__)


def message_name(queue: str) -> str:
    """The file name kombu's consumer takes for ``queue``, in the order it takes them (time first)."""
    return f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"


class Channel(filesystem.Channel):
    # As kombu.transport.filesystem.Channel._put, whose signature already differs from its own base's.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        data = str_to_bytes(dumps(payload))  # a payload that cannot be encoded: no file at all
        folder = self.data_folder_out
        final = os.path.join(folder, message_name(queue))
        partial = os.path.join(folder, f".{uuid.uuid4()}.partial")
        try:
            with open(partial, "wb", buffering=0) as f:
                f.write(data)
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _queue_bind(self, exchange: Any, routing_key: Any, pattern: Any, queue: Any) -> None:
        table = self._exchange_file(exchange)
        if not table.exists():  # created whole (a link fails if it exists: the first one wins)
            self.control_folder.mkdir(exist_ok=True)
            empty = table.with_name(f".{uuid.uuid4()}.partial")
            empty.write_bytes(str_to_bytes(dumps([])))
            try:
                os.link(empty, table)
            except FileExistsError:
                pass
            finally:
                empty.unlink()
        super()._queue_bind(exchange, routing_key, pattern, queue)  # reads and updates it under its lock

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        while True:  # each file is taken out of the folder before it is read: this ends
            try:
                return super()._get(queue)
            except ValueError as exc:  # not JSON: no message (kombu raises Empty when none is left)
                log.warning("the embedded broker dropped a file in queue %s that is not a message: %s", queue, exc)


# Celery's loop for a transport without an event loop (``synloop``: the agent's solo pool on this
# broker) waits up to 2 s for a message at a time and, once a warm shutdown is asked, waits once
# more before it stops: an agent took 2-5 s to stop on SIGTERM (every Ctrl-C of scripts/run, every
# cluster test's teardown). Shorter waits only make the loop ask again; a message still arrives
# at the next poll of its folder.
WAIT_SECONDS = 0.25


class Transport(filesystem.Transport):
    Channel = Channel

    # As kombu.transport.virtual.base.Transport.drain_events, whose signature already differs from its own base's.
    def drain_events(self, connection: Any, timeout: Any = None) -> Any:  # type: ignore[override]
        if timeout is not None:  # None (wait for a message, however long) keeps its meaning
            timeout = min(timeout, WAIT_SECONDS)
        return super().drain_events(connection, timeout=timeout)
