"""HTTP routes: version and the JSON schema of the script's named fields."""

from __future__ import annotations

from .. import __version__
from .fields import POSITIONAL, TITLE, json_schema

PREFIX = "/differential-diffusion/v1"


def on_app_started(demo, app) -> None:
    def version():
        return {"name": TITLE, "version": __version__, "script_title": TITLE, "positional_args": list(POSITIONAL)}

    def schema():
        return json_schema()

    app.add_api_route(f"{PREFIX}/version", version, methods=["GET"])
    app.add_api_route(f"{PREFIX}/schema", schema, methods=["GET"])
