"""HTTP: version and schema routes, and validation of img2img requests before A1111 runs them."""

from __future__ import annotations

from .. import __version__
from . import depth, host_kind
from .fields import POSITIONAL, TITLE, json_schema
from .validation import RequestValidationMiddleware

PREFIX = "/differential-diffusion/v1"


def on_app_started(demo, app) -> None:
    def version():
        return {
            "name": TITLE,
            "version": __version__,
            "host": host_kind.NAME,
            "script_title": TITLE,
            "positional_args": list(POSITIONAL),
        }

    def schema():
        return json_schema()

    app.add_api_route(f"{PREFIX}/version", version, methods=["GET"])
    app.add_api_route(f"{PREFIX}/schema", schema, methods=["GET"])
    if not any(m.cls is RequestValidationMiddleware for m in app.user_middleware):
        # As A1111 does in initialize_util.setup_middleware: reset, add, rebuilt on next request.
        app.middleware_stack = None
        from modules import infotext_utils

        app.add_middleware(
            RequestValidationMiddleware,
            depth_problem=depth_problem,
            parse_infotext=infotext_utils.parse_generation_parameters,
        )


def depth_problem(depth_model: str) -> str | None:
    """Why the Depth source cannot run (None when an estimator is on disk)."""
    try:
        depth.estimator(depth_model)
    except LookupError as error:
        return str(error)
    return None
