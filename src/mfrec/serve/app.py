"""The routes of ``mfrec serve`` (see ``docs/serving.md`` for the API and its policies).

:func:`create_app` builds a FastAPI app around one model file and one feedback store.
Everything a route needs beyond parsing lives in :mod:`mfrec.serve.live` (the model and
per-user fold-in), :mod:`mfrec.serve.store` and :mod:`mfrec.serve.plumbing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import os
import signal
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from mfrec.serve import schemas as S
from mfrec.serve.live import (
    LiveModel,
    ModelState,
    NotSupportedError,
    UnknownIdError,
    UserVector,
    id_json,
    id_text,
)
from mfrec.serve.plumbing import (
    ApiError,
    EdgeMiddleware,
    Metrics,
    check_key,
    install_error_handlers,
)
from mfrec.serve.store import Feedback, FeedbackStore, StoreUnavailable, now, open_store
from mfrec.serve.workers import ModelControl

logger = logging.getLogger("mfrec.serve")

PAGE_DIR = Path(__file__).resolve().parent / "page"
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
#: Environment variable carrying the :class:`ServeConfig` (JSON) to worker processes.
CONFIG_ENV = "MFREC_SERVE_CONFIG"
#: How often a worker of ``--workers N`` looks for a reload done by another (seconds).
FOLLOW_SECONDS = 0.5


@dataclass
class ServeConfig:
    """What one ``mfrec serve`` process serves."""

    model_path: str
    store_url: str
    api_key: str | None = None
    api_key_file: str | None = None
    max_body_bytes: int = S.MAX_BODY_BYTES
    #: the run folder that ``--workers N`` processes share (:mod:`mfrec.serve.workers`)
    run_dir: str | None = None


def create_app(
    config: ServeConfig, *, live: LiveModel | None = None, store: FeedbackStore | None = None
) -> FastAPI:
    """The app for ``config`` (the model is loaded and the store opened here, so a bad
    file or URL fails at once rather than on the first request)."""
    if config.api_key is None and config.api_key_file is not None:
        config.api_key = Path(config.api_key_file).read_text(encoding="utf-8").strip()
    control = ModelControl(config.run_dir) if config.run_dir else None
    generation, shared_path = control.read() if control else (0, None)
    seen = {"generation": generation}
    if live is None:
        try:
            live = LiveModel(shared_path or config.model_path)
        except Exception:
            if shared_path is None:
                raise
            # the file another worker switched to is gone or broken: start on ours
            logger.error("cannot load %s named by the other workers; serving %s",
                         shared_path, config.model_path)  # fmt: skip
            live = LiveModel(config.model_path)
    store = store or open_store(config.store_url)
    metrics = Metrics()
    metrics.set_model(live.current)

    def reload_model(path: str | None = None, *, publish: bool = True) -> ModelState:
        try:
            state = live.reload(path)
        except Exception:
            metrics.reloads.labels("refused").inc()
            raise
        metrics.reloads.labels("ok").inc()
        metrics.set_model(state)
        if control is not None and publish:  # the other workers follow (follow_reloads)
            seen["generation"] = control.publish(state.path)
        return state

    async def follow_reloads() -> None:
        """Load what another worker reloaded (``--workers N``): poll the run folder."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            generation, path = control.read()
            if generation <= seen["generation"] or path is None:
                continue
            seen["generation"] = generation
            try:
                follow = functools.partial(reload_model, path, publish=False)
                await loop.run_in_executor(None, follow)
            except Exception as exc:
                logger.error("reload of %s (from another worker) refused: %s", path, exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        from mfrec._threads import _controller

        loop = asyncio.get_running_loop()
        # Requests run side by side on the server's threads: BLAS inside one request on
        # one thread (a pool per request would only fight the others for the cores).
        blas = _controller().limit(limits=1)
        import numba

        # the same for numba kernels on the loop's thread (the setting is per thread)
        numba_before = numba.get_num_threads()
        numba.set_num_threads(1)

        def on_hup() -> None:
            def run() -> None:
                try:
                    reload_model()
                except Exception as exc:
                    logger.error("SIGHUP reload refused, old model still serving: %s", exc)

            loop.run_in_executor(None, run)

        hup = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, on_hup)
            hup = True
        follower = asyncio.create_task(follow_reloads()) if control is not None else None
        # Everything alive now (the model, numba's and the framework's objects) lives as
        # long as the server: move it out of the cyclic collector's view. Otherwise each
        # full collection walks it all on the loop's thread -- about 95 ms every few
        # seconds at 500 requests/s, the whole p99 of the anonymous fold-in (measured
        # with gc.callbacks under bench/serve.py). Reference counting still frees it.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            if hup:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(signal.SIGHUP)
            store.close()
            blas.restore_original_limits()
            numba.set_num_threads(numba_before)

    app = FastAPI(
        title="mfrec serve",
        summary="Recommendations by matrix factorization, with live feedback.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.live = live
    app.state.store = store
    app.state.metrics = metrics
    app.state.reload = reload_model
    install_error_handlers(app)
    app.add_middleware(EdgeMiddleware, metrics=metrics, max_body=config.max_body_bytes)

    async def require_key(request: Request) -> None:  # async: no thread hop for a compare
        check_key(config.api_key, request)

    # -- helpers shared by the routes ---------------------------------------------------
    # A request's work is a fraction of a millisecond of CPU: it runs on the event loop,
    # since a hop to the thread pool and back costs about as much again (and the GIL
    # serialises the Python parts anyway). Store reads stay inline only when they are
    # local file reads (SQLite); a network store's reads go to the thread pool, so that
    # a slow or unreachable server never stalls the loop.
    inline_reads = store.local_reads

    async def reading(func, *args):
        if inline_reads:
            return func(*args)
        return await run_in_threadpool(func, *args)

    def parse_one(state: ModelState, side: str, value: Any, field: str) -> Any:
        try:
            return state.parse_ids(side, [value], field)[0]
        except ValueError as exc:
            raise ApiError(422, str(exc), field) from None

    def parse_list(state: ModelState, text: str | None, field: str) -> np.ndarray | None:
        if text is None:
            return None
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if len(parts) > S.MAX_LIST:
            raise ApiError(422, f"{field}: at most {S.MAX_LIST} ids", field)
        try:
            return state.parse_ids("item", parts, field)
        except ValueError as exc:
            raise ApiError(422, str(exc), field) from None

    def item_indices(state: ModelState, ids: np.ndarray | None, field: str, strict: bool):
        if ids is None:
            return None
        index = state.lookup("item", ids)
        if strict and (index < 0).any():
            missing = ", ".join(repr(id_json(v)) for v in ids[index < 0][:5])
            raise ApiError(404, f"{field}: unknown item id(s) {missing}", field)
        return index[index >= 0]

    def user_vector(state: ModelState, key: str, user_index: int) -> UserVector:
        try:
            version = store.versions([key]).get(key)
        except StoreUnavailable as exc:
            cached = state.cached_vector(key)
            if cached is not None:
                return cached
            logger.warning("store unavailable; %r ranked without feedback: %s", key, exc)
            version = None
        if version is None and user_index < 0:
            raise ApiError(
                404,
                f"unknown user {key!r}: no training ratings and no feedback "
                "(POST /recommendations ranks for a visitor's ratings)",
                "user",
            )
        try:
            return state.user_vector(key, user_index, version, lambda: store.user_feedback(key))
        except StoreUnavailable as exc:
            raise ApiError(503, f"feedback store unavailable: {exc}", "store") from None
        except UnknownIdError as exc:
            raise ApiError(404, exc.message, exc.field) from None

    # -- recommendations ----------------------------------------------------------------
    # The two hot GET routes read their query through one pydantic model rather than
    # FastAPI's per-parameter dependency machinery (a good part of a request's CPU);
    # the OpenAPI description and the 422 answers are the same.
    @app.get(
        "/users/{user}/recommendations",
        response_model=S.UserRecommendations,
        tags=["recommendations"],
        openapi_extra={"parameters": _parameters("user", S.RecommendationQuery)},
    )
    async def user_recommendations(request: Request):
        """Top-``n`` items for a user: training ratings plus stored feedback, folded in."""
        query = _query(S.RecommendationQuery, request)
        user = request.path_params["user"]
        return await reading(
            _user_recommendations, user, query.n, query.exclude_seen, query.items, query.exclude
        )

    def _user_recommendations(user, n, exclude_seen, items, exclude):
        state = live.current
        raw = parse_one(state, "user", user, "user")
        key = id_text(raw)
        user_index = state.index_of("user", raw)
        allow = item_indices(state, parse_list(state, items, "items"), "items", strict=True)
        deny = item_indices(state, parse_list(state, exclude, "exclude"), "exclude", False)
        vector = user_vector(state, key, user_index)
        idx, scores = state.rank(vector, n, exclude_seen=exclude_seen, exclude=deny, allow=allow)
        # a plain JSONResponse: the body is built to the schema here, and skipping the
        # response-model round trip saves a good part of a hot request's CPU
        return JSONResponse(
            {
                "user": id_json(raw),
                "items": state.item_json(idx, scores),
                "feedback_used": vector.from_feedback,
            }
        )

    @app.post(
        "/recommendations", response_model=S.AnonymousRecommendations, tags=["recommendations"]
    )
    async def anonymous_recommendations(body: S.AnonymousRequest):
        """Top-``n`` items for a visitor described only by ratings: folded in, not stored."""
        return _anonymous_recommendations(body)

    def _anonymous_recommendations(body: S.AnonymousRequest):
        state = live.current
        keys = list(body.ratings)
        try:
            ids = state.parse_ids("item", keys, "ratings")
        except ValueError as exc:
            raise ApiError(422, str(exc), "ratings") from None
        index = state.lookup("item", ids)
        values = np.array([body.ratings[k] for k in keys], dtype=np.float64)
        if len(set(index[index >= 0].tolist())) != int((index >= 0).sum()):
            raise ApiError(422, "ratings: an item is rated twice (as 7 and '7'?)", "ratings")
        try:
            exclude = state.parse_ids("item", list(body.exclude), "exclude")
        except ValueError as exc:
            raise ApiError(422, str(exc), "exclude") from None
        deny = item_indices(state, exclude, "exclude", strict=False)
        known = index >= 0
        order = np.argsort(index[known], kind="stable")
        try:
            vector = state.solve(index[known][order].astype(np.int32), values[known][order])
        except NotSupportedError as exc:
            raise ApiError(409, str(exc), "model") from None
        idx, scores = state.rank(vector, body.n, exclude=deny)
        return JSONResponse(
            {
                "items": state.item_json(idx, scores),
                "ignored_items": [id_json(v) for v in ids[~known]],
            }
        )

    # -- items ----------------------------------------------------------------------------
    @app.get("/items", response_model=S.ItemSearch, tags=["items"])
    def search_items(
        q: str = Query(..., min_length=1, max_length=200, description="part of a title or an id"),
        limit: int = Query(20, ge=1, le=100),
    ):
        """Items whose title contains ``q`` (case-insensitive), or whose id is ``q``."""
        return {"items": live.current.search(q, limit)}

    @app.get(
        "/items/{item}/similar",
        response_model=S.SimilarItems,
        tags=["items"],
        openapi_extra={"parameters": _parameters("item", S.SimilarQuery)},
    )
    async def similar_items(request: Request):
        """The ``n`` items closest to ``item`` (cosine of the item factors)."""
        query = _query(S.SimilarQuery, request)
        return _similar_items(request.path_params["item"], query.n)

    def _similar_items(item: str, n: int):
        state = live.current
        raw = parse_one(state, "item", item, "item")
        index = state.index_of("item", raw)
        if index < 0:
            raise ApiError(404, f"unknown item {id_json(raw)!r}", "item")
        if state.model.n_factors_ == 0:
            raise ApiError(409, "the model has no item factors to compare items by", "model")
        idx, scores = state.similar(index, n)
        return JSONResponse(
            {
                "item": id_json(raw),
                "title": None if state.titles is None else str(state.titles[index]),
                "items": state.item_json(idx, scores),
            }
        )

    # -- predictions ----------------------------------------------------------------------
    @app.post("/predict", response_model=S.Predictions, tags=["recommendations"])
    def predict(body: S.PredictRequest):
        """Predicted ratings of (user, item) pairs, clipped to the rating scale; users'
        feedback is folded in; unknown ids get the documented fallback."""
        state = live.current
        users = np.empty(len(body.pairs), dtype=object)
        items = np.empty(len(body.pairs), dtype=object)
        for k, pair in enumerate(body.pairs):
            users[k] = parse_one(state, "user", pair.user, f"pairs[{k}].user")
            items[k] = parse_one(state, "item", pair.item, f"pairs[{k}].item")
        user_index = state.lookup("user", users)
        item_index = state.lookup("item", items)
        keys = [id_text(u) for u in users]
        try:
            versions = store.versions(keys)
        except StoreUnavailable:
            versions = {}
        out = np.empty(len(keys), dtype=np.float64)
        fallback = item_index < 0
        live_rows = np.array([key in versions for key in keys], dtype=bool)
        plain = ~live_rows
        if plain.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[plain] = np.clip(
                    state.model._predict_indices(user_index[plain], item_index[plain]),
                    *state.model.rating_scale_,
                )
            fallback |= plain & (user_index < 0)
        for key in dict.fromkeys(k for k, is_live in zip(keys, live_rows, strict=False) if is_live):
            rows = np.array([k == key for k in keys]) & live_rows
            uidx = int(user_index[rows][0])
            vector = user_vector(state, key, uidx)
            out[rows] = state.predict(vector, item_index[rows])
        return {
            "predictions": [
                {
                    "user": id_json(users[k]),
                    "item": id_json(items[k]),
                    "rating": float(out[k]),
                    "fallback": bool(fallback[k]),
                }
                for k in range(len(keys))
            ]
        }

    # -- feedback -------------------------------------------------------------------------
    @app.post(
        "/feedback",
        response_model=S.FeedbackStored,
        dependencies=[Depends(require_key)],
        tags=["feedback"],
    )
    async def post_feedback(body: S.FeedbackRequest):
        """Store ratings durably (the answer comes after the commit); the users' next
        recommendations fold them in. Items the model does not know are stored and
        reported in ``unknown_items``: they count after a retrain."""
        state = live.current
        model = state.model
        low, high = model.rating_scale_
        implicit = getattr(model, "name", "") == "implicit-als"
        rows: list[Feedback] = []
        users: dict[str, Any] = {}
        unknown_items: dict[str, Any] = {}
        received = now()
        parsed_users = []
        parsed_items = []
        for k, entry in enumerate(body.ratings):
            parsed_users.append(parse_one(state, "user", entry.user, f"ratings[{k}].user"))
            parsed_items.append(parse_one(state, "item", entry.item, f"ratings[{k}].item"))
            if implicit and entry.rating < 0:
                raise ApiError(
                    422, f"ratings[{k}].rating: must be >= 0, got {entry.rating}",
                    f"ratings[{k}].rating",
                )  # fmt: skip
            if not implicit and not low <= entry.rating <= high:
                raise ApiError(
                    422,
                    f"ratings[{k}].rating: {entry.rating} is outside the model's rating "
                    f"scale {low:g}..{high:g}",
                    f"ratings[{k}].rating",
                )
        user_index = state.lookup_parsed("user", parsed_users)
        item_index = state.lookup_parsed("item", parsed_items)
        new_users: dict[str, Any] = {}
        for k, entry in enumerate(body.ratings):
            user_key, item_key = id_text(parsed_users[k]), id_text(parsed_items[k])
            users.setdefault(user_key, parsed_users[k])
            if user_index[k] < 0:
                new_users.setdefault(user_key, parsed_users[k])
            if item_index[k] < 0:
                unknown_items.setdefault(item_key, parsed_items[k])
            timestamp = received if entry.timestamp is None else int(entry.timestamp)
            rows.append(Feedback(user_key, item_key, float(entry.rating), timestamp))
        try:
            await asyncio.wrap_future(store.submit(rows))
        except StoreUnavailable as exc:
            raise ApiError(
                503, f"feedback store unavailable, nothing was stored; retry later ({exc})",
                "store",
            ) from None  # fmt: skip
        metrics.feedback_rows.inc(len(rows))
        n_unknown = int((item_index < 0).sum())
        if n_unknown:
            metrics.feedback_unknown_items.inc(n_unknown)
        # built to the schema here, as the recommendation routes do (no response-model pass)
        return JSONResponse(
            {
                "stored": len(rows),
                "users": [id_json(v) for v in users.values()],
                "new_users": [id_json(v) for v in new_users.values()],
                "unknown_items": [id_json(v) for v in unknown_items.values()],
                "note": (
                    f"{n_unknown} rating(s) of items the model does not know were stored; "
                    "they count after `mfrec retrain`"
                    if n_unknown
                    else None
                ),
            }
        )

    @app.get("/users/{user}/feedback", response_model=S.UserFeedback, tags=["feedback"])
    def user_feedback(user: str):
        """The user's stored feedback, oldest first."""
        state = live.current
        raw = parse_one(state, "user", user, "user")
        try:
            rows = store.user_feedback(id_text(raw))
        except StoreUnavailable as exc:
            raise ApiError(503, f"feedback store unavailable: {exc}", "store") from None
        items = state.parse_stored_items([row.item for row in rows])
        return {
            "user": id_json(raw),
            "ratings": [
                {
                    "item": id_json(items[k]) if items[k] is not None else row.item,
                    "rating": row.rating,
                    "timestamp": row.timestamp,
                }
                for k, row in enumerate(rows)
            ],
        }

    # -- operations -----------------------------------------------------------------------
    @app.get("/health/live", tags=["operations"])
    async def health_live():
        """The process answers."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["operations"])
    def health_ready():
        """The model is loaded and the store answers (503 otherwise)."""
        state = live.current
        try:
            store.ping()
        except StoreUnavailable as exc:
            return JSONResponse(
                {"status": "unavailable", "error": f"feedback store: {exc}", "field": "store"},
                status_code=503,
            )
        return {"status": "ready", "model_version": state.version, "store": store.kind}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics_text():
        """Prometheus text format."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/model", response_model=S.ModelInfo, tags=["operations"])
    async def model_info():
        """The model being served."""
        return _model_info(live.current)

    @app.post(
        "/admin/reload",
        response_model=S.ModelInfo,
        dependencies=[Depends(require_key)],
        tags=["operations"],
    )
    def admin_reload(body: S.ReloadRequest | None = None):
        """Load a model file (default: the served path again) and swap it in atomically;
        a file that cannot be loaded is refused and the old model keeps serving."""
        path = body.path if body is not None else None
        try:
            state = reload_model(path)
        except Exception as exc:  # any file that does not load is refused the same way
            raise ApiError(
                422, f"model refused, still serving the old one: {exc}", "path"
            ) from None
        return _model_info(state)

    # -- the try-it page ------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return HTMLResponse((PAGE_DIR / "index.html").read_text(encoding="utf-8"))

    @app.get("/page/{name}", include_in_schema=False)
    def page_file(name: str):
        if name not in PAGE_FILES:
            raise ApiError(404, f"no page file {name!r}", "path")
        return Response((PAGE_DIR / name).read_bytes(), media_type=PAGE_FILES[name])

    return app


def _query(model: type[BaseModel], request: Request) -> Any:
    """The request's query string validated by ``model``; a refusal is the same
    :class:`RequestValidationError` (so the same 422) that FastAPI's parameters give."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        ) from None


def _parameters(path_param: str, model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI parameters of a route: one string path parameter, and ``model``'s
    fields as optional query parameters (what FastAPI writes for ``Query`` ones)."""
    out: list[dict[str, Any]] = [
        {
            "name": path_param,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "title": path_param.title()},
        }
    ]
    for name, schema in model.model_json_schema()["properties"].items():
        entry = {"name": name, "in": "query", "required": False, "schema": schema}
        if "description" in schema:
            entry["description"] = schema["description"]
        out.append(entry)
    return out


def _model_info(state: ModelState) -> dict[str, Any]:
    model = state.model
    return {
        "path": state.path,
        "version": state.version,
        "model_class": type(model).__name__,
        "n_users": len(model.users_),
        "n_items": len(model.items_),
        "n_factors": int(model.n_factors_),
        "supports_fold_in": state.supports_fold_in,
        "rating_scale": tuple(float(v) for v in model.rating_scale_),
        "loaded_at": state.loaded_at,
    }


def _version() -> str:
    from mfrec._version import __version__

    return __version__


def config_to_env(config: ServeConfig) -> str:
    return json.dumps(asdict(config))


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn's worker processes: the config comes in ``MFREC_SERVE_CONFIG``."""
    config = ServeConfig(**json.loads(os.environ[CONFIG_ENV]))
    return create_app(config)
