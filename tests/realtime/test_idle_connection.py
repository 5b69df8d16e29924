"""What an idle WebSocket connection keeps alive for its whole life (issue 19: memory per client).

Structure, not sizes: which frames, tasks and references a connection holds while it waits.
The sizes are measured by `python -m bench.memory_sites` and recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import types

import aiohttp

from aura_dashboard.web.keys import SIO
from tests.conftest import make_settings, running_server
from tests.realtime.test_broadcast import QUIET, RawClient, wait_members


def coroutine_chain(task: asyncio.Task) -> list[str]:
    """The qualified names of the coroutines a task is suspended in, outermost first."""
    names = []
    coro = task.get_coro()
    while isinstance(coro, (types.CoroutineType, types.GeneratorType)):
        code = coro.cr_code if isinstance(coro, types.CoroutineType) else coro.gi_code
        names.append(f"{code.co_filename.rsplit('/', 2)[-2]}/{code.co_filename.rsplit('/', 1)[-1]}:{code.co_qualname}")
        coro = coro.cr_await if isinstance(coro, types.CoroutineType) else coro.gi_yieldfrom
    return names


def handler_chains() -> list[list[str]]:
    """The chains of the tasks running an Engine.IO request handler (one per connection)."""
    chains = [coroutine_chain(task) for task in asyncio.all_tasks()]
    return [chain for chain in chains if any(name.endswith(":AsyncServer.handle_request") for name in chain)]


async def test_no_pass_through_middleware_frame_lives_as_long_as_a_websocket():
    # gzip and the rate limit on (the shipped settings), the API key too: each of them passes the
    # Engine.IO request on without a coroutine frame of its own around the handler.
    settings = make_settings({"SECURITY_API_KEY_ENABLED": "true", "DASHBOARD_API_KEY": "k" * 32}, QUIET)
    assert settings.performance.gzip_compression and settings.security.rate_limiting.enabled
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{srv.url}{srv.ws_path}/?EIO=4&transport=websocket")
        assert (await ws.receive_str()).startswith("0{")
        await asyncio.sleep(0.05)
        [chain] = handler_chains()
        ours = [name for name in chain if name.startswith("web/")]
        # The error middleware stays: it turns a failure after the upgrade into a closed WebSocket.
        assert ours == ["web/middleware.py:error_middleware"], chain
        await ws.close()


def test_session_in_query_reads_the_engineio_sid_without_request_query():
    from aura_dashboard.realtime.server import session_in_query
    assert session_in_query("EIO=4&transport=websocket&sid=abc-_D") == "abc-_D"
    assert session_in_query("EIO=4&transport=websocket") is None
    assert session_in_query("sid=&EIO=4") == ""  # present but empty: as `"sid" in request.query`
    assert session_in_query("") is None
