"""Maps decoded by the request check, handed to the job of the same request (one decode per map).

The request check (:mod:`.validation`) decodes every map an img2img request uses, so that a
corrupt one gets its 422 before A1111 starts the job. The decoded arrays are kept here, keyed by
the field's string (the base64 text the job receives again), while the request is in flight;
the job's parser (:func:`load_decoded`, the default loader of ``fields.parse_settings``) takes
the kept array instead of decoding the same text a second time. A request's hold is released
when A1111 starts its response (the job is over), or when the request ends in any other way, so
nothing outlives its request; what is kept at any time is bounded by :data:`KEPT_BYTES_LIMIT`
(past it, the job decodes again).
Kept arrays are read-only: requests carrying the same text share one.

No A1111 import here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..maps import load_map

#: Most bytes of decoded maps kept for requests in flight (one 8192x8192 map in float32).
KEPT_BYTES_LIMIT = 256 * 2**20


@dataclass
class _Entry:
    values: np.ndarray
    holders: int


class DecodedMaps:
    """Decoded maps of the requests in flight, each kept while a request holds it."""

    def __init__(self, limit_bytes: int = KEPT_BYTES_LIMIT):
        self.limit_bytes = limit_bytes
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._bytes = 0

    def hold(self) -> RequestHold:
        """A new request's hold (release it when the request is answered)."""
        return RequestHold(self)

    def get(self, value: Any) -> np.ndarray | None:
        """The kept decode of ``value`` (a field's string), or None."""
        if not isinstance(value, str):
            return None
        with self._lock:
            entry = self._entries.get(value)
            return None if entry is None else entry.values

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def _acquire(self, value: str, field: str) -> tuple[np.ndarray, bool]:
        """``(map, held)``: decoded unless already kept; kept (and held) within the limit."""
        with self._lock:
            entry = self._entries.get(value)
            if entry is not None:
                entry.holders += 1
                return entry.values, True
        values = load_map(value, field)  # outside the lock: decoding takes time
        values.setflags(write=False)
        with self._lock:
            entry = self._entries.get(value)
            if entry is not None:  # kept by another thread meanwhile
                entry.holders += 1
                return entry.values, True
            if self._bytes + values.nbytes > self.limit_bytes:
                return values, False
            self._entries[value] = _Entry(values, 1)
            self._bytes += values.nbytes
            return values, True

    def _release(self, value: str) -> None:
        with self._lock:
            entry = self._entries.get(value)
            if entry is None:
                return
            entry.holders -= 1
            if entry.holders <= 0:
                del self._entries[value]
                self._bytes -= entry.values.nbytes


class RequestHold:
    """What one request keeps; :meth:`load` is the request check's map loader."""

    def __init__(self, store: DecodedMaps):
        self._store = store
        self._lock = threading.Lock()
        self._held: list[str] = []
        self._released = False

    def load(self, value: Any, field: str = "map") -> np.ndarray:
        """Decode (or reuse) the map of ``field`` and keep it for this request's job."""
        if not isinstance(value, str):  # JSON carries strings; anything else is not kept
            return load_map(value, field)
        values, held = self._store._acquire(value, field)
        if held:
            with self._lock:
                late = self._released  # the request is gone (e.g. the client left mid-check)
                if not late:
                    self._held.append(value)
            if late:
                self._store._release(value)
        return values

    def release(self) -> None:
        """Give back everything this request kept (its job is over); later calls do nothing."""
        with self._lock:
            self._released = True
            held, self._held = self._held, []
        for value in held:
            self._store._release(value)

    def __enter__(self) -> RequestHold:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


#: The process's store: filled by the request check, read by the job.
DECODED = DecodedMaps()


def load_decoded(value: Any, field: str = "map") -> np.ndarray:
    """The job's map loader: the map the request check decoded for ``value``, else a fresh decode."""
    kept = DECODED.get(value)
    return kept if kept is not None else load_map(value, field)
