"""The adapter's host-agnostic parts: argument contract, infotext, job state, callbacks.

A stand-in for A1111's callback params is used for the glue logic here; the same behaviour is
proven against a real WebUI in tests/webui/.
"""

import base64
import io
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from PIL import Image

from differential.schedule import ScheduleNotDescending
from differential.webui import callbacks, model_support, sampling
from differential.webui.fields import FIELDS, POSITIONAL, FieldError, json_schema, normalise_args, parse_settings
from differential.webui.infotext import ENABLED_KEY, KEYS, infotext_params, read_field
from differential.webui.job import STATE_ATTRIBUTE, Geometry, JobState, Schedule, attach_state


def b64_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


WHITE = b64_png(Image.new("L", (16, 16), 255))


def test_positional_and_named_forms_agree():
    positional = [True, WHITE, True, 2.0, 0.1, 0.9, 1.5, 0.2, 0.8, True]
    named = [dict(zip(POSITIONAL, positional))]
    a, b = parse_settings(positional), parse_settings(named)
    assert a.adjust == b.adjust and a.exact_keep is b.exact_keep is True
    assert np.array_equal(a.maps[0], b.maps[0])


def test_named_form_overrides_the_other_slots():
    # A1111 copies args[0] into the first slot and keeps the UI defaults (or the values an
    # `infotext` request field restored) in the others: the dict's fields win over those.
    restored = [None, True, 2.0, 0.0, 1.0, 1.0, 0.0, 1.0, False]
    settings = parse_settings([{"map": WHITE}, *restored])
    assert settings.enabled and len(settings.maps) == 1
    assert settings.adjust.invert is True and settings.adjust.feather == 2.0
    assert parse_settings([{"map": WHITE, "invert": False}, *restored]).adjust.invert is False
    assert parse_settings([{"enabled": False, "map": WHITE}, *restored]).enabled is False


def test_disabled_jobs_are_not_validated():
    assert parse_settings([False, "garbage", "x"]).enabled is False
    assert parse_settings([{"enabled": False, "map": "not base64 !!"}]).enabled is False


@pytest.mark.parametrize(
    "named, field, message",
    [
        ({"enabled": "yes"}, "enabled", "true or false"),
        ({"enabled": True}, "map", "no change map"),
        ({"enabled": True, "map": "%%%"}, "map", "base64"),
        ({"enabled": True, "map": WHITE, "feather": "3"}, "feather", "a number"),
        ({"enabled": True, "map": WHITE, "gamma": math.nan}, "gamma", "finite"),
        ({"enabled": True, "map": WHITE, "black_point": 2}, "black_point", r"\[0, 1\]"),
        ({"enabled": True, "map": WHITE, "white_point": 0.0}, "white_point", "black_point"),
        ({"enabled": True, "maps": []}, "maps", "non-empty"),
        ({"enabled": True, "maps": [WHITE, "x!"]}, "maps[1]", "base64"),
        ({"enabled": True, "map": WHITE, "maps": [WHITE]}, "maps", "one of them"),
        ({"enabled": True, "mapp": WHITE}, "mapp", "one of enabled, map"),
        ({"enabled": True, "source": "spiral"}, "source", "one of upload, paint, linear"),
        ({"enabled": True, "source": "paint"}, "paint", "nothing painted"),
        ({"enabled": True, "source": "paint", "paint": " "}, "paint", "nothing painted"),
        ({"enabled": True, "source": "linear", "easing": "bounce"}, "easing", "smoothstep"),
        ({"enabled": True, "source": "radial", "radial_x": 1.5}, "radial_x", r"\[0, 1\]"),
        ({"enabled": True, "source": "depth", "depth_model": 3}, "depth_model", "a string"),
        ({"enabled": True, "map_dir": ["a"]}, "map_dir", "a string"),
    ],
)
def test_errors_name_the_field(named, field, message):
    with pytest.raises(FieldError, match=message) as caught:
        parse_settings([named])
    assert caught.value.field == field


def test_unknown_fields_list_the_valid_ones():
    with pytest.raises(FieldError) as caught:
        normalise_args([{"enabled": True, "strength": 1}])
    assert "exact_keep" in caught.value.expected and "maps" in caught.value.expected


def test_schema_is_valid_and_describes_every_field():
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == set(POSITIONAL) | {"maps"}
    Draft202012Validator(schema).validate({"enabled": True, "map": WHITE, "feather": 4})


def test_infotext_round_trip():
    settings = parse_settings(
        [{"enabled": True, "map": WHITE, "invert": True, "feather": 3.5, "gamma": 0.8, "exact_keep": True}]
    )
    params = infotext_params(settings)
    assert params[ENABLED_KEY].startswith("map ") and len(params[ENABLED_KEY]) == 14
    as_text = {key: str(value) for key, value in params.items()}  # A1111 parses values as strings
    assert read_field(as_text, "enabled") is True
    restored = {name: read_field(as_text, name) for name in KEYS}
    assert restored["invert"] is True and restored["exact_keep"] is True
    assert restored["feather"] == 3.5 and restored["gamma"] == 0.8
    assert read_field({}, "enabled") is False and read_field({}, "feather") is None


def test_substep_is_on_by_default_written_and_read_back_and_off_for_older_images():
    settings = parse_settings([{"enabled": True, "map": WHITE}])
    assert settings.substep is True
    params = {key: str(value) for key, value in infotext_params(settings).items()}
    assert params[KEYS["substep"]] == "True" and read_field(params, "substep") is True
    off = parse_settings([{"enabled": True, "map": WHITE, "substep": False}])
    assert read_field({k: str(v) for k, v in infotext_params(off).items()}, "substep") is False
    # an image made before the setting existed was made with whole steps: pasting it restores that
    assert read_field({ENABLED_KEY: "map 0123456789"}, "substep") is False
    assert read_field({}, "substep") is None
    with pytest.raises(FieldError, match="substep"):
        parse_settings([{"enabled": True, "map": WHITE, "substep": "yes"}])


def _gradient_map() -> Image.Image:
    return Image.fromarray(np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1)))


@pytest.mark.parametrize(
    "schedule_substep, setting, expect_weights", [(True, True, True), (True, False, False), (False, True, False)]
)
def test_substep_weights_only_for_k_diffusion_schedules_with_the_setting_on(schedule_substep, setting, expect_weights):
    state = _state(_gradient_map(), substep=setting)
    levels = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.0])
    schedule = Schedule(levels, 4, 3, substep=schedule_substep)
    blend = state.start_sampling(torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 8, 8), schedule, 1.0)
    has_weights = any(blend.hold_weight(step, torch.zeros(1)) is not None for step in range(4))
    assert has_weights is expect_weights


def test_inpaint_conditioning_setting_is_a_field_an_infotext_key_and_an_axis():
    from differential.webui.settings import AXES, CHECKBOXES, DEFAULTED

    assert parse_settings([{"map": WHITE}]).inpaint_conditioning is True  # on by default
    off = parse_settings([{"map": WHITE, "inpaint_conditioning": False}])
    assert off.inpaint_conditioning is False
    with pytest.raises(FieldError, match="true or false"):
        parse_settings([{"map": WHITE, "inpaint_conditioning": "no"}])
    assert KEYS["inpaint_conditioning"] not in infotext_params(off)  # written for inpainting models only
    params = {key: str(value) for key, value in infotext_params(off, inpainting=True).items()}
    assert params[KEYS["inpaint_conditioning"]] == "False"
    assert read_field(params, "inpaint_conditioning") is False
    assert read_field({ENABLED_KEY: "map x"}, "inpaint_conditioning") is None  # absent: the panel keeps its value
    names = {spec.name for spec in AXES} & {spec.name for spec in DEFAULTED}
    assert "inpaint_conditioning" in names and "inpaint_conditioning" in CHECKBOXES


def test_job_checks_map_count_against_init_images():
    settings = parse_settings([{"enabled": True, "maps": [WHITE, WHITE]}])
    JobState(settings).check_batch(init_images=2, batch_size=2)
    with pytest.raises(FieldError, match="one per init image"):
        JobState(settings).check_batch(init_images=3, batch_size=3)
    with pytest.raises(FieldError, match="batch size"):
        JobState(settings).check_batch(init_images=2, batch_size=1)


def _state(map_image: Image.Image, **fields) -> JobState:
    state = JobState(parse_settings([{"enabled": True, "map": b64_png(map_image), **fields}]))
    state.prepare_maps(Geometry(64, 64, 0, ((64, 64),)), (8, 8))
    return state


def _half_map() -> Image.Image:
    image = Image.new("L", (64, 64), 0)
    image.paste(255, (32, 0, 64, 64))
    return image


def test_prepare_maps_and_release():
    state = _state(_half_map())
    assert state.cell_maps.shape == (1, 1, 8, 8)
    assert state.cell_maps[0, 0, :, :4].max() == 0 and state.cell_maps[0, 0, :, 4:].min() == 1
    levels = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.0])
    blend = state.start_sampling(torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 8, 8), Schedule(levels, 4, 3), 0.8)
    assert blend.release[0, 0, 0, :4].tolist() == [4, 4, 4, 4]  # never released
    assert blend.release[0, 0, 0, 4:].tolist() == [0, 0, 0, 0]


def test_callbacks_blend_only_jobs_with_state_and_forget_each_evaluation():
    state = _state(_half_map())
    levels = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.0])
    init = torch.full((1, 4, 8, 8), 5.0)
    state.start_sampling(init, torch.ones_like(init), Schedule(levels, 4, 3), 0.8)
    p = SimpleNamespace()
    attach_state(p, state)
    rows = torch.zeros(2, 4, 8, 8)  # cond + uncond rows; the last B are the sampler's x
    params = SimpleNamespace(x=rows, sigma=torch.tensor([8.0, 8.0]), denoiser=SimpleNamespace(p=p))
    callbacks.on_cfg_denoiser(params)
    after = SimpleNamespace(x=torch.zeros(1, 4, 8, 8))
    callbacks.on_cfg_after_cfg(after)
    assert after.x[..., :4].eq(5.0).all() and after.x[..., 4:].eq(0.0).all()
    untouched = SimpleNamespace(x=torch.zeros(1, 4, 8, 8))
    callbacks.on_cfg_after_cfg(untouched)  # no evaluation recorded: nothing happens
    assert untouched.x.eq(0).all()
    other_job = SimpleNamespace(x=rows, sigma=torch.tensor([8.0, 8.0]), denoiser=SimpleNamespace(p=SimpleNamespace()))
    callbacks.on_cfg_denoiser(other_job)
    callbacks.on_cfg_after_cfg(untouched)
    assert untouched.x.eq(0).all()


def test_cfgpp_uncond_noise_of_held_cells_follows_the_held_prediction():
    """DDIM CFG++ steps along ``denoiser.last_noise_uncond``: held cells must step along their own eps."""
    state = _state(_half_map())
    levels = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.0])
    init = torch.full((1, 4, 8, 8), 5.0)
    state.start_sampling(init, torch.ones_like(init), Schedule(levels, 4, 3), 0.8)
    uncond = torch.full((1, 4, 8, 8), 7.0)
    p = SimpleNamespace()
    attach_state(p, state)
    denoiser = SimpleNamespace(p=p, need_last_noise_uncond=True)
    x = torch.full((1, 4, 8, 8), 9.0)  # sigma-frame input at level 8: held eps = (9 - 5) / 8
    callbacks.on_cfg_denoiser(SimpleNamespace(x=x, sigma=torch.tensor([8.0]), denoiser=denoiser))
    denoiser.last_noise_uncond = uncond  # the host sets it before the after-CFG callback
    callbacks.on_cfg_after_cfg(SimpleNamespace(x=torch.zeros(1, 4, 8, 8)))
    assert denoiser.last_noise_uncond[..., :4].eq(0.5).all() and denoiser.last_noise_uncond[..., 4:].eq(7.0).all()
    denoiser.need_last_noise_uncond = False  # other samplers: left alone
    denoiser.last_noise_uncond = uncond
    callbacks.on_cfg_denoiser(SimpleNamespace(x=x, sigma=torch.tensor([4.0]), denoiser=denoiser))
    callbacks.on_cfg_after_cfg(SimpleNamespace(x=torch.zeros(1, 4, 8, 8)))
    assert denoiser.last_noise_uncond is uncond


def test_kdiffusion_cfgpp_post_cfg_hooks_see_the_held_uncond_prediction():
    """Forge Neo's k-diffusion CFG++ samplers read ``uncond_denoised`` in a post-CFG hook of their
    ``model_options``: held cells must give it their held prediction (the init latent)."""
    state = _state(_half_map())
    levels = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.0])
    init = torch.full((1, 4, 8, 8), 5.0)
    state.start_sampling(init, torch.ones_like(init), Schedule(levels, 4, 3), 0.8)
    p = SimpleNamespace()
    attach_state(p, state)
    seen = []

    def sampler_hook(args):  # what sample_euler_cfg_pp registers: keeps uncond_denoised, returns denoised
        seen.append(args["uncond_denoised"])
        return args["denoised"]

    hooks = [sampler_hook]
    sampler = SimpleNamespace(sampler_extra_args={"model_options": {"sampler_post_cfg_function": hooks}})
    denoiser = SimpleNamespace(p=p, sampler=sampler)
    uncond = torch.full((1, 4, 8, 8), 7.0)
    for _ in range(2):  # wrapped once, whatever the number of evaluations
        callbacks.on_cfg_denoiser(
            SimpleNamespace(x=torch.zeros(1, 4, 8, 8), sigma=torch.tensor([8.0]), denoiser=denoiser)
        )
        denoised = hooks[0]({"denoised": uncond, "uncond_denoised": uncond})
        callbacks.on_cfg_after_cfg(SimpleNamespace(x=denoised))
    assert len(hooks) == 1 and len(seen) == 2
    assert seen[-1][..., :4].eq(5.0).all() and seen[-1][..., 4:].eq(7.0).all()
    hooks[0]({"denoised": uncond, "uncond_denoised": uncond})  # outside an evaluation: passed through
    assert seen[-1] is uncond


def test_a_schedule_that_does_not_descend_is_refused_naming_the_scheduler():
    """Forge Neo's Align Your Steps on a flow model (sigma_max 1) ends above its last level."""
    state = _state(_half_map())
    init = torch.zeros(1, 4, 8, 8)
    levels = torch.tensor([0.43, 0.1, 0.0077, 0.029, 0.0])
    with pytest.raises(ScheduleNotDescending) as caught:
        state.start_sampling(init, torch.ones_like(init), Schedule(levels, 8, 4), 0.8)
    error = sampling.scheduler_refusal(SimpleNamespace(scheduler="Align Your Steps"), caught.value.levels)
    assert error.field == "scheduler" and "Align Your Steps" in error.problem and "0.0077, 0.029" in error.problem


def test_video_latent_models_are_named_unsupported():
    assert model_support.unsupported_model(SimpleNamespace(is_wan=False)) is None
    assert model_support.unsupported_model(None) is None
    error = model_support.unsupported_model(SimpleNamespace(is_wan=True))
    assert error is not None and "video latents" in error.problem
    assert model_support.unsupported_latent(torch.zeros(1, 4, 8, 8)) is None
    assert "(1, 16, 1, 8, 8)" in model_support.unsupported_latent(torch.zeros(1, 16, 1, 8, 8)).problem


def test_exact_keep_restores_black_pixels_exactly():
    state = _state(_half_map(), exact_keep=True)
    original = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    state.originals = [original]
    generated = Image.new("RGB", (64, 64), (1, 2, 3))
    out = np.asarray(state.restore_pixels(generated, 0))
    assert np.array_equal(out[:, :32], np.asarray(original)[:, :32])
    assert (out[:, 33:] == (1, 2, 3)).all()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"alwayson_scripts": {"Differential Diffusion": {"args": [{"enabled": True, "map": "??"}]}}}, "map"),
        (
            {"alwayson_scripts": {"differential diffusion": {"args": {"enabled": True}}}},
            "alwayson_scripts['differential diffusion'].args",
        ),
        ({"alwayson_scripts": {"differential diffusion": [True]}}, "alwayson_scripts['differential diffusion']"),
        (
            {
                "init_images": ["a", "b", "c"],
                "batch_size": 3,
                "alwayson_scripts": {"differential diffusion": {"args": [{"maps": [WHITE, WHITE]}]}},
            },
            "maps",
        ),
        (
            {
                "init_images": ["a", "b"],
                "batch_size": 1,
                "alwayson_scripts": {"differential diffusion": {"args": [{"maps": [WHITE, WHITE]}]}},
            },
            "maps",
        ),
    ],
)
def test_request_validation_names_the_field(body, field):
    from differential.webui.validation import validate_img2img_request

    assert validate_img2img_request(body).field == field


def test_request_validation_passes_good_and_foreign_requests():
    from differential.webui.validation import validate_img2img_request

    good = {"init_images": ["a"], "alwayson_scripts": {"differential diffusion": {"args": [{"map": WHITE}]}}}
    assert validate_img2img_request(good) is None
    assert validate_img2img_request({"alwayson_scripts": {"other": {"args": [1]}}}) is None
    assert validate_img2img_request([1, 2]) is None


def test_request_validation_applies_an_infotext_field_like_a1111():
    from differential.webui.validation import validate_img2img_request

    def parse(text):  # stands in for A1111's parse_generation_parameters (proven in tests/webui)
        return dict(part.split(": ", 1) for part in text.split(", "))

    infotext = "Differential diffusion: map 0123456789, DD source: linear, DD angle: 30.0"
    body = {"init_images": ["a"], "infotext": infotext, "alwayson_scripts": {"differential diffusion": {"args": [{}]}}}
    assert validate_img2img_request(body, parse_infotext=parse) is None  # the infotext restores the source
    assert validate_img2img_request(body).field == "map"  # without it: an upload without a map
    body["alwayson_scripts"]["differential diffusion"]["args"] = [{"source": "upload"}]
    assert validate_img2img_request(body, parse_infotext=parse).field == "map"  # the request's fields win
    body["infotext"] = "Differential diffusion: map 0123456789, DD source: linear, DD angle: 1000"
    body["alwayson_scripts"]["differential diffusion"]["args"] = [{}]
    assert validate_img2img_request(body, parse_infotext=parse).field == "gradient_angle"


def test_request_validation_of_map_sources():
    from differential.webui.validation import validate_img2img_request

    def request(fields, **body):
        return {"init_images": ["a", "b"], **body, "alwayson_scripts": {"differential diffusion": {"args": [fields]}}}

    assert validate_img2img_request(request({"source": "linear"}, batch_size=2)) is None
    assert validate_img2img_request(request({"source": "mask"}, mask="m")) is None
    error = validate_img2img_request(request({"source": "mask"}))
    assert error.field == "source" and "`mask`" in error.problem
    error = validate_img2img_request(request({"map": WHITE, "map_dir": "/srv/maps"}))
    assert error.field == "map_dir" and "`maps`" in error.expected
    missing = validate_img2img_request(request({"source": "depth"}), depth_problem=lambda name: "no estimator here")
    assert missing.field == "source" and "no estimator here" in missing.problem
    assert validate_img2img_request(request({"source": "depth"}), depth_problem=lambda name: None) is None
    soft = {"differential diffusion": {"args": [{"source": "mask"}]}, "Soft Inpainting": {"args": [True]}}
    both = validate_img2img_request({"init_images": ["a"], "mask": "m", "alwayson_scripts": soft})
    assert both.field == "enabled" and "Soft Inpainting" in both.problem
    alone = {"init_images": ["a"], "mask": "m", "alwayson_scripts": {"Soft Inpainting": {"args": [True]}}}
    assert validate_img2img_request(alone) is None  # Soft Inpainting without this extension is not ours to check


def test_middleware_answers_422_or_replays_the_body():
    import asyncio
    import json as jsonlib

    from differential.webui.validation import RequestValidationMiddleware

    seen = {}

    async def app(scope, receive, send):
        message = await receive()
        seen["body"] = message["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})

    def run(payload):
        sent = []
        body = jsonlib.dumps(payload).encode()
        chunks = [
            {"type": "http.request", "body": body[:10], "more_body": True},
            {"type": "http.request", "body": body[10:], "more_body": False},
        ]

        async def receive():
            return chunks.pop(0)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/sdapi/v1/img2img"}
        asyncio.run(RequestValidationMiddleware(app)(scope, receive, send))
        return sent

    bad = run({"alwayson_scripts": {"differential diffusion": {"args": [{"feather": -1, "map": WHITE}]}}})
    assert bad[0]["status"] == 422 and jsonlib.loads(bad[1]["body"])["field"] == "feather"
    ok = run({"prompt": "x"})
    assert ok[0]["status"] == 200 and seen["body"][:10] == b'{"prompt":'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from([*POSITIONAL, "maps", "other"])
#: Valid values of the choice fields (random text would almost never hit one).
CHOICE_VALUES = sorted({choice for spec in FIELDS for choice in spec.choices})


@pytest.mark.fuzz
@given(
    st.one_of(
        st.lists(json_values, max_size=12),
        st.builds(
            lambda named, rest: [named, *rest],
            st.dictionaries(field_names, json_values | st.just(WHITE) | st.sampled_from(CHOICE_VALUES)),
            st.lists(json_values, max_size=3),
        ),
    )
)
def test_parser_never_fails_other_than_with_a_field_error(args):
    try:
        parsed = parse_settings(args)
    except FieldError as error:
        assert isinstance(error.field, str) and error.problem and error.expected
        return
    assert isinstance(parsed.enabled, bool)
    if parsed.enabled:
        # a map, or one to be made in the job (generated source, Batch tab folder)
        assert parsed.maps or parsed.source.generated or parsed.map_dir
        assert not parsed.adjust.problems()


def test_nothing_of_a_finished_job_stays_referenced():
    import gc
    import weakref

    state = _state(_half_map())
    levels = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.0])
    init = torch.zeros(1, 4, 8, 8)
    state.start_sampling(init, torch.ones_like(init), Schedule(levels, 4, 3), 0.8)
    p = SimpleNamespace()
    attach_state(p, state)
    rows = torch.zeros(2, 4, 8, 8)
    for level in levels[:-1].tolist():
        callbacks.on_cfg_denoiser(
            SimpleNamespace(x=rows, sigma=torch.tensor([level] * 2), denoiser=SimpleNamespace(p=p))
        )
        callbacks.on_cfg_after_cfg(SimpleNamespace(x=torch.zeros(1, 4, 8, 8)))
    blend_ref, noise_ref = weakref.ref(state.blend), weakref.ref(state.blend.noise)
    del p.__dict__[STATE_ATTRIBUTE]  # what Script.postprocess does
    del state, p, rows
    gc.collect()
    assert blend_ref() is None and noise_ref() is None
    assert callbacks._current is None
