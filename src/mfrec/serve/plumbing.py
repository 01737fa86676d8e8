"""What the routes stand on: JSON errors, the body-size limit, Prometheus metrics and
the API key check."""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("mfrec.serve")


class ApiError(Exception):
    """A request the service refuses: ``status`` with a JSON body naming ``field``."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


_TYPE_TAGS = {"int", "str", "float", "bool", "list", "dict"}


def _field_path(loc: Any) -> str:
    parts = []
    for part in loc or ():
        if parts and part in _TYPE_TAGS:  # which member of a union failed: not a field
            continue
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)


def error_response(status: int, message: str, field: str | None = None, **extra) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "field": field}
    body.update(extra)
    return JSONResponse(body, status_code=status)


def install_error_handlers(app) -> None:
    """Every refusal is JSON naming the field; nothing ever shows a traceback."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            if loc and loc[0] in ("body", "query", "path"):
                loc = loc[1:]
            errors.append({"field": _field_path(loc), "message": str(err.get("msg", ""))})
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        if first["field"] == "" and "JSON" in first["message"]:
            first["field"] = "body"
        message = f"{first['field'] or 'body'}: {first['message']}"
        content_type = request.headers.get("content-type", "")
        if not first["field"] and "json" not in content_type:
            message += " (send the body as JSON, with 'Content-Type: application/json')"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        return error_response(422, message, first["field"] or "body", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        field = "body" if exc.status_code == 400 else None
        message = exc.detail if isinstance(exc.detail, str) else "bad request"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
            field = "path"
        if exc.status_code == 405:
            field = "method"
        return error_response(exc.status_code, message, field)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log")


def _json_bytes(status: int, message: str, field: str | None) -> bytes:
    import json

    return json.dumps({"error": message, "field": field}).encode()


class _BodyTooLarge(Exception):
    pass


class Metrics:
    """Prometheus metrics in a registry of this app's own (several apps per process in
    tests). With ``--workers N`` (``PROMETHEUS_MULTIPROC_DIR`` set by ``mfrec serve``)
    they are prometheus_client's multiprocess metrics instead: every worker writes its
    values to files there, and :meth:`render` adds up all workers'."""

    def __init__(self) -> None:
        import os

        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if self.multiprocess_dir:
            from mfrec.serve.workers import forget_dead_workers

            forget_dead_workers(self.multiprocess_dir)
        # multiprocess metrics live in the files, not in a registry
        self.registry = None if self.multiprocess_dir else CollectorRegistry()
        self.requests = Counter(
            "mfrec_requests",
            "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mfrec_request_duration_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.feedback_rows = Counter(
            "mfrec_feedback_rows", "Feedback rows stored durably", registry=self.registry
        )
        self.feedback_unknown_items = Counter(
            "mfrec_feedback_unknown_item_rows",
            "Stored feedback rows of items the served model does not know",
            registry=self.registry,
        )
        self.model_info = Gauge(
            "mfrec_model_info",
            "The model served (1 for the current file and version)",
            ["path", "version", "model_class"],
            registry=self.registry,
            multiprocess_mode="livemax",  # 1 while any live worker serves it
        )
        self.model_loaded = Gauge(
            "mfrec_model_loaded_timestamp_seconds",
            "When the served model was loaded",
            registry=self.registry,
            multiprocess_mode="livemin",  # the oldest model load among the live workers
        )
        self._model_labels: tuple[str, str, str] | None = None
        self.reloads = Counter(
            "mfrec_model_reloads", "Model reloads by result", ["result"], registry=self.registry
        )

    def set_model(self, state) -> None:
        labels = (state.path, state.version, type(state.model).__name__)
        if self._model_labels is not None and self._model_labels != labels:
            # zero first: a multiprocess gauge keeps a removed child's value in its file
            self.model_info.labels(*self._model_labels).set(0)
            self.model_info.remove(*self._model_labels)
        self.model_info.labels(*labels).set(1)
        self._model_labels = labels
        self.model_loaded.set(state.loaded_at)

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if self.multiprocess_dir:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)


class EdgeMiddleware:
    """Pure ASGI: refuses bodies over ``max_body`` bytes (413, JSON) and records each
    request's endpoint, status and latency."""

    def __init__(self, app, metrics: Metrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_box = {"status": 500, "started": False}
        too_large = {"hit": False}
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length > self.max_body or length < 0:
                    await self._refuse(send, status_box, length)
                    self._record(scope, status_box["status"], started)
                    return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    too_large["hit"] = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message):
            if too_large["hit"]:
                return  # the app's answer to a cut-off body is replaced by the 413 below
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
                status_box["started"] = True
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, tracking_send)
        if too_large["hit"] and not status_box["started"]:
            await self._refuse(send, status_box, received)
        self._record(scope, status_box["status"], started)

    async def _refuse(self, send, status_box, length: int) -> None:
        status_box["status"] = 413
        body = _json_bytes(
            413,
            f"request body too large ({length} bytes; the limit is {self.max_body}): "
            "send fewer rows per request",
            "body",
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _record(self, scope, status: int, started: float) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(endpoint, scope.get("method", ""), str(status)).inc()
        self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


def check_key(expected: str | None, request: Request) -> None:
    """Refuse a write without the API key (when the service has one)."""
    if expected is None:
        return
    given = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401,
            "this endpoint needs the API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            "authorization",
        )
