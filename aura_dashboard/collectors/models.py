"""The ML backend's models: what `GET {backends.ml.url}{models_path}` lists, beside the
backend's health as the `backends` stream last saw it.

The backend's list is free-form (a list of names, or of objects with `name`, `id` or `model`,
under `models` or `data`): `models` passes it on as the backend gave it, and `entries` reads it
here, once, into entries with a `name`, an optional `status` and the rest as `details`, so the
page renders what the contract says instead of guessing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from ..config.schema import MlBackendSettings
from ..contract import FieldSpec, PayloadModel, StreamContract
from ..outbound import ReplyTooLarge, read_limited
from .backends import BackendState

NAME_KEYS = ("name", "id", "model")


def model_entry(item: Any) -> dict[str, Any]:
    """One model as the contract has it: `name`, `status` (or None), the rest as `details`."""
    if not isinstance(item, dict):
        return {"name": str(item), "status": None, "details": {}}
    name = next((str(item[k]) for k in NAME_KEYS if item.get(k) is not None), "?")
    status = item.get("status")
    details = {k: v for k, v in item.items() if k not in (*NAME_KEYS, "status")}
    return {"name": name, "status": None if status is None else str(status), "details": details}


class ModelsProbe:
    """`await sample()`: the `models` stream's data.

    :param ml: the `backends.ml` section (URL and models path).
    :param timeout_s: how long the listing may take.
    :param session: the shared outbound HTTP session.
    :param backend_state: the ML backend's latest health (from the backend monitor).
    """

    def __init__(self, ml: MlBackendSettings, timeout_s: float, session: Callable[[], aiohttp.ClientSession],
                 backend_state: Callable[[], dict[str, Any]], max_reply_bytes: int = 4_194_304):
        self.url = ml.url + ml.models_path
        self.max_reply_bytes = max_reply_bytes
        self.models_path = ml.models_path
        self.timeout_s = timeout_s
        self._session = session
        self._backend_state = backend_state

    async def sample(self) -> dict[str, Any]:
        data: dict[str, Any] = {"backend": self._backend_state(), "models": None, "entries": None}
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._session().get(self.url) as response:
                    if response.status == 200:
                        body = orjson.loads(await read_limited(response, self.max_reply_bytes))
                        models = body.get("models", body.get("data")) if isinstance(body, dict) else body
                        if isinstance(models, list):
                            data["models"] = models
                            data["entries"] = [model_entry(item) for item in models]
                        else:
                            data["models_note"] = f"{self.models_path} answered JSON without a list of models"
                    else:
                        data["models_note"] = f"{self.models_path} answered HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, UnicodeDecodeError, ReplyTooLarge) as exc:
            data["models_note"] = f"{self.models_path}: {type(exc).__name__}"
        return data


# -- the `models` stream's contract ----------------------------------------------------------
class ModelEntry(PayloadModel):
    name: str
    status: str | None
    details: dict[str, Any]


class ModelsData(PayloadModel):
    backend: BackendState
    models: list[Any] | None
    entries: list[ModelEntry] | None
    models_note: str | None = None


MODELS = StreamContract(
    name="models", namespace="/ai_system", payload=ModelsData, shared=True,
    summary="The ML backend's health and the models it lists.",
    switches=("panels.ai_system.enabled",), feature="ai_system_panel",
    interval=("updates.intervals.model_status",),
    fields=(
        FieldSpec("backend.status", "status", "the ML backend's health (as in the backends stream)"),
        FieldSpec("backend.latency_ms", "ms", "its last health check's latency", series=True),
        FieldSpec("backend.checks", "count", "health checks made so far (0: never checked, as with "
                  "health_checks.enabled off; the status is then \"unknown\")"),
        FieldSpec("models", "object", "the models as the backend lists them (null when unreadable)"),
        FieldSpec("entries[].name", "text", "a model's name (the backend's name, id or model field)"),
        FieldSpec("entries[].status", "status", "the model's status, when the backend gives one"),
        FieldSpec("entries[].details", "object", "every other field the backend gives for the model"),
        FieldSpec("models_note", "text", "why no list of models could be read"),
    ),
)
