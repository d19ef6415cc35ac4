"""Rows of a data file, whatever its format, as a list of ``{column: value}``.

:func:`read_table` reads ``.csv``, ``.tsv``, ``.jsonl`` (one JSON object per line),
``.parquet`` (needs ``pyarrow``), ``.txt`` (one text per line, column ``"text"``) and
folders written by ``datasets.Dataset.save_to_disk`` (needs ``datasets``).
:func:`column` takes one column out, and names the columns there are when it is
missing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

__all__ = ["TABLE_FORMATS", "InputError", "MissingColumnError", "read_table", "column"]

TABLE_FORMATS = (".csv", ".tsv", ".jsonl", ".parquet", ".txt")
"""The file suffixes :func:`read_table` reads (besides ``save_to_disk`` folders)."""


class InputError(ValueError):
    """The user's data or model is not what a command or reader expects (a missing
    column, an unknown class, a model folder without a classification head); the
    message says what was expected. The command prints it as one line."""


class MissingColumnError(InputError, KeyError):
    """A column that the data does not have; the message lists those it has."""

    def __str__(self) -> str:
        return str(self.args[0])


def _read_delimited(path: Path, delimiter: str) -> List[Dict[str, Any]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return [dict(row) for row in csv.DictReader(handle, delimiter=delimiter)]


def _read_jsonl(path: Path) -> List[Dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}, line {number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def _read_parquet(path: Path) -> List[Dict[str, Any]]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise ImportError(f"reading {path.name} needs pyarrow: pip install pyarrow") from None
    rows: List[Dict[str, Any]] = parquet.read_table(path).to_pylist()
    return rows


def _read_saved_dataset(path: Path) -> List[Dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise ImportError(f"reading the saved dataset {path} needs datasets: pip install datasets") from None
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        raise InputError(
            f"{path} holds several splits ({', '.join(loaded)}); give the folder of one, "
            f"e.g. {path / next(iter(loaded))}"
        )
    return [dict(row) for row in loaded]


def read_table(path: Union[str, Path]) -> List[Dict[str, Any]]:
    """The rows of the data file (or ``save_to_disk`` folder) at ``path``.

    Raises:
        FileNotFoundError: when there is nothing at ``path``.
        InputError: for an unknown suffix, or a line of a ``.jsonl`` file that is not a
            JSON object (the message gives the line).
        ImportError: when the format needs a package that is not installed (the
            message says which).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_dir():
        if not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
            raise InputError(f"{path} is a folder but not one written by datasets' save_to_disk")
        return _read_saved_dataset(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_delimited(path, ",")
    if suffix == ".tsv":
        return _read_delimited(path, "\t")
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix == ".txt":
        with open(path, encoding="utf-8") as handle:
            return [{"text": line.rstrip("\r\n")} for line in handle]
    raise InputError(
        f"cannot read {path.name}: expected one of {', '.join(TABLE_FORMATS)} or a folder "
        "saved by datasets.Dataset.save_to_disk"
    )


def column(rows: Sequence[Dict[str, Any]], name: str, argument: str = "column") -> List[Any]:
    """The values of column ``name``, one per row.

    Raises:
        MissingColumnError: when a row lacks it; the message lists the columns there
            are and names ``argument`` (the option that chose the column).
    """
    for number, row in enumerate(rows):
        if name not in row:
            there = ", ".join(map(repr, row)) or "none"
            where = "" if number == 0 else f" in row {number}"
            raise MissingColumnError(f"{argument}: no column {name!r}{where}; the columns are {there}")
    return [row[name] for row in rows]
