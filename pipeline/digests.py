"""The digest of each input layer: what tells ingest whether a layer is new or changed.

A digest is the SHA-256 of the layer's files, of how county.toml reads them
and, for every layer but the township layers, of the township layers' digests
and the outside tolerance (they decide what lies outside the county).

Hashing a 350 MB DLTB takes about 0.3 s of one core. :func:`start` begins it
in a background thread as soon as county.toml is read, so it runs while the
stage modules import (hashlib works outside the GIL) instead of beside the
load or, for a layer loaded before, ahead of it. :func:`digest` then hands
the result over, or computes it when nothing was started. Light on purpose:
no pandas, GDAL or database here.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from pipeline.config import County, Layer

#: One thread: the township layers are hashed first, the others need their digests.
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weipian-digest")
_STARTED: dict[tuple, Future] = {}
_LOCK = threading.Lock()


def files_of(layer: Layer) -> list:
    """The files a layer is read from: a Shapefile's .shp and every sidecar of the
    same stem, every file of a File Geodatabase folder, or the one file."""
    if layer.path.is_dir():
        return sorted(p for p in layer.path.rglob("*") if p.is_file())
    if layer.path.suffix.lower() == ".shp":
        return sorted(p for p in layer.path.parent.glob(layer.path.stem + ".*") if p.is_file())
    return [layer.path]


def checksum(layer: Layer, extra: str = "") -> str:
    """SHA-256 of the layer's files, of how county.toml reads them, and of ``extra``."""
    h = hashlib.sha256()
    for p in files_of(layer):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    settings = {
        "kind": layer.kind, "layer": layer.layer, "encoding": layer.encoding, "crs": layer.crs,
        "fields": layer.fields, "pzlx": layer.pzlx, "batch": layer.batch, "index": layer.index,
        "extra": extra,
    }
    h.update(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def township_extra(county: County, township_digests) -> str:
    """What every non-township layer's digest also covers."""
    return json.dumps({"townships": sorted(township_digests),
                       "outside_tolerance_m": county.settings["outside_tolerance_m"]})


def start(county: County) -> None:
    """Begin hashing every layer of ``county`` in the background (townships first)."""
    towns = [_submit(layer, lambda: "") for layer in county.layers_of("township")]
    known: list[str] = []

    def extra() -> str:
        # waits for the township digests only, not for the layers queued before
        if not known:
            known.append(township_extra(county, [f.result() for f in towns]))
        return known[0]

    for layer in county.layers:
        if layer.kind != "township":
            _submit(layer, extra)


def digest(layer: Layer, extra: str = "", wait: bool = True) -> str | Future:
    """The digest of ``layer`` with ``extra``: the one started for it if its files did not
    change since, else computed now (``wait``) or in the background (a Future)."""
    with _LOCK:
        started = _STARTED.pop(_key(layer), None)
    if started is not None:
        extra_of, future = started
        if extra_of() == extra:
            return future.result() if wait else future
    if wait:
        return checksum(layer, extra)
    return _POOL.submit(checksum, layer, extra)


def _submit(layer: Layer, extra) -> Future:
    """Hash ``layer`` in the background with the ``extra`` that the function ``extra`` gives."""
    future = _POOL.submit(lambda: checksum(layer, extra()))
    with _LOCK:
        _STARTED[_key(layer)] = (extra, future)
    return future


def _key(layer: Layer) -> tuple:
    """The layer as county.toml gives it, and the size and time of each of its files:
    a file written after the digest was started is hashed again."""
    try:
        stats = tuple((str(p), st.st_size, st.st_mtime_ns) for p in files_of(layer) for st in [os.stat(p)])
    except OSError:
        stats = ()
    return (layer.kind, str(layer.path), layer.layer, layer.encoding, layer.crs,
            json.dumps(layer.fields, sort_keys=True), layer.pzlx, layer.batch, layer.index, stats)
