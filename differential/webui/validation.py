"""Refuse bad API requests before A1111 starts the job (HTTP 422 naming the field).

A1111 swallows exceptions raised in script hooks, so a bad field found there can only stop the
job. Maps are checked here up to their header (base64, format, size); an image whose data is
corrupt past a valid header is found when the job decodes it, and that job is stopped with the
reason in the response's info. Requests to ``/sdapi/v1/img2img`` that carry this script's
arguments are therefore checked first, by an ASGI middleware that reads the body, validates it
with the same parser the script uses, and either answers 422 or replays the body to A1111.
No A1111 import here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..maps import check_map
from .fields import FIELDS, POSITIONAL, TITLE, FieldError, check_map_count, parse_settings
from .infotext import KEYS, read_field

#: A1111's infotext parser (``infotext_utils.parse_generation_parameters``): text -> params.
InfotextParser = Callable[[str], Mapping[str, Any]]

IMG2IMG_PATH = "/sdapi/v1/img2img"


def find_script_entry(alwayson: Any) -> tuple[str, Any] | None:
    """``(key, entry)`` of this script in ``alwayson_scripts`` (title matched case-insensitively)."""
    if not isinstance(alwayson, Mapping):
        return None
    for key, entry in alwayson.items():
        if isinstance(key, str) and key.strip().lower() == TITLE.lower():
            return key, entry
    return None


def effective_args(args: list[Any], body: Mapping[str, Any], parse_infotext: InfotextParser | None) -> list[Any]:
    """The script's arguments as A1111 will pass them to the job.

    Like ``Api.init_script_args``: every slot starts at its default, slots named in an
    ``infotext`` request field take the infotext's values, and the request's ``args`` go over
    the first slots (a dict in the first slot then overrides the rest, see ``normalise_args``).
    """
    infotext = body.get("infotext")
    if parse_infotext is None or not isinstance(infotext, str) or not infotext.strip():
        return args
    slots = {spec.name: spec.default for spec in FIELDS}
    params = parse_infotext(infotext)
    for name in ("enabled", *KEYS):
        value = read_field(params, name)
        if value is not None:
            slots[name] = value
    slots.update(zip(POSITIONAL, args))
    return [slots[name] for name in POSITIONAL]


def validate_img2img_request(
    body: Any,
    depth_problem: Callable[[str], str | None] | None = None,
    parse_infotext: InfotextParser | None = None,
) -> FieldError | None:
    """The first problem with this script's arguments in an img2img request body, or None.

    ``depth_problem(depth_model)`` says why the Depth source cannot run here (None when it can);
    ``parse_infotext`` reads an ``infotext`` field as A1111 will (without it, that field is not
    taken into account).
    """
    if not isinstance(body, Mapping):
        return None
    found = find_script_entry(body.get("alwayson_scripts"))
    if found is None:
        return None
    key, entry = found
    prefix = f"alwayson_scripts[{key!r}]"
    if not isinstance(entry, Mapping) or "args" not in entry:
        return FieldError(prefix, "no `args`", '{"args": [{...named fields...}]}')
    args = entry["args"]
    if not isinstance(args, list):
        return FieldError(f"{prefix}.args", f"got {type(args).__name__}", "a list: [{...named fields...}]")
    try:
        # Header-only map check: the pixels are decoded once, in the job (process()).
        settings = parse_settings(effective_args(args, body, parse_infotext), loader=check_map)
    except FieldError as error:
        return error
    if not settings.enabled:
        return None
    if settings.map_dir:
        return FieldError(
            "map_dir",
            "a map folder in an API request",
            "no `map_dir` (it is for the img2img Batch tab); send `maps`, one per init image",
        )
    if settings.source.kind == "mask" and not body.get("mask"):
        return FieldError(
            "source",
            "source `mask` without a `mask` in the request",
            "the request's `mask` (base64), or another source",
        )
    if settings.source.kind == "depth" and depth_problem is not None:
        problem = depth_problem(settings.source.depth_model)
        if problem:
            return FieldError("source", f"depth: {problem}", "a depth estimator on disk, or another source")
    if settings.source.generated:
        return None  # one map per init image, made in the job
    init_images = body.get("init_images")
    batch_size = body.get("batch_size", 1)
    try:
        check_map_count(
            len(settings.maps),
            len(init_images) if isinstance(init_images, list) else 0,
            batch_size if isinstance(batch_size, int) else len(settings.maps),
        )
    except FieldError as error:
        return error
    return None


def error_body(error: FieldError) -> dict[str, Any]:
    return {"error": f"{TITLE}: invalid argument", "detail": str(error), **error.as_dict()}


class RequestValidationMiddleware:
    """ASGI middleware answering 422 for img2img requests with unusable arguments."""

    def __init__(
        self,
        app,
        depth_problem: Callable[[str], str | None] | None = None,
        parse_infotext: InfotextParser | None = None,
    ):
        self.app = app
        self.depth_problem = depth_problem
        self.parse_infotext = parse_infotext

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or scope.get("method") != "POST" or scope.get("path") != IMG2IMG_PATH:
            await self.app(scope, receive, send)
            return
        messages, chunks, more = [], [], True
        while more:
            message = await receive()
            messages.append(message)
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False) and message.get("type") == "http.request"
        try:
            body = json.loads(b"".join(chunks) or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None  # A1111 answers malformed JSON itself
        problem = validate_img2img_request(body, self.depth_problem, self.parse_infotext)
        if problem is not None:
            payload = json.dumps(error_body(problem)).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 422,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return

        async def replay():
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)
