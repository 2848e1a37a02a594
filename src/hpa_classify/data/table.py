"""Reading a dataset's label table: ``Id`` and an optional ``Target`` (or 2021 ``Label``), checked row by row."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from hpa_classify.classes import NUM_CLASSES, NUM_CLASSES_2021, from_2021, parse_label_2021, parse_target
from hpa_classify.data.io import read_file
from hpa_classify.errors import DataError, LabelError, brief, shorten, summarize_ids

#: Largest CSV read, in bytes (Kaggle's train.csv is 1.3 MB, HPAv18's 3 MB).
MAX_CSV_BYTES = 256 << 20


def read_table(
    csv_path: str | os.PathLike[str], *, allow_empty: bool = False
) -> tuple[list[str], list[list[int]] | None]:
    """Read the Ids and (if there) the labels of a label table, as 2018 class ids.

    Two layouts are read: Kaggle 2018's ``Id,Target`` (space-separated class
    ids 0-27) and HPA 2021's ``ID,Label`` (``|``-separated class ids 0-18),
    each label column optional. A 2021 Label is turned into 2018 classes with
    :func:`hpa_classify.classes.from_2021`, so a 2021 ``train.csv`` reads like
    a 2018 one; an image labelled 18 (Negative) gets an empty class list. When
    both ``Target`` and ``Label`` are present, ``Target`` is read.

    Accepts a UTF-8 BOM and Windows line endings; column names in any case;
    extra columns are ignored. ``Predicted`` (as in a sample submission) is
    not read as labels, nor is any other column (``Label2021``, say).

    Parameters
    ----------
    csv_path : str or path-like
    allow_empty : bool
        Read an empty Target as an image without classes instead of refusing
        it: for tables the package wrote itself from labels that may be empty
        (a pack's ``index.csv`` of 2021 data with Negative images).

    Returns
    -------
    ids : list of str
    labels : list of list of int, or None
        Sorted 2018 class ids of each row; None without a label column.

    Raises
    ------
    DataError
        Naming the file and row: no header, no ``Id`` column, empty table,
        empty Id, duplicate Ids, or a malformed Target or Label (a
        :class:`~hpa_classify.errors.LabelError`, naming the line and Id too);
        a file over :data:`MAX_CSV_BYTES`, a field over 128 KiB, a quote never
        closed, an Id or label running over several lines. Values quoted in
        messages are cut short.
    """
    path = Path(csv_path)
    raw = read_file(path, "CSV file", limit=MAX_CSV_BYTES)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    numbered = _csv_rows(text, path)
    if not numbered:
        raise DataError(f"{path}: empty CSV (expected a header 'Id,Target' and rows)")
    rows = [r for _, _, r in numbered]
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    if "id" not in lower:
        raise DataError(
            f"{path}, line {numbered[0][0]}: no 'Id' column in the header {brief(rows[0])} ({len(header)} columns; "
            "the first line must name the columns, e.g. 'Id,Target' or 'ID,Label')"
        )
    id_col = lower.index("id")
    if "target" in lower:
        target_col: int | None = lower.index("target")
        label_name = "Target"
    else:  # the HPA 2021 layout
        target_col = lower.index("label") if "label" in lower else None
        label_name = "Label"
    body = numbered[1:]
    if not body:
        raise DataError(f"{path}: the CSV has a header but no rows")
    ids: list[str] = []
    labels: list[list[int]] | None = [] if target_col is not None else None
    seen: dict[str, int] = {}
    dupes: list[str] = []
    for first, lineno, row in body:
        for col, name in ((id_col, "Id"), (target_col, label_name)):
            if col is not None and col < len(row) and ("\n" in row[col] or "\r" in row[col]):
                raise DataError(
                    f"{path}, line {first}: the {name} runs on to line {lineno} "
                    "(a quote opened on this line closes only there)"
                )
        if id_col >= len(row) or not row[id_col].strip():
            raise DataError(f"{path}, line {lineno}: empty Id")
        sample_id = row[id_col].strip()
        if sample_id in seen:
            dupes.append(sample_id)
        seen[sample_id] = lineno
        ids.append(sample_id)
        if labels is not None:
            target = row[target_col] if target_col < len(row) else ""
            where = f"row {lineno} (Id {show_id(sample_id)}) of {path}"
            labels.append([] if allow_empty and not target.strip() else _parse_label(target, label_name, where))
    if dupes:
        raise DataError(f"{path}: duplicate Ids: {summarize_ids(sorted(set(dupes)))}")
    return ids, labels


def _parse_label(text: str, column: str, where: str) -> list[int]:
    """2018 class ids of one ``Target`` or (2021) ``Label`` cell; errors name ``where``."""
    if len(text) > 200:  # all 28 classes take 73 characters, all 18 of 2021 43
        top = f"0-{(NUM_CLASSES if column == 'Target' else NUM_CLASSES_2021) - 1}"
        raise LabelError(f"{where}: {column} {brief(text)} is not a list of class ids {top}")
    try:
        if column == "Target":
            return parse_target(text, row=where.removeprefix("row "))
        return from_2021(parse_label_2021(text, row=where.removeprefix("row ")))
    except LabelError as exc:
        raise LabelError(shorten(str(exc), 400)) from None


def show_id(sample_id: str) -> str:
    """An Id for a message: as it is, or cut short when over 80 characters."""
    return sample_id if len(sample_id) <= 80 else brief(sample_id)


def _csv_rows(text: str, path: Path) -> list[tuple[int, int, list[str]]]:
    """``(first line, last line, cells)`` of each non-blank row (blank lines still counted)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, int, list[str]]] = []
    first = 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((first, reader.line_num, row))
            first = reader.line_num + 1
    except csv.Error as exc:
        msg = str(exc)
        if "field limit" in msg:
            what = f"a field longer than {csv.field_size_limit():,} characters (not a table of Ids and labels?)"
        elif "unexpected end of data" in msg:
            what = 'a quote (") opened on this line is never closed'
        else:
            what = f"not valid CSV ({shorten(msg, 100)})"
        raise DataError(f"{path}, line {first}: {what}") from None
    return rows
