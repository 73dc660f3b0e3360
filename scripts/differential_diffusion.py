"""A1111 entry point: re-exports the Script; everything else lives in the `differential` package."""

from differential.webui import register
from differential.webui.script import DifferentialDiffusionScript as Script  # noqa: F401

register()
