"""Issue 13: every map of an img2img request is decoded by the request check (422 when corrupt),
once, off the event loop, and handed to the job; nothing is kept past the request.

A1111 is stood in for by an ASGI app that does what ``Script.process`` does with the request's
arguments (``parse_settings`` with its default loader).
"""

from __future__ import annotations

import asyncio
import json
import threading

import numpy as np
import pytest
from damaged import DAMAGED, b64, encode, noise_image
from PIL import Image

from differential.maps import load_map as fresh_load
from differential.webui import decoded
from differential.webui.decoded import DECODED, DecodedMaps
from differential.webui.fields import parse_settings
from differential.webui.validation import RequestValidationMiddleware, validate_img2img_request

GOOD = b64(encode(noise_image(32, seed=1)))
OTHER = b64(encode(Image.new("L", (16, 16), 128)))


def request(fields: dict, images: int = 1) -> dict:
    return {
        "init_images": ["i"] * images,
        "batch_size": images,
        "alwayson_scripts": {"differential diffusion": {"args": [fields]}},
    }


#: (fields with the damaged map in ``BAD``, init images, the field the 422 names)
PLACES = [
    ({"map": "BAD"}, 1, "map"),
    ({"maps": [GOOD, "BAD"]}, 2, "maps[1]"),
    ({"source": "paint", "paint": "BAD"}, 1, "paint"),
]


def placed(fields: dict, bad: str) -> dict:
    return {
        name: (bad if value == "BAD" else [bad if item == "BAD" else item for item in value])
        if isinstance(value, (str, list)) and "BAD" in value
        else value
        for name, value in fields.items()
    }


class CountingLoads:
    """Counts the decodes (``decoded.load_map``) and the threads they ran in."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        self.threads: list[str] = []
        real = decoded.load_map

        def load_map(value, field="map"):
            self.calls.append(field)
            self.threads.append(threading.current_thread().name)
            return real(value, field)

        monkeypatch.setattr(decoded, "load_map", load_map)


class StandIn:
    """A1111 stand-in: reads the replayed body and parses the script's args like the job does."""

    def __init__(self, status: int = 200, run_job: bool = True, fail: bool = False):
        self.status, self.run_job, self.fail = status, run_job, fail
        self.jobs: list = []
        self.kept_during_job: list[int] = []

    async def __call__(self, scope, receive, send):
        message = await receive()
        body = json.loads(message["body"])
        if self.fail:
            raise RuntimeError("A1111 failed")
        if self.run_job:
            args = body["alwayson_scripts"]["differential diffusion"]["args"]
            self.kept_during_job.append(len(DECODED))
            self.jobs.append(await asyncio.to_thread(parse_settings, args))  # the job runs in a worker thread
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


#: How many maps were kept when each response reached the client.
KEPT_AT_RESPONSE: list[int] = []


def call(app, payload: dict) -> tuple[int, dict | None]:
    """POST ``payload`` to /sdapi/v1/img2img through the middleware; (status, JSON body of a 422)."""
    sent = []
    KEPT_AT_RESPONSE.clear()
    body = json.dumps(payload).encode()
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            KEPT_AT_RESPONSE.append(len(DECODED))
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/sdapi/v1/img2img"}
    asyncio.run(RequestValidationMiddleware(app)(scope, receive, send))
    status = sent[0]["status"]
    return status, (json.loads(sent[1]["body"]) if status == 422 else None)


@pytest.mark.parametrize("damage", sorted(DAMAGED))
@pytest.mark.parametrize("fields, images, field", PLACES, ids=[place[2] for place in PLACES])
def test_damaged_map_is_a_422_naming_the_field(damage, fields, images, field):
    error = validate_img2img_request(request(placed(fields, DAMAGED[damage]()), images))
    assert error is not None and error.field == field and error.problem.startswith("corrupt image data")


@pytest.mark.parametrize("fields, images, field", PLACES, ids=[place[2] for place in PLACES])
def test_middleware_answers_422_for_every_damage_before_the_job(fields, images, field):
    app = StandIn()
    for damage, make in DAMAGED.items():
        status, body = call(app, request(placed(fields, make()), images))
        assert status == 422, damage
        assert body["field"] == field and body["problem"].startswith("corrupt image data")
        assert body["error"] == "Differential Diffusion: invalid argument"
        assert body["detail"] == f"{field}: {body['problem']}; expected {body['expected']}"
    assert app.jobs == [] and len(DECODED) == 0


@pytest.mark.parametrize(
    "fields, images",
    [({"map": GOOD}, 1), ({"maps": [GOOD, OTHER]}, 2), ({"source": "paint", "paint": GOOD}, 1)],
)
def test_a_good_map_is_decoded_once_off_the_loop_and_handed_to_the_job(monkeypatch, fields, images):
    loads = CountingLoads(monkeypatch)
    app = StandIn()
    status, _ = call(app, request(fields, images))
    assert status == 200 and len(app.jobs) == 1
    assert len(loads.calls) == images  # one decode per map: the check's; the job took it
    assert set(loads.threads) == {"differential-diffusion-check_0"}
    assert app.kept_during_job == [images]
    sent = fields.get("maps") or [fields.get("map") or fields["paint"]]
    assert [m.shape for m in app.jobs[0].maps] == [fresh_load(m).shape for m in sent]
    assert all(np.array_equal(got, fresh_load(m)) for got, m in zip(app.jobs[0].maps, sent))
    assert KEPT_AT_RESPONSE == [0]  # released when the job is over, before its response goes out
    assert len(DECODED) == 0 and DECODED.nbytes == 0


def test_nothing_is_kept_when_a1111_answers_without_a_job_or_fails():
    for app in (StandIn(status=404, run_job=False), StandIn(status=422, run_job=False)):
        assert call(app, request({"map": GOOD}))[0] in (404, 422)
        assert len(DECODED) == 0
    with pytest.raises(RuntimeError, match="A1111 failed"):
        call(StandIn(fail=True), request({"map": GOOD}))
    assert len(DECODED) == 0
    status, _ = call(StandIn(), request({"map": GOOD, "feather": -1}))  # decoded, then refused
    assert status == 422 and len(DECODED) == 0


def test_jobs_without_a_request_check_decode_themselves(monkeypatch):
    """UI jobs, previews and a second job of the same arguments (e.g. XYZ cells) load as before."""
    loads = CountingLoads(monkeypatch)
    assert parse_settings([{"map": GOOD}]).maps[0].shape == (32, 32)
    assert loads.calls == ["map"]


def test_requests_with_the_same_map_share_one_decode_until_the_last_is_answered(monkeypatch):
    loads = CountingLoads(monkeypatch)
    store = DecodedMaps()
    first, second = store.hold(), store.hold()
    a, b = first.load(GOOD, "map"), second.load(GOOD, "maps[0]")
    assert a is b and not a.flags.writeable and loads.calls == ["map"]
    first.release()
    assert store.get(GOOD) is a
    second.release()
    assert store.get(GOOD) is None and len(store) == 0 and store.nbytes == 0


def test_what_is_kept_is_bounded(monkeypatch):
    loads = CountingLoads(monkeypatch)
    store = DecodedMaps(limit_bytes=32 * 32 * 4)  # one 32x32 float32 map
    other = b64(encode(noise_image(32, seed=2)))
    with store.hold() as hold:
        hold.load(GOOD)
        hold.load(other)  # over the limit: decoded, not kept (its job decodes it again)
        assert len(store) == 1 and store.nbytes == 32 * 32 * 4 and len(loads.calls) == 2
        assert store.get(other) is None
    assert len(store) == 0


def test_a_hold_released_before_its_decode_ends_keeps_nothing():
    """The client left while its request was being checked: the late decode is not kept."""
    store = DecodedMaps()
    hold = store.hold()
    hold.release()
    assert hold.load(GOOD).shape == (32, 32)
    assert len(store) == 0
