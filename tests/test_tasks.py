"""Background tasks (tasks.py): a cancellation lost below a loop is found, and every endless
loop of the package looks for one each round."""

from __future__ import annotations

import ast
import asyncio
import sys
from pathlib import Path

import pytest

from aura_dashboard.tasks import stop_if_cancelled

PACKAGE = Path(__file__).resolve().parent.parent / "aura_dashboard"


async def _reply_lands_with_the_cancellation(check: bool) -> asyncio.Task:
    """A loop awaiting a reply through `asyncio.wait_for` (as redis-py reads one), cancelled in
    the loop pass its reply lands; returns its task, given 1 s to end."""
    replies: list[asyncio.Future] = []

    async def loop():
        while True:
            if check:
                stop_if_cancelled()
            reply = asyncio.get_running_loop().create_future()
            replies.append(reply)
            await asyncio.wait_for(reply, timeout=10)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    replies[-1].set_result("OK")
    task.cancel()
    await asyncio.wait([task], timeout=1)
    return task


async def test_a_cancellation_lost_inside_wait_for_ends_the_loop_at_its_next_round():
    task = await _reply_lands_with_the_cancellation(check=True)
    assert task.done() and task.cancelled()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for keeps the cancellation from 3.12 on")
async def test_on_python_3_11_wait_for_loses_that_cancellation():
    """Why the check exists: without it the loop goes on, its task 'cancelling' for good."""
    task = await _reply_lands_with_the_cancellation(check=False)
    try:
        assert not task.done() and task.cancelling() == 1
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=1)


def _endless_loops(tree: ast.AST):
    """Every `while True:` inside an async function, with that function's name."""
    for function in ast.walk(tree):
        if isinstance(function, ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.While) and isinstance(node.test, ast.Constant) and node.test.value is True:
                    yield function.name, node


def _leaves(loop: ast.While) -> bool:
    """Whether the loop has a way out of its own (a `break` or `return` of this loop)."""
    return any(isinstance(node, (ast.Break, ast.Return)) for node in ast.walk(loop))


def _checks_first(loop: ast.While) -> bool:
    first = loop.body[0]
    return (isinstance(first, ast.Expr) and isinstance(first.value, ast.Call)
            and getattr(first.value.func, "id", None) == "stop_if_cancelled")


def test_every_endless_loop_looks_for_a_lost_cancellation_first():
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for name, loop in _endless_loops(ast.parse(path.read_text(), str(path))):
            if not _leaves(loop) and not _checks_first(loop):
                missing.append(f"{path.relative_to(PACKAGE)}:{loop.lineno} ({name})")
    assert missing == [], f"endless loops without stop_if_cancelled() first: {missing}"
