"""The MapReduce segment file: sorted record runs plus a trailer (standard library only).

Map outputs, reduce inputs and reduce outputs all have this one format::

    <segment 0><segment 1>...<segment n-1><trailer JSON><16 ASCII digits: trailer length>

A segment is a run of records, one per line: ``json(key) TAB json(value) LF`` (compact
JSON, UTF-8, no ASCII escaping), sorted by the key's encoding. JSON never contains a raw
tab or newline, so a record splits at its first tab. The trailer (``{"parts": [[offset,
length], ...], "counters": {...}, ...}``) says where each segment is. Writers write to a
temp name and rename, so a segment file is whole or absent. Shipped to hosts (3.8+).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, BinaryIO, Dict, Iterator, List, Tuple

TRAILER_DIGITS = 16
COPY_CHUNK = 1 << 20
TEXT_BLOCK = 1 << 20  # bytes of text input read (and decoded) at once


class TextError(ValueError):
    """Text input that is not UTF-8: ``line`` is the 1-based number of the bad line."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__("line %d: %s" % (line, reason))
        self.line = line
        self.reason = reason


def text_blocks(stream: BinaryIO) -> Iterator[List[str]]:
    """The lines of a UTF-8 byte stream, a list per block of about ``TEXT_BLOCK`` bytes:
    split at b"\\n" only, the newline dropped, and a "\\r" before it; the last line (no
    newline) as it is. The same lines as iterating the file line by line, decoded, without
    one generator step and one decode per line."""
    seen = 0  # lines yielded so far, for the error's line number
    pending: List[bytes] = []  # the start of a line longer than a block
    while True:
        chunk = stream.read(TEXT_BLOCK)
        if not chunk:
            break
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            pending.append(chunk)
            continue
        block = chunk[:cut]
        if pending:
            block = b"".join(pending) + block
            pending = []
        if cut < len(chunk):
            pending.append(chunk[cut:])
        lines = _decode(block, seen).split("\n")
        lines.pop()  # the empty string after the last newline
        if b"\r" in block:
            lines = [line[:-1] if line[-1:] == "\r" else line for line in lines]
        seen += len(lines)
        yield lines
    if pending:
        yield [_decode(b"".join(pending), seen)]


def _decode(block: bytes, seen: int) -> str:
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextError(seen + block.count(b"\n", 0, exc.start) + 1, exc.reason) from None


def write_trailer(f: BinaryIO, info: Dict[str, Any]) -> None:
    data = json.dumps(info, separators=(",", ":")).encode()
    f.write(data)
    f.write(b"%016d" % len(data))


def read_trailer(path: str) -> Dict[str, Any]:
    """The trailer of a segment file (raises ValueError if it has none)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size < TRAILER_DIGITS:
            raise ValueError("%s is not a segment file (%d bytes)" % (path, size))
        f.seek(size - TRAILER_DIGITS)
        digits = f.read(TRAILER_DIGITS)
        if not digits.isdigit() or int(digits) > size - TRAILER_DIGITS:
            raise ValueError("%s has no segment trailer" % path)
        length = int(digits)
        f.seek(size - TRAILER_DIGITS - length)
        info = json.loads(f.read(length))
    info["data_end"] = size - TRAILER_DIGITS - length
    return info


def iter_records(path: str, offset: int, length: int) -> Iterator[bytes]:
    """The lines (newline kept) of the ``length`` bytes at ``offset`` of ``path``."""
    with open(path, "rb", buffering=COPY_CHUNK) as f:
        f.seek(offset)
        left = length
        while left > 0:
            line = f.readline(left)
            if not line:
                raise ValueError("%s ends inside a segment" % path)
            left -= len(line)
            yield line


def copy_range(src: str, dst: BinaryIO, offset: int, length: int) -> None:
    """Append ``length`` bytes of ``src`` at ``offset`` to the open file ``dst``: in the
    kernel (``copy_file_range``; no copy through Python, shared extents where the file
    system can) where it may, else read and written."""
    if length > 0 and _copy_in_kernel(src, dst, offset, length):
        return
    with open(src, "rb") as f:
        f.seek(offset)
        left = length
        while left > 0:
            chunk = f.read(min(COPY_CHUNK, left))
            if not chunk:
                raise ValueError("%s is shorter than its trailer says" % src)
            dst.write(chunk)
            left -= len(chunk)


def _copy_in_kernel(src: str, dst: BinaryIO, offset: int, length: int) -> bool:
    """``copy_range`` by ``os.copy_file_range``; False (nothing written) where it is not
    available for these files (no such call, other file systems, older kernels)."""
    copy = getattr(os, "copy_file_range", None)
    if copy is None:
        return False
    dst.flush()
    at = dst.tell()
    done = 0
    with open(src, "rb", buffering=0) as f:
        while done < length:
            try:
                n = copy(f.fileno(), dst.fileno(), length - done, offset + done, at + done)
            except OSError:
                if done:
                    raise
                return False
            if n == 0:
                raise ValueError("%s is shorter than its trailer says" % src)
            done += n
    dst.seek(at + done)
    return True


def concat_segments(sources: List[Tuple[str, int, int]], dest: str,
                    info: Dict[str, Any]) -> None:
    """Write ``dest`` as a segment file whose parts are the given (file, offset, length)
    ranges, in order (empty ranges are dropped); ``info`` joins the trailer."""
    tmp = dest + ".tmp"
    parts = []
    with open(tmp, "wb") as out:
        for path, offset, length in sources:
            if length <= 0:
                continue
            parts.append([out.tell(), length])
            copy_range(path, out, offset, length)
        write_trailer(out, dict(info, parts=parts))
    os.replace(tmp, dest)


def copy_data(src: str, dest: str) -> None:
    """Copy the records of segment file ``src`` (without its trailer) to ``dest``,
    through a temp name, fsynced: an output part appears whole or not at all."""
    end = read_trailer(src)["data_end"]
    tmp = os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + ".tmp")
    with open(tmp, "wb") as out:
        copy_range(src, out, 0, end)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, dest)


def copy_lines(src: str, dest: str) -> None:
    """Like ``copy_data``, for records that are lines (``MapReduce.output_lines``): each
    ``json(key)<TAB>json(rest)`` record is written as the line ``bytes.fromhex(key)<TAB>rest``
    (the key's bytes alone when ``rest`` is null), ``rest`` one byte per character."""
    end = read_trailer(src)["data_end"]
    tmp = os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + ".tmp")
    loads = json.loads
    with open(tmp, "wb", buffering=COPY_CHUNK) as out:
        for record in iter_records(src, 0, end):
            tab = record.index(b"\t")
            text, rest = loads(record[:tab]), loads(record[tab + 1:])
            line = bytes.fromhex(text)
            out.write(line + b"\n" if rest is None else
                      line + b"\t" + rest.encode("latin-1") + b"\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, dest)


def remove_quietly(path: str) -> None:
    try:
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except OSError:
        pass
