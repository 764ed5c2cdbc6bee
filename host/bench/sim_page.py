"""The bench's device simulator page, ``/sim``: attach virtual vehicles, look inside, break them."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from firmware.web.render import json_script, render

HERE = Path(__file__).parent


async def sim_page(request: web.Request) -> web.Response:
    from host.bench.station import bench_bay

    bay = bench_bay(request)
    return render(
        HERE / "templates",
        "sim.html",
        initial=json_script(
            {
                "catalog": [spec.public_view() for spec in bay.catalog.values()],
                "ports": bay.view(),
            }
        ),
    )


def add_sim_page(app: web.Application) -> None:
    app.router.add_get("/sim", sim_page)
    app.router.add_static("/sim-static/", HERE / "static", append_version=True)
