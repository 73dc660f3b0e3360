"""The AUTOMATIC1111 adapter: Script, UI, API arguments, infotext, settings, callbacks.

The only part of the project that imports A1111's ``modules`` (in ``script``, ``host``,
``settings`` and :func:`register`); no algorithm lives here.
"""


def register() -> None:
    """Register every A1111 callback once; safe to call again on script reload."""
    from modules import script_callbacks

    from . import callbacks, routes, settings

    for registrar, function in (
        (script_callbacks.on_cfg_denoiser, callbacks.on_cfg_denoiser),
        (script_callbacks.on_cfg_after_cfg, callbacks.on_cfg_after_cfg),
        (script_callbacks.on_app_started, routes.on_app_started),
        (script_callbacks.on_ui_settings, settings.on_ui_settings),
        (script_callbacks.on_ui_settings, settings.add_axis_options),  # before any script UI (see settings)
    ):
        script_callbacks.remove_callbacks_for_function(function)
        registrar(function, name="differential_diffusion")
