"""A JSON-lines file of explanations, one object per input row, that survives an
interrupted run.

:class:`ExplanationFile` appends finished rows batch by batch, flushed to disk, so a
stopped run keeps every row it finished; opened again for the same run (same method,
settings and input rows), it reports the rows already there, and the caller explains
only the others. A row that was being written when the process died (a last line
without its newline, or one that does not parse) is dropped and explained again. A
file written by another run (a setting or the input changed) is started afresh, and
:attr:`ExplanationFile.status` says so.

Every row carries ``"id"`` (its position in the input) and ``"run"`` (a fingerprint
of the method, its settings and the input rows); rows are written in input order.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

from captum_maskopt.settings import DEFAULTS_REVISION

__all__ = ["ExplanationFile", "read_rows", "run_fingerprint", "write_atomically"]


def write_atomically(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to a temporary file in ``path``'s folder, then rename it over
    ``path``: a reader, or a run killed midway, never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run_fingerprint(run: Mapping[str, Any], row_keys: Sequence[str]) -> str:
    """A short hash of what decides a run's rows: ``run`` (method, settings, options;
    JSON-serialisable), one key per input row (its text or file), in order, and
    :data:`~captum_maskopt.settings.DEFAULTS_REVISION`, since an ``"auto"`` setting
    can change what it computes while the settings read the same."""
    digest = hashlib.sha256(json.dumps([run, DEFAULTS_REVISION], sort_keys=True, default=str).encode())
    for key in row_keys:
        digest.update(b"\0" + key.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


class ExplanationFile:
    """Rows of one run in a JSON-lines file, resumable.

    Args:
        path: the output file; its folder is made when missing.
        fingerprint: :func:`run_fingerprint` of the run.
        resume: keep the rows of the same run that the file holds (default); False
            always starts afresh.

    Attributes:
        done: the ids of the rows the file holds for this run.
        status: one line on what was found (``"new file"``, ``"resuming: 12 of the rows
            are done"``, ``"... written by another run ...: starting afresh"``).
    """

    def __init__(self, path: Union[str, Path], fingerprint: str, resume: bool = True) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.done: Set[int] = set()
        kept: List[str] = []
        self.status = "new file"
        if self.path.exists() and resume:
            kept, other_run = self._read_own_rows()
            if other_run:
                kept = []
                self.status = (f"{self.path} was written by another run (a setting or the input "
                               "changed): starting afresh")
            elif kept:
                self.status = f"resuming {self.path}: {len(kept)} row(s) done"
        elif self.path.exists():
            self.status = f"overwriting {self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Rewritten rather than appended to, so a torn last line never stays.
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in kept)
            handle.flush()
            os.fsync(handle.fileno())

    def _read_own_rows(self) -> Tuple[List[str], bool]:
        kept: List[str] = []
        with open(self.path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        # The text after the last newline is a row cut off mid-write, if anything.
        for line in lines[:-1]:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict) or row.get("run") != self.fingerprint:
                return [], True
            if isinstance(row.get("id"), int) and row["id"] not in self.done:
                self.done.add(row["id"])
                kept.append(line)
        return kept, False

    def write(self, rows: Iterable[Dict[str, Any]]) -> None:
        """Append ``rows`` (each gets ``"run"``), flushed to disk before returning."""
        lines = []
        for row in rows:
            row = {**row, "run": self.fingerprint}
            lines.append(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
            self.done.add(int(row["id"]))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())


def read_rows(path: Union[str, Path], fingerprint: Optional[str] = None) -> List[Dict[str, Any]]:
    """The rows of an explanation file, sorted by id (those of ``fingerprint`` only,
    when given)."""
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if fingerprint is not None:
        rows = [row for row in rows if row.get("run") == fingerprint]
    return sorted(rows, key=lambda row: row["id"])
