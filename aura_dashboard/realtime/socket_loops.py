"""python-engineio's WebSocket handler (its `AsyncSocket._websocket_handler`), without a Task and a
`wait_for` around every read.

python-engineio 4.15 reads each WebSocket message through `asyncio.wait_for(ensure_future(...))`:
a Task, `wait_for`'s coroutine, its waiter Future, timer and callback, alive as long as the
connection is idle. Here the read is awaited itself under `asyncio.timeout` (one small object
and its timer), with the same timeout and the same outcome: a timeout, a failed read or a
cancellation ends the loop, as every `except` of the original does.

The rest is python-engineio's code as it is in 4.15.1, line for line (the upgrade handshake,
the writer task, the receive loop, the close). The writer task waits for its queue the same
way (`writer_poll`, python-engineio's `poll()` with `asyncio.timeout` for `wait_for`).
Long-polling keeps python-engineio's own `poll()`: the copy answered a GET one loop pass
sooner, before the packets a concurrent POST was still queueing (a refused POST then waited out
its 5 s bound for a close packet nobody polled; tests/security/test_fuzz.py went from 7 s to
6 min). A WebSocket writer sends each packet as its own frame, in queue order, whichever pass
it wakes in.
`internals.socket_loop_internals_missing()` compares the original's source with the version
this was copied from; `GuardedSocket` uses it only while that holds, and python-engineio's own
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

# sha256 of inspect.getsource() of python-engineio 4.15.1's AsyncSocket._websocket_handler and
# poll, first 16 hex digits: the code below repeats them.
COPIED_FROM = {"_websocket_handler": "27f120df4d717a24", "poll": "826f58a9f3606db2"}


async def writer_poll(sock: Any) -> list:
    """The packets to send (python-engineio's `AsyncSocket.poll`, for the WebSocket writer)."""
    try:
        # python-engineio: wait_for(self.queue.get(), ...), its coroutine, waiter and callback
        async with asyncio.timeout(sock.server.ping_interval + sock.server.ping_timeout):
            packets = [await sock.queue.get()]
        sock.queue.task_done()
    except (asyncio.TimeoutError, asyncio.CancelledError):
        raise exceptions.QueueEmpty()
    if packets == [None]:
        return []
    while True:
        try:
            pkt = sock.queue.get_nowait()
            sock.queue.task_done()
            if pkt is None:
                sock.queue.put_nowait(None)
                break
            packets.append(pkt)
        except asyncio.QueueEmpty:
            break
    return packets


async def websocket_handler(sock: Any, ws: Any) -> None:
    """Engine.IO handler for websocket transport (python-engineio's `AsyncSocket._websocket_handler`)."""
    server = sock.server

    async def websocket_wait():
        data = await ws.wait()
        if data and len(data) > server.max_http_buffer_size:
            raise ValueError('packet is too large')
        return data

    if sock.connected:
        # the socket was already connected, so this is an upgrade
        sock.upgrading = True  # hold packet sends during the upgrade

        try:
            pkt = await websocket_wait()
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
            pkt = await websocket_wait()
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

    # start separate writer thread
    async def writer():
        while True:
            packets = None
            try:
                packets = await writer_poll(sock)  # python-engineio: sock.poll()
            except exceptions.QueueEmpty:
                break
            if not packets:
                # empty packet list returned -> connection closed
                break
            try:
                for pkt in packets:
                    await ws.send(pkt.encode())
            except:  # noqa: E722 - as python-engineio
                break
        await ws.close()

    writer_task = asyncio.ensure_future(writer())

    server.logger.info('%s: Upgrade to websocket successful', sock.sid)

    while True:
        p = None
        try:
            # python-engineio: wait_for(ensure_future(websocket_wait()), ...), a Task per message
            async with asyncio.timeout(server.ping_interval + server.ping_timeout):
                p = await websocket_wait()
        except asyncio.CancelledError:  # pragma: no cover
            break
        except:  # noqa: E722 - as python-engineio: a timeout or a failed read ends the loop
            break
        if p is None:
            # connection closed by client
            break
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

    await sock.queue.put(None)  # unlock the writer task so it can exit
    await asyncio.wait_for(writer_task, timeout=None)
    await sock.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
