"""Per-topic model routing: the topic's model, long-input routing and a fallback after retries.

A topic's ``metadata.yaml`` may hold a ``provider`` section (all keys optional)::

    provider:
      mode: stream              # stream (default): calls in the prompt task; batch: provider Batch API
      model: null               # null = the run connection's ``model`` extra; a name overrides it
      long_input:               # inputs estimated over ``threshold_tokens`` go to a larger model
        threshold_tokens: 2000
        conn_id: null           # null = the run's connection
        model: gpt-4.1
      fallback:                 # used for a record once the primary's retries are exhausted
        conn_id: llm_fallback
        model: gpt-4.1-mini

At plan time the routes are resolved to concrete ``{"conn_id", "model"}`` pairs (:func:`resolve_routes`)
and pinned in the run plan, so every mapped task of a run uses the same models. At call time a
:class:`RoutedSession` picks the route of each record and falls back when the primary gives up.

A version with a model cascade (``versions.<v>.cascade.proxy: model:<conn_id>/<model>``,
:mod:`pipeline_hub.cascade`) adds a fourth, ``proxy`` route (:data:`PROXY_ROUTE`) to the run's routes: the
cheap model asked first. It is never a fallback target and has none of its own (a failed proxy answer goes
to the oracle). ``RoutedSession.complete(messages, route=...)`` sends to a named route (the proxy, or the
cascade's oracle route); without ``route`` the usual pick applies.

Token counts for routing are an estimate, ``ceil(characters / 4)`` of the rendered messages: OpenAI's
rule of thumb ("What are tokens and how to count them", help.openai.com) for English text. An exact
tokenizer (tiktoken) would download its vocabulary at run time, which the pipeline must not do.
"""

from __future__ import annotations

import logging
import math
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from pipeline_hub.exceptions import ConfigError

log = logging.getLogger(__name__)

MODES = ("stream", "batch")
ROUTES = ("primary", "long_input", "fallback")
# The model proxy of a cascade: a route of its own, asked before the oracle (pipeline_hub.stages.cascade).
PROXY_ROUTE = "proxy"


class RoutingError(ConfigError):
    """A topic's ``provider`` section is malformed (the message names the file and key)."""


@dataclass(frozen=True)
class Route:
    """Where a call goes: an Airflow connection (None = the run's) and a model (None = the connection's)."""

    conn_id: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class ProviderSpec:
    """A topic's ``provider`` section, parsed (see the module docstring)."""

    mode: str = "stream"
    model: str | None = None
    long_input: Route | None = None
    threshold_tokens: int | None = None
    fallback: Route | None = None

    @classmethod
    def parse(cls, section: dict[str, Any] | None, where: str) -> ProviderSpec:
        """Parse ``section``; raise :class:`RoutingError` naming ``where`` (the metadata file) on bad keys."""
        section = dict(section or {})
        unknown = set(section) - {"mode", "model", "long_input", "fallback"}
        if unknown:
            raise RoutingError(f"{where}: provider: unknown keys {sorted(unknown)}")
        mode = section.get("mode") or "stream"
        if mode not in MODES:
            raise RoutingError(f"{where}: provider.mode must be one of {MODES}, not {mode!r}")

        def route(key: str, *, needs_threshold: bool = False) -> tuple[Route | None, int | None]:
            value = section.get(key)
            if value is None:
                return None, None
            if not isinstance(value, dict) or not (value.get("model") or value.get("conn_id")):
                raise RoutingError(f"{where}: provider.{key} needs a 'model' and/or a 'conn_id'")
            extra = set(value) - {"conn_id", "model", "threshold_tokens"}
            if extra:
                raise RoutingError(f"{where}: provider.{key}: unknown keys {sorted(extra)}")
            threshold = value.get("threshold_tokens")
            if needs_threshold and (not isinstance(threshold, int) or threshold <= 0):
                raise RoutingError(f"{where}: provider.{key}.threshold_tokens must be a positive integer")
            return Route(value.get("conn_id"), value.get("model")), threshold

        long_input, threshold = route("long_input", needs_threshold=True)
        fallback, _ = route("fallback")
        return cls(
            mode=mode, model=section.get("model"), long_input=long_input, threshold_tokens=threshold, fallback=fallback
        )


def estimate_tokens(messages: list[dict[str, str]]) -> int:
    """Estimated prompt tokens of chat ``messages``: ceil(characters / 4) (see the module docstring)."""
    return math.ceil(sum(len(m.get("content") or "") for m in messages) / 4)


def get_hook(conn_id: str, model: str | None = None):
    """The chat hook for Airflow connection ``conn_id``, chosen by its type.

    ``aws`` connections get :class:`~pipeline_hub.providers.bedrock.BedrockLLMHook` (Converse API);
    every other type (``openai`` and OpenAI-compatible servers) gets
    :class:`~pipeline_hub.providers.hook.LLMHook`. ``model`` overrides the connection's ``model`` extra.
    """
    from airflow.sdk import BaseHook

    from pipeline_hub.providers.hook import LLMHook

    conn_type = BaseHook.get_connection(conn_id).conn_type
    if conn_type == "aws":
        from pipeline_hub.providers.bedrock import BedrockLLMHook

        return BedrockLLMHook(conn_id, model=model)
    return LLMHook(conn_id, model=model)


def require_connection(conn_id: str, what: str) -> None:
    """Raise :class:`~pipeline_hub.exceptions.ConfigError` when Airflow defines no connection ``conn_id``.

    The one-line message is ``<what> connection '<conn_id>' is not defined (…how to define it)``; ``what``
    says who needs it (e.g. ``<metadata.yaml>: cascade.proxy``).
    """
    from pipeline_hub.config import connection_defined

    if not connection_defined(conn_id):
        raise ConfigError(
            f"{what} connection '{conn_id}' is not defined (AIRFLOW_CONN_{conn_id.upper()}, "
            f"`airflow connections add {conn_id}` or a secrets backend)"
        )


def resolve_routes(spec: ProviderSpec, run_conn_id: str, run_model: str | None = None) -> dict[str, Any]:
    """Concrete routes for a run: ``{"mode", "primary", "long_input", "fallback", "threshold_tokens"}``.

    Each route is ``{"conn_id", "model"}`` with the model read from the connection when the topic does
    not name one (``run_model``, when given, is the run connection's), or None when the topic has no
    such route. Raises the hook's ``ProviderError`` when a connection has no model.
    """

    def concrete(route: Route) -> dict[str, str]:
        conn_id = route.conn_id or run_conn_id
        if route.model:
            return {"conn_id": conn_id, "model": route.model}
        if conn_id == run_conn_id and run_model:
            return {"conn_id": conn_id, "model": run_model}
        return {"conn_id": conn_id, "model": get_hook(conn_id).model}

    return {
        "mode": spec.mode,
        "primary": concrete(Route(run_conn_id, spec.model)),
        "long_input": concrete(spec.long_input) if spec.long_input else None,
        "threshold_tokens": spec.threshold_tokens,
        "fallback": concrete(spec.fallback) if spec.fallback else None,
    }


def route_models(routes: dict[str, Any]) -> list[str]:
    """Every model a run's ``routes`` may call, primary first, the cascade's proxy model last."""
    return [routes[r]["model"] for r in (*ROUTES, PROXY_ROUTE) if routes.get(r)]


@dataclass
class RoutedSession:
    """Call sessions for a topic's routes inside one task; use ``async with RoutedSession(routes, cache)``.

    ``complete`` takes the same arguments as :meth:`~pipeline_hub.providers.session.CallSession.complete`
    and returns its ``Completion`` with ``route`` set to ``primary``, ``long_input``, ``fallback`` or
    ``proxy`` (:data:`PROXY_ROUTE`, when ``routes`` has one).
    """

    routes: dict[str, Any]
    cache: Any = None
    hooks: dict[str, Any] = field(default_factory=dict)
    sessions: dict[str, Any] = field(default_factory=dict)
    _stack: AsyncExitStack | None = None

    @classmethod
    def single(cls, hook, cache=None) -> RoutedSession:
        """One route only: every record goes to ``hook`` (tests, CLI, benchmarks)."""
        routes = {"primary": {"conn_id": hook.conn_id, "model": hook.model}}
        return cls(routes=routes, cache=cache, hooks={"primary": hook})

    @property
    def primary(self):
        """The primary route's hook."""
        return self.hooks["primary"]

    @property
    def in_flight(self) -> int:
        """LLM calls holding a concurrency slot right now, over every route's session."""
        return sum(getattr(s, "in_flight", 0) for s in self.sessions.values())

    async def __aenter__(self) -> RoutedSession:
        self._stack = AsyncExitStack()
        for name in (*ROUTES, PROXY_ROUTE):
            if self.routes.get(name) and name not in self.hooks:
                self.hooks[name] = get_hook(self.routes[name]["conn_id"], self.routes[name]["model"])
        for name, hook in self.hooks.items():
            self.sessions[name] = await self._stack.enter_async_context(hook.session(self.cache))
        return self

    async def __aexit__(self, *exc) -> None:
        if self._stack is not None:
            await self._stack.aclose()

    def pick(self, messages: list[dict[str, str]]) -> str:
        """``long_input`` when that route exists and the estimate exceeds its threshold, else ``primary``."""
        threshold = self.routes.get("threshold_tokens")
        if "long_input" in self.sessions and threshold and estimate_tokens(messages) > threshold:
            return "long_input"
        return "primary"

    async def store(self, messages: list[dict[str, str]], completion, **kwargs: Any) -> None:
        """Cache an answer obtained elsewhere (a batch job) as if the primary route had given it."""
        await self.sessions["primary"].store(messages, completion, **kwargs)

    async def complete(self, messages: list[dict[str, str]], *, route: str | None = None, **kwargs: Any):
        """Send ``messages`` on ``route`` (None: :meth:`pick`); on exhausted retries, once more on ``fallback``.

        ``route`` names one of this session's routes (``primary``, ``long_input``, ``fallback``, ``proxy``);
        a ``long_input`` asked for by name is used whatever the input's length. Only ``primary`` and
        ``long_input`` fall back: ``fallback`` has nowhere to go, and a failed ``proxy`` answer is the
        caller's to hand to the oracle. Raises :class:`KeyError` for a route the session does not have, and
        the route's :class:`~pipeline_hub.providers.errors.CallFailed` when it gives up (without a fallback,
        or on an error retrying cannot fix); when the fallback gives up too, its ``CallFailed`` with the
        first route's failure appended (both connections named).
        """
        from pipeline_hub.providers.errors import CallFailed  # not at import: DAG files import this module

        route = route or self.pick(messages)
        if route not in self.sessions:
            raise KeyError(f"no route '{route}' in this session (routes: {', '.join(self.sessions)})")
        try:
            completion = await self.sessions[route].complete(messages, **kwargs)
        except CallFailed as exc:
            hook = self.hooks[route]
            can_fall_back = route in ("primary", "long_input") and "fallback" in self.sessions
            if not can_fall_back or not hook.is_retryable(exc):
                raise
            fb = self.routes["fallback"]
            log.warning("%s; falling back to connection %s model %s", exc, fb["conn_id"], fb["model"])
            route = "fallback"
            try:
                completion = await self.sessions[route].complete(messages, **kwargs)
            except CallFailed as again:
                failure = f"{again.failure}; before it, connection '{exc.conn_id}' model {exc.model}: {exc.failure}"
                raise CallFailed(
                    again.conn_id,
                    again.model,
                    failure,
                    attempts=exc.attempts + again.attempts,
                    retryable=again.retryable,
                    kind=again.kind,
                ) from again
        completion.route = route
        return completion
