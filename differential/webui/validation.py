"""Refuse bad API requests before A1111 starts the job (HTTP 422 naming the field).

A1111 swallows exceptions raised in script hooks, so a bad field found there can only stop the
job. Requests to ``/sdapi/v1/img2img`` and ``/sdapi/v1/txt2img`` (for the Hires. fix pass) that
carry this script's arguments are therefore checked first, by an ASGI middleware that reads the
body, validates it with the same parser the script uses, and either answers 422 or replays the
body to A1111.

Every map the request uses (``map``, each of ``maps``, ``paint``) is decoded in full here, so a
corrupt one (valid header, damaged data) is refused too. The decode happens once: the arrays are
kept (:mod:`.decoded`) until the job is over, and the job takes them instead of decoding
again. The check runs in one long-lived worker thread, not in the server's event loop: every
decode reuses that thread's allocator arena (decoding in the event loop's thread had left about
24 MiB resident there; ``malloc_trim`` was measured too, but it trims the whole process, see the
docs/verification.md, "Cost").
No A1111 import here.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..maps import load_map
from . import companions
from .decoded import DECODED, RequestHold
from .fields import FIELDS, POSITIONAL, TITLE, FieldError, JobSettings, MapLoader, check_map_count, parse_settings
from .hires import check_txt2img_settings
from .infotext import KEYS, read_field

#: A1111's infotext parser (``infotext_utils.parse_generation_parameters``): text -> params.
InfotextParser = Callable[[str], Mapping[str, Any]]

IMG2IMG_PATH = "/sdapi/v1/img2img"
TXT2IMG_PATH = "/sdapi/v1/txt2img"


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


def _request_settings(
    body: Any, parse_infotext: InfotextParser | None, loader: MapLoader
) -> tuple[JobSettings | None, FieldError | None]:
    """``(settings, None)`` of this script in a request body (None when absent or off), or ``(None, problem)``."""
    if not isinstance(body, Mapping):
        return None, None
    found = find_script_entry(body.get("alwayson_scripts"))
    if found is None:
        return None, None
    key, entry = found
    prefix = f"alwayson_scripts[{key!r}]"
    if not isinstance(entry, Mapping) or "args" not in entry:
        return None, FieldError(prefix, "no `args`", '{"args": [{...named fields...}]}')
    args = entry["args"]
    if not isinstance(args, list):
        return None, FieldError(f"{prefix}.args", f"got {type(args).__name__}", "a list: [{...named fields...}]")
    try:
        settings = parse_settings(effective_args(args, body, parse_infotext), loader=loader)
    except FieldError as error:
        return None, error
    return (settings if settings.enabled else None), None


def _depth_error(settings: JobSettings, depth_problem: Callable[[str], str | None] | None) -> FieldError | None:
    if settings.source.kind == "depth" and depth_problem is not None:
        problem = depth_problem(settings.source.depth_model)
        if problem:
            return FieldError("source", f"depth: {problem}", "a depth estimator on disk, or another source")
    return None


def validate_txt2img_request(
    body: Any,
    depth_problem: Callable[[str], str | None] | None = None,
    parse_infotext: InfotextParser | None = None,
    loader: MapLoader = load_map,
) -> FieldError | None:
    """The first problem with this script's arguments in a txt2img request body, or None.

    The map applies to the Hires. fix pass (see :mod:`.hires`): a request that enables it without
    ``enable_hr`` is refused rather than run without its map. Arguments as for
    :func:`validate_img2img_request`.
    """
    settings, problem = _request_settings(body, parse_infotext, loader)
    if settings is None:
        return problem
    try:
        check_txt2img_settings(settings)
    except FieldError as error:
        return error
    if not body.get("enable_hr"):
        return FieldError(
            "enabled",
            "txt2img without Hires. fix (`enable_hr` is false): the map applies to the Hires. fix pass only",
            '`"enable_hr": true`, or the extension off',
        )
    depth_error = _depth_error(settings, depth_problem)
    if depth_error is not None or settings.source.generated:
        return depth_error
    batch_size = body.get("batch_size", 1)
    batch_size = batch_size if isinstance(batch_size, int) else 1
    try:
        check_map_count(len(settings.maps), batch_size, batch_size)
    except FieldError as error:
        return error
    return None


def validate_img2img_request(
    body: Any,
    depth_problem: Callable[[str], str | None] | None = None,
    parse_infotext: InfotextParser | None = None,
    loader: MapLoader = load_map,
) -> FieldError | None:
    """The first problem with this script's arguments in an img2img request body, or None.

    ``depth_problem(depth_model)`` says why the Depth source cannot run here (None when it can);
    ``parse_infotext`` reads an ``infotext`` field as A1111 will (without it, that field is not
    taken into account); ``loader`` decodes each map (a :class:`.decoded.RequestHold`'s ``load``
    keeps them for the job).
    """
    settings, problem = _request_settings(body, parse_infotext, loader)
    if settings is None:
        return problem
    if settings.map_dir:
        return FieldError(
            "map_dir",
            "a map folder in an API request",
            "no `map_dir` (it is for the img2img Batch tab); send `maps`, one per init image",
        )
    if companions.soft_inpainting_in_request(body):
        return companions.soft_inpainting_conflict()
    if settings.source.kind == "mask" and not body.get("mask"):
        return FieldError(
            "source",
            "source `mask` without a `mask` in the request",
            "the request's `mask` (base64), or another source",
        )
    depth_error = _depth_error(settings, depth_problem)
    if depth_error is not None or settings.source.generated:
        return depth_error  # generated: one map per init image, made in the job
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


#: The requests checked, by path.
VALIDATORS = {IMG2IMG_PATH: validate_img2img_request, TXT2IMG_PATH: validate_txt2img_request}


def error_body(error: FieldError) -> dict[str, Any]:
    return {"error": f"{TITLE}: invalid argument", "detail": str(error), **error.as_dict()}


_checker: ThreadPoolExecutor | None = None
_checker_lock = threading.Lock()


def checker() -> ThreadPoolExecutor:
    """The one thread that checks requests (and decodes their maps), started on first use.

    One long-lived thread: its allocator arena is reused by every decode, not one per thread.
    """
    global _checker
    with _checker_lock:
        if _checker is None:
            _checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="differential-diffusion-check")
        return _checker


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

    def check(self, raw: bytes, hold: RequestHold, path: str = IMG2IMG_PATH) -> FieldError | None:
        """Parse and validate a request body (in the checker thread); maps are kept in ``hold``."""
        try:
            body = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            return None  # A1111 answers malformed JSON itself
        return VALIDATORS[path](body, self.depth_problem, self.parse_infotext, loader=hold.load)

    async def __call__(self, scope, receive, send):
        path = scope.get("path")
        if scope.get("type") != "http" or scope.get("method") != "POST" or path not in VALIDATORS:
            await self.app(scope, receive, send)
            return
        messages, chunks, more = [], [], True
        while more:
            message = await receive()
            messages.append(message)
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False) and message.get("type") == "http.request"
        hold = DECODED.hold()
        try:
            loop = asyncio.get_running_loop()
            problem = await loop.run_in_executor(checker(), self.check, b"".join(chunks), hold, path)
            if problem is not None:
                hold.release()
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

            async def send_after_job(message):
                if message.get("type") == "http.response.start":  # the job is over
                    hold.release()
                await send(message)

            await self.app(scope, replay, send_after_job)
        finally:
            hold.release()  # no response (an error, the client left): nothing stays kept
