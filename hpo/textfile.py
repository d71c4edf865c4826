"""Text files a user hands to a campaign (params, data, corpus, task YAMLs), read as UTF-8 with one clear error.

A file that is not UTF-8 fails with a single line naming the file, the byte offset of the first bad byte and what
was expected, instead of a `UnicodeDecodeError` traceback that names neither.
"""

from __future__ import annotations

from pathlib import Path


class TextFileError(ValueError):
    """A file that is not UTF-8 text; the message names it and the offset of the first bad byte."""


def read_text(path: Path) -> str:
    """The file's text, decoded as UTF-8.

    Raises:
        TextFileError: naming the file, the byte offset and the byte that is not UTF-8.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise TextFileError(
            f"{path}: byte {err.start} (line {line}) is 0x{data[err.start]:02x}, not UTF-8; expected UTF-8 text"
        ) from None
