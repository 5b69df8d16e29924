"""ReadDeadlines: one sweep holds every watched WebSocket to python-engineio's read deadline."""

from __future__ import annotations

import asyncio
import types

from aura_dashboard.realtime.read_deadlines import ReadDeadlines


def server(interval_s: float = 0.05, timeout_s: float = 0.15):
    return types.SimpleNamespace(ping_interval=interval_s, ping_timeout=timeout_s)  # limit 0.2 s


class Sock:
    def __init__(self, sid: str, fail: bool = False):
        self.sid = sid
        self.last_read = asyncio.get_running_loop().time()
        self.ended = 0
        self.fail = fail

    def read(self) -> None:
        self.last_read = asyncio.get_running_loop().time()

    def read_deadline_passed(self) -> None:
        self.ended += 1
        if self.fail:
            raise RuntimeError("transport gone")


async def test_a_silent_socket_is_ended_once_and_a_reading_one_is_not():
    deadlines = ReadDeadlines(server())
    silent, reading = Sock("silent"), Sock("reading")
    deadlines.watch(silent)
    deadlines.watch(reading)
    for _ in range(12):  # 0.6 s: three limits
        await asyncio.sleep(0.05)
        reading.read()
    assert silent.ended == 1 and reading.ended == 0 and deadlines.expired == 1
    assert len(deadlines) == 1  # the ended one is no longer watched
    deadlines.close()


async def test_a_changed_limit_applies_at_the_next_sweep():
    eio = server(25, 20)  # as shipped: 45 s
    deadlines = ReadDeadlines(eio)
    sock = Sock("a")
    deadlines.watch(sock)
    eio.ping_interval, eio.ping_timeout = 0.05, 0.05
    sock.last_read -= 1.0  # silent for a second already
    deadlines._timer.cancel()  # the first sweep was set for 45 s / 8; sweep now
    deadlines._sweep()
    assert sock.ended == 1
    deadlines.close()


async def test_one_socket_failing_to_end_does_not_stop_the_others():
    deadlines = ReadDeadlines(server())
    failing, other = Sock("failing", fail=True), Sock("other")
    deadlines.watch(failing)
    deadlines.watch(other)
    await asyncio.sleep(0.5)
    assert failing.ended == 1 and other.ended == 1 and deadlines.expired == 2
    deadlines.close()


async def test_the_sweep_stops_when_nothing_is_watched_and_close_cancels_it():
    deadlines = ReadDeadlines(server())
    sock = Sock("a")
    deadlines.watch(sock)
    assert deadlines._timer is not None
    deadlines.forget(sock)  # its reader ended
    await asyncio.sleep(0.1)  # one sweep: nothing left, no next one
    assert deadlines._timer is None and sock.ended == 0
    deadlines.watch(sock)
    deadlines.close()
    assert deadlines._timer is None and len(deadlines) == 0
    await asyncio.sleep(0.3)
    assert sock.ended == 0


def test_a_new_loop_forgets_the_old_loops_sockets():
    deadlines = ReadDeadlines(server())

    async def watch(sid: str) -> Sock:
        sock = Sock(sid)
        deadlines.watch(sock)
        return sock

    asyncio.run(watch("old"))
    assert len(deadlines) == 1

    async def second() -> None:
        await watch("new")
        assert len(deadlines) == 1  # the old loop's socket is gone with its loop
        deadlines.close()

    asyncio.run(second())


async def test_a_socket_past_its_deadline_is_aborted_or_else_closed():
    from aura_dashboard.realtime.server import GuardedSocket

    class Transport:
        aborted = False

        def abort(self):
            self.aborted = True

    class Response:
        closed = False

        async def close(self):
            self.closed = True

    def socket_with(response) -> GuardedSocket:
        sock = GuardedSocket.__new__(GuardedSocket)  # only its WebSocket: `_ws._sock`
        sock._ws = types.SimpleNamespace(_sock=response)
        return sock

    transport = Transport()
    with_writer = socket_with(types.SimpleNamespace(_writer=types.SimpleNamespace(transport=transport)))
    with_writer.read_deadline_passed()
    assert transport.aborted
    response = Response()  # an aiohttp without the writer the transport is found through
    without_writer = socket_with(response)
    without_writer.read_deadline_passed()
    await without_writer._deadline_close
    assert response.closed
