"""A content-addressed store of generation results: one small JSON file per work item.

Layout under the store root (a local folder or any fsspec URL such as s3://bucket/run):
    done/<k[:2]>/<k>.json     finished items (their records, or the reason they yield none)
    failed/<k[:2]>/<k>.json   items whose reply could not be used: reason, error, raw reply

Every file is written whole (temp file + rename locally; object stores publish an object
atomically on close), so a run killed at any instant leaves only complete results and the
next run skips exactly those. Keys are hashes of (window, prompt type, generator config).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

from common.files import atomic_write, remove_stale_temps

DONE, FAILED = "done", "failed"
STALE_TEMP_SECONDS = 600.0  # an item's file is written in milliseconds: older temps are dead


class WorkStore:
    def __init__(self, url: str):
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.local = isinstance(self.fs, LocalFileSystem)

    def __reduce__(self):  # ship to Dask workers as the URL; each rebuilds its filesystem
        return (WorkStore, (self.url,))

    def _path(self, state: str, key: str) -> str:
        return f"{self.root}/{state}/{key[:2]}/{key}.json"

    def put(self, state: str, key: str, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        path = self._path(state, key)
        if self.local:
            with atomic_write(path) as handle:
                handle.write(data)
        else:
            self.fs.pipe_file(path, data.encode("utf-8"))
        if state == DONE:  # a retried failure that now succeeded is no longer failed
            self.discard(FAILED, key)

    def get(self, state: str, key: str) -> dict | None:
        try:
            with self.fs.open(self._path(state, key), "rb") as handle:
                return json.loads(handle.read().decode("utf-8"))
        except FileNotFoundError:
            return None

    def discard(self, state: str, key: str) -> None:
        path = self._path(state, key)
        if self.fs.exists(path):
            self.fs.rm(path)

    def keys(self, state: str) -> set[str]:
        """All keys in a state, from one listing (cheap enough for millions of items)."""
        base = f"{self.root}/{state}"
        if not self.fs.exists(base):
            return set()
        return {p.rsplit("/", 1)[-1][: -len(".json")] for p in self.fs.find(base) if p.endswith(".json")}

    def remove_stale_temps(self) -> int:
        """Temp files of writes killed mid-way (local stores; object stores have none). Only
        ones idle for STALE_TEMP_SECONDS: another run sharing the store may be writing."""
        return remove_stale_temps(self.root, STALE_TEMP_SECONDS) if self.local else 0

    def failed_reasons(self) -> dict[str, str]:
        """key -> reason of every failed item."""
        return {key: (self.get(FAILED, key) or {}).get("reason", "unknown") for key in self.keys(FAILED)}

    def iter_failed(self) -> Iterator[dict]:
        for key in sorted(self.keys(FAILED)):
            payload = self.get(FAILED, key)
            if payload is not None:
                yield payload
