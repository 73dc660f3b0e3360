"""Jobs made from a job: copies of it and other extensions' inner passes never get its map.

Stand-ins for the host's processing object: a plain class (weak references, as A1111's and
Forge's dataclasses) and ``SimpleNamespace`` (none). The real ADetailer is read in
``differential/webui/inner_pass.py``; how it marks its detail pass is what these stand-ins copy.
"""

import copy
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from differential.webui import callbacks
from differential.webui.fields import parse_settings
from differential.webui.inner_pass import inner_pass_of
from differential.webui.job import STATE_ATTRIBUTE, Geometry, JobState, Schedule, attach_state, job_state


class Job:
    """Like A1111's StableDiffusionProcessingImg2Img: a plain object, copied with ``copy.copy``."""

    def __init__(self, **attributes):
        self.__dict__.update(attributes)


def sampling_state() -> JobState:
    half = np.zeros((16, 16), np.float32)
    half[:, 8:] = 1.0
    state = JobState(parse_settings([{"enabled": True, "map": "unused"}], loader=lambda value, field: half))
    state.prepare_maps(Geometry(64, 64, 0, ((64, 64),)), (8, 8))
    init = torch.full((1, 4, 8, 8), 5.0)
    state.start_sampling(init, torch.ones_like(init), Schedule(torch.tensor([8.0, 4.0, 2.0, 1.0, 0.0]), 4, 3), 0.8)
    return state


@pytest.mark.parametrize("make", [Job, SimpleNamespace], ids=["weak-referenceable", "plain"])
def test_only_the_job_the_state_was_attached_to_has_it(make):
    p = make(extra_generation_params={})
    state = sampling_state()
    attach_state(p, state)
    assert job_state(p) is state
    duplicate = copy.copy(p)  # what XYZ, ADetailer and others do before running jobs of their own
    assert getattr(duplicate, STATE_ATTRIBUTE) is state  # the attribute travels with the copy ...
    assert job_state(duplicate) is None  # ... the state does not
    assert job_state(make()) is None
    unattached = make(**{STATE_ATTRIBUTE: JobState(state.settings)})  # set without attach_state
    assert job_state(unattached) is None


def test_the_blend_never_runs_in_a_copy_of_the_job():
    p = Job()
    state = sampling_state()
    attach_state(p, state)
    rows = torch.zeros(2, 4, 8, 8)
    for job, held in ((copy.copy(p), False), (p, True)):
        callbacks.on_cfg_denoiser(
            SimpleNamespace(x=rows, sigma=torch.tensor([8.0, 8.0]), denoiser=SimpleNamespace(p=job))
        )
        after = SimpleNamespace(x=torch.zeros(1, 4, 8, 8))
        callbacks.on_cfg_after_cfg(after)
        assert bool(after.x[..., :4].eq(5.0).all()) is held  # the map's black half is held only in p
        assert after.x[..., 4:].eq(0.0).all()


def adetailer_inner_job(outer: Job) -> Job:
    """What ADetailer 25.3.0's ``get_i2i_p`` makes: a new img2img job, the outer script args copied."""
    inner = Job(
        init_images=["the finished image"],
        image_mask="the face mask",
        inpaint_full_res=True,
        extra_generation_params=dict(outer.extra_generation_params),
        script_args=list(outer.script_args),
    )
    inner._ad_disabled = True
    inner._ad_inner = True
    return inner


def test_adetailer_detail_pass_is_recognised_and_gets_no_state():
    outer = Job(script_args=[{"enabled": True}], extra_generation_params={"Differential diffusion": "map 0"})
    attach_state(outer, sampling_state())
    inner = adetailer_inner_job(outer)
    assert inner_pass_of(inner) == "ADetailer"
    assert job_state(inner) is None
    assert inner_pass_of(outer) is None
    assert inner_pass_of(Job(_ad_disabled=True)) is None  # set on main jobs too, when ADetailer is off
    assert inner_pass_of(copy.copy(inner)) == "ADetailer"  # ADetailer copies its inner job per face


class XyzModule:
    """Stand-in for A1111's scripts/xyz_grid.py module: its axis list and option classes."""

    class AxisOption:
        def __init__(self, label, type, apply, choices=None):
            self.label, self.type, self.apply, self.choices = label, type, apply, choices

    def __init__(self):
        self.axis_options = [self.AxisOption("Nothing", str, None)]

    @staticmethod
    def boolean_choice(reverse=False):
        return lambda: ["True", "False"] if reverse else ["False", "True"]


def test_axes_are_added_once_with_choices(monkeypatch):
    from differential.webui import settings

    xyz = XyzModule()
    data = SimpleNamespace(module=xyz, script_class=type("Script", (), {"__module__": "xyz_grid.py"}))
    monkeypatch.setitem(sys.modules, "modules", SimpleNamespace(scripts=SimpleNamespace(scripts_data=[data])))
    settings.add_axis_options()
    settings.add_axis_options()  # both UI builds of a start, a reload: never twice
    labels = [option.label for option in xyz.axis_options]
    assert len(labels) == len(set(labels)) == 1 + len(settings.AXES)
    assert {"[DD] Feather", "[DD] Strength at white", "[DD] Map source", "[DD] Easing", "[DD] Invert"} <= set(labels)
    by_label = {option.label: option for option in xyz.axis_options}
    source = by_label["[DD] Map source"]
    assert source.choices() == ["upload", "paint", "linear", "radial", "mask", "luminance", "depth"]
    cell = Job()
    source.apply(cell, "radial", None)
    by_label["[DD] Strength at white"].apply(cell, "0.5", None)
    by_label["[DD] Invert"].apply(cell, "True", None)
    assert (cell.dd_source, cell.dd_strength_at_white, cell.dd_invert) == ("radial", 0.5, True)
