"""The HTTP service: recommendations, fold-in and durable feedback over FastAPI.

Rooms: :mod:`~mfrec.serve.app` (routes only), :mod:`~mfrec.serve.live` (the model being
served, per-user fold-in overlays, atomic reload), :mod:`~mfrec.serve.store` (the SQLite
and PostgreSQL feedback stores), :mod:`~mfrec.serve.schemas` (request and response
models) and ``page/`` (the static try-it page). Needs ``pip install "mfrec[serve]"``;
nothing here is imported by ``import mfrec``.
"""
