"""Conflicting companions are recognised in a job (stand-in for the host's processing object) and a request."""

from types import SimpleNamespace

from differential.webui.companions import soft_inpainting_conflict, soft_inpainting_in_job, soft_inpainting_in_request


def job(enabled: bool, mask: object = "mask", title: str = "Soft Inpainting"):
    ours = SimpleNamespace(title=lambda: "Differential Diffusion", args_from=0, args_to=2)
    soft = SimpleNamespace(title=lambda: title, args_from=2, args_to=9)
    return SimpleNamespace(
        image_mask=mask,
        scripts=SimpleNamespace(alwayson_scripts=[ours, soft]),
        script_args=[True, "map", enabled, 1, 0.5, 4, 0, 0.5, 2],
    )


def test_soft_inpainting_conflicts_only_when_enabled_with_a_mask():
    assert soft_inpainting_in_job(job(True))
    assert not soft_inpainting_in_job(job(False))
    assert not soft_inpainting_in_job(job(True, mask=None))  # without a mask it does nothing
    assert not soft_inpainting_in_job(job(True, title="Something else"))
    assert not soft_inpainting_in_job(SimpleNamespace(image_mask="m"))  # no script runner (API-less stand-in)


def test_soft_inpainting_in_a_request():
    body = {"mask": "b64", "alwayson_scripts": {"soft inpainting": {"args": [True, 1]}}}
    assert soft_inpainting_in_request(body)
    assert not soft_inpainting_in_request(dict(body, mask=None))
    assert not soft_inpainting_in_request({"mask": "b64", "alwayson_scripts": {"Soft Inpainting": {"args": [False]}}})
    assert not soft_inpainting_in_request({"mask": "b64", "alwayson_scripts": {"Soft Inpainting": {"args": {}}}})
    assert not soft_inpainting_in_request({"mask": "b64", "alwayson_scripts": []})


def test_the_refusal_names_both_and_the_way_out():
    error = soft_inpainting_conflict()
    assert error.field == "enabled"
    assert "Soft Inpainting" in error.problem and "Differential Diffusion" in error.expected
    assert "Inpaint mask" in error.expected
