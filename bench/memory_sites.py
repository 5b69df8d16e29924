"""Where an idle WebSocket client's memory goes: `python -m bench.memory_sites [CLIENTS]`.

Starts the bench's dashboard with tracemalloc on (PYTHONTRACEMALLOC=25), takes a baseline,
connects CLIENTS idle clients (Node driver, not subscribed) and prints the growth per client by
allocation site (the innermost three frames), the largest first.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiohttp

from bench.__main__ import clients, raise_fd_limit, server


async def main(n: int) -> None:
    os.environ["PYTHONTRACEMALLOC"] = "25"  # inherited by the server process
    # Every allocation traced with 25 frames: the imports alone take tens of seconds.
    async with server("dashboard", "fast", uvloop=True, start_timeout_s=180) as srv:
        await asyncio.sleep(1)
        async with aiohttp.ClientSession() as http:
            await (await http.post(srv.url + "/bench/tracemalloc")).read()
            async with clients(srv, n, ["websocket"], 1, subscribe=None):
                await asyncio.sleep(2)
                result = await (await http.get(f"{srv.url}/bench/tracemalloc?n={n}")).json()
    print(f"Python allocations per idle client: {result['total_bytes_per_client']} B")
    print("by owner (the innermost frame outside the standard library): "
          + ", ".join(f"{k} {v} B" for k, v in result["by_owner"].items()))
    for row in result["top"]:
        print(f"{row['bytes_per_client']:>6} B {row['count_per_client']:>6} objects  "
              + " <- ".join(reversed(row["where"])))
    print("by site (the innermost frame outside the standard library):")
    for row in result["by_site"]:
        print(f"{row['bytes_per_client']:>6} B {row['count_per_client']:>6} objects  {row['site']}")
    print("the dashboard's own allocation sites:")
    for row in result["own"]:
        print(f"{row['bytes_per_client']:>6} B {row['count_per_client']:>6} objects  "
              + " <- ".join(reversed(row["where"])))
    print(json.dumps(result), file=sys.stderr)


if __name__ == "__main__":
    raise_fd_limit()
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
