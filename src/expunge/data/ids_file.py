"""Integer example ids as users give them: an ids file (``ids:FILE``, one id per line) and the int64 range check.

Parsing only — which ids exist is checked where a request is resolved (:class:`expunge.data.request.Splits`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from expunge.errors import EmptyForgetSet, MalformedForgetSpec, _preview

INT64 = np.iinfo(np.int64)


def check_int64(ids: list[int], *, where: str) -> None:
    if too_big := [i for i in ids if not INT64.min <= i <= INT64.max]:
        raise MalformedForgetSpec(f"{where}: {len(too_big)} id(s) do not fit a 64-bit integer: "
                                  f"{_preview(too_big, 3)}. Fix: use the dataset's training-example ids "
                                  "(`expunge.load_dataset(...).train.ids`)")


def read_ids_file(path: Path) -> tuple[int, ...]:
    """The ids of an ids file: UTF-8 (or ASCII) text, one integer id per line, ``#`` comments and blank lines allowed.

    Raises (each naming the file, the offending lines and the fix, before anything is trained):
        MalformedForgetSpec: the file is missing, not text (binary, UTF-16), has a line that is not one integer, or an
            id that does not fit an int64.
        EmptyForgetSet: it lists no id."""
    if not path.is_file():
        raise MalformedForgetSpec(f"ids file {path} does not exist or is not a file. Fix: one integer example id per "
                                  "line.")
    raw = path.read_bytes()
    try:
        if b"\0" in raw:  # UTF-16 and most binary formats; utf-8 would accept NULs
            raise UnicodeDecodeError("utf-8", raw, raw.index(b"\0"), raw.index(b"\0") + 1, "NUL byte")
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start:exc.start + 1]
        raise MalformedForgetSpec(f"ids file {path} is not a text file (byte {exc.start} is {byte!r}). "
                                  "Fix: write it as UTF-8/ASCII text, one integer example id per line") from None
    out: list[int] = []
    bad: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        try:
            out.append(int(value))
        except ValueError:
            bad.append(f"line {lineno}: {value[:40]!r}")
    if bad:
        raise MalformedForgetSpec(f"ids file {path}: {len(bad)} line(s) are not one integer example id: "
                                  f"{_preview(bad, 3)}. Fix: one integer id per line (`#` starts a comment)")
    check_int64(out, where=f"ids file {path}")
    if not out:
        raise EmptyForgetSet(f"ids file {path} lists no id (only blank or comment lines). Fix: one integer training-"
                             "example id per line; an empty request has nothing to unlearn")
    return tuple(out)
