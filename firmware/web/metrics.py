"""``/metrics`` for Prometheus: behind the operator token, or alone on its own address.

A scrape shows sessions' energy and the budget; anyone on the LAN should not read that, so the
route on the station's own listener asks for the operator token (Prometheus sends it with
``authorization: {credentials: ...}``). Where the operator prefers a network boundary, the
metrics listen on a separate address (loopback, or a management VLAN) with no token.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from firmware.metrics import StationMetrics
from firmware.web.access import require_operator

METRICS_KEY = web.AppKey("metrics", StationMetrics)


def _response(metrics: StationMetrics) -> web.Response:
    response = web.Response(body=metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def metrics_with_token(request: web.Request) -> web.Response:
    require_operator(request)
    return _response(request.app[METRICS_KEY])


async def metrics_open(request: web.Request) -> web.Response:
    return _response(request.app[METRICS_KEY])


def add_metrics_route(app: web.Application, metrics: StationMetrics) -> None:
    """``/metrics`` on the station's listener, for the operator only."""
    app[METRICS_KEY] = metrics
    app.router.add_get("/metrics", metrics_with_token)


def metrics_app(metrics: StationMetrics) -> web.Application:
    """A listener of its own that serves only ``/metrics``, bound where the operator says."""
    app = web.Application()
    app[METRICS_KEY] = metrics
    app.router.add_get("/metrics", metrics_open)
    return app
