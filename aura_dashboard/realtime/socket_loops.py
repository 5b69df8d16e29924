"""python-engineio's WebSocket handler (its `AsyncSocket._websocket_handler`), holding no task, timer
or `wait_for` while the connection is idle.

python-engineio 4.15 keeps, per WebSocket, a writer task parked in `queue.get()` under
`wait_for` and reads each message through `asyncio.wait_for(ensure_future(...))`: two tasks,
their coroutines, waiters, timers and callbacks, alive as long as the connection is idle.
Here:
- **Writing**: `QueueWriter` writes the socket's queued packets from a task that exists only
  while packets are waiting: the queue (a `LeanQueue`) calls `QueueWriter.wake` on every put,
  which starts the task unless one is at work; the task writes each packet as its own frame,
  in queue order (as python-engineio's writer writes what its `poll()` returns: the packets
  before a `None`, which ends the connection), and ends when the queue is empty. An idle socket has no writer task at all,
  which is what the broadcast fast path reads as "nothing of its own in flight"
  (`QueueWriter.idle`).
- **Reading**: the message is awaited itself, with no timeout around each read. The
  deadline python-engineio puts on every read (`ping_interval + ping_timeout` without a
  message) is kept by the server's one `ReadDeadlines` sweep (read_deadlines.py), which
  aborts the connection of a socket that has been silent that long (`last_read`); the read then
  fails and the loop ends, as a timed-out read ends python-engineio's.
python-engineio's writer also gave up after `ping_interval + ping_timeout` with nothing to
write; a connection is only idle that long when its client stopped answering pings, which the
read deadline ends.

The rest is python-engineio's code as it is in 4.15.1, line for line (the upgrade handshake,
the receive loop, the close). Long-polling keeps python-engineio's own `poll()`: a copy
answered a GET one loop pass sooner, before the packets a concurrent POST was still queueing (a
refused POST then waited out its 5 s bound for a close packet nobody polled;
tests/security/test_fuzz.py went from 7 s to 6 min).
`internals.socket_loop_internals_missing()` compares the originals' source with the versions
this was written from; `GuardedSocket` uses it only while that holds, and python-engineio's own
otherwise, with one WARNING: a new python-engineio is read before this is trusted again.

The repeated parts come from python-engineio, under its MIT License:
Copyright (c) 2015 Miguel Grinberg. Permission is hereby granted, free of charge, to any person
obtaining a copy of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights to use, copy,
modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit
persons to whom the Software is furnished to do so, subject to the following conditions: The
above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY
KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT
HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT,
TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
DEALINGS IN THE SOFTWARE.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engineio import exceptions, packet

from .read_deadlines import ReadDeadlines

# sha256 of inspect.getsource() of python-engineio 4.15.1's AsyncSocket._websocket_handler and
# poll, first 16 hex digits: the code below repeats the first and writes as the second reads.
COPIED_FROM = {"_websocket_handler": "27f120df4d717a24", "poll": "826f58a9f3606db2"}


class QueueWriter:
    """Writes an Engine.IO socket's queued packets to its WebSocket, from a task that runs only
    while there is something to write (python-engineio: a writer task for the connection's life).

    `wake()` is called by the socket's queue on every put. `task` is the writing task (None when
    the queue was found empty); `finished` once the connection was closed by it.
    """

    __slots__ = ("sock", "ws", "task", "finished")

    def __init__(self, sock: Any, ws: Any):
        self.sock = sock
        self.ws = ws
        self.task: asyncio.Future | None = None
        self.finished = False

    def idle(self) -> bool:
        """Nothing of the socket's own is being written, and the connection is not closed by the
        writer (the broadcast fast path may write to an idle one directly when its queue is empty)."""
        return self.task is None and not self.finished

    def wake(self) -> None:
        if self.task is None and not self.finished:
            task = asyncio.ensure_future(self._write())
            if not task.done():  # (a task started eagerly may have found the queue empty already)
                self.task = task

    async def _write(self) -> None:
        queue = self.sock.queue
        try:
            while True:
                try:
                    pkt = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return  # (`finally`, in this same loop pass: the next put starts a new task)
                queue.task_done()
                if pkt is None:  # python-engineio's poll() returns [] for it: the connection ends
                    break
                try:
                    await self.ws.send(pkt.encode())
                except:  # noqa: E722 - as python-engineio's writer
                    break
            self.finished = True
            await self.ws.close()
        finally:
            self.task = None

    async def stopped(self) -> None:
        """Wait for the writing task, if one is at work (it ends after the `None` put last)."""
        task = self.task
        if task is not None:
            await asyncio.wait_for(task, timeout=None)


async def websocket_wait(ws: Any, server: Any) -> Any:
    """python-engineio's `websocket_wait` (a closure there; the upgrade's reads)."""
    data = await ws.wait()
    if data and len(data) > server.max_http_buffer_size:
        raise ValueError('packet is too large')
    return data


async def websocket_handler(sock: Any, ws: Any, deadlines: ReadDeadlines) -> None:
    """Engine.IO handler for websocket transport (python-engineio's `AsyncSocket._websocket_handler`).

    `sock.queue` is a `LeanQueue` (its `on_put` wakes the writer); `deadlines` watches the
    socket's `last_read` (the loop time of its last message) while it reads. What the handler
    raises goes to `sock.websocket_failed(exc)` (not out into aiohttp: the response is an upgraded
    stream).
    """
    try:
        server = sock.server
        loop = asyncio.get_running_loop()

        if sock.connected:
            # the socket was already connected, so this is an upgrade
            sock.upgrading = True  # hold packet sends during the upgrade

            try:
                pkt = await websocket_wait(ws, server)
            except OSError:  # pragma: no cover
                return
            decoded_pkt = packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != packet.PING or decoded_pkt.data != 'probe':
                server.logger.info('%s: Failed websocket upgrade, no PING packet', sock.sid)
                sock.upgrading = False
                return
            await ws.send(packet.Packet(packet.PONG, data='probe').encode())
            await sock.queue.put(packet.Packet(packet.NOOP))  # end poll

            try:
                pkt = await websocket_wait(ws, server)
            except OSError:  # pragma: no cover
                sock.upgrading = False
                return
            decoded_pkt = packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != packet.UPGRADE:
                sock.upgraded = False
                server.logger.info(('%s: Failed websocket upgrade, expected UPGRADE packet, '
                                    'received %s instead.'), sock.sid, pkt)
                sock.upgrading = False
                return
            sock.upgraded = True
            sock.upgrading = False
        else:
            sock.connected = True
            sock.upgraded = True

        # python-engineio: start separate writer thread (a task waiting on the queue)
        writer = sock.writer = QueueWriter(sock, ws)
        sock.queue.on_put = writer.wake
        if sock.queue.qsize():
            writer.wake()  # what was queued before (an upgrade's packets held back meanwhile)

        server.logger.info('%s: Upgrade to websocket successful', sock.sid)

        sock.last_read = loop.time()
        deadlines.watch(sock)
        while True:
            p = None
            try:
                # python-engineio: wait_for(ensure_future(websocket_wait()), ...), a Task per message;
                # here the read deadline is the server's ReadDeadlines sweep
                p = await ws.wait()
                if p and len(p) > server.max_http_buffer_size:
                    raise ValueError('packet is too large')
            except asyncio.CancelledError:  # pragma: no cover
                break
            except:  # noqa: E722 - as python-engineio: a failed read (an aborted connection) ends the loop
                break
            if p is None:
                # connection closed by client
                break
            sock.last_read = loop.time()
            pkt = packet.Packet(encoded_packet=p)
            try:
                await sock.receive(pkt)
            except exceptions.UnknownPacketError:  # pragma: no cover
                pass
            except exceptions.SocketIsClosedError:  # pragma: no cover
                server.logger.info('Receive error -- socket is closed')
                break
            except:  # noqa: E722 - as python-engineio
                # if we get an unexpected exception we log the error and exit
                # the connection properly
                server.logger.exception('Unknown receive error')

        deadlines.forget(sock)
        await sock.queue.put(None)  # unlock the writer task so it can exit
        await writer.stopped()
        await sock.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
    except Exception as exc:
        await sock.websocket_failed(exc)
