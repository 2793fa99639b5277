"""Byte sources for the FITS reader: a file read whole into a reused buffer, or streamed (plain or gzip),
hashed on the way; a damaged gzip stream is reported with the byte where it breaks."""

from __future__ import annotations

import hashlib
import os
import threading
import zlib

import numpy as np

from obsdb.imaging.fitsio.base import _CHUNK_BYTES, IN_MEMORY_FILE_BYTES, FitsReadError, FrameTooLargeError


class _Reader:
    """A sequential source of a FITS file's bytes, as astropy's ``Header.fromfile`` reads one.

    Subclasses provide ``_readinto_source``; bytes handed back with :meth:`unread` come first.
    """

    binary = True  # what astropy asks of a file object

    def __init__(self) -> None:
        self._pending = b""
        self.position = 0  # of the next byte, in the (decompressed) FITS stream

    def _readinto_source(self, view: memoryview) -> int:
        raise NotImplementedError

    def readinto(self, target) -> int:
        """Fill ``target`` (a writable buffer) as far as the stream goes; returns the bytes given."""
        view = memoryview(target).cast("B")
        got = 0
        if self._pending:
            got = min(len(self._pending), len(view))
            view[:got] = self._pending[:got]
            self._pending = self._pending[got:]
        while got < len(view):
            n = self._readinto_source(view[got:])
            if n == 0:
                break
            got += n
        self.position += got
        return got

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise ValueError("a FITS stream is read in blocks")
        buffer = bytearray(n)
        got = self.readinto(buffer)
        return bytes(buffer[:got])

    def skip(self, n: int) -> int:
        """Pass over ``n`` bytes; returns how many there were."""
        scratch = bytearray(min(n, _CHUNK_BYTES)) if n else bytearray()
        done = 0
        while done < n:
            want = min(len(scratch), n - done)
            got = self.readinto(memoryview(scratch)[:want])
            done += got
            if got < want:
                break
        return done

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending
        self.position -= len(data)


class _MemoryReader(_Reader):
    """The bytes of a file already in memory (a uint8 array); skipping is free."""

    def __init__(self, raw: np.ndarray) -> None:
        super().__init__()
        self._raw = memoryview(raw).cast("B")
        self._offset = 0

    def _readinto_source(self, view: memoryview) -> int:
        n = min(len(view), len(self._raw) - self._offset)
        view[:n] = self._raw[self._offset:self._offset + n]
        self._offset += n
        return n

    def skip(self, n: int) -> int:
        from_pending = min(n, len(self._pending))
        self._pending = self._pending[from_pending:]
        rest = min(n - from_pending, len(self._raw) - self._offset)
        self._offset += rest
        self.position += from_pending + rest
        return from_pending + rest


class _StreamReader(_Reader):
    """A file read once from disk, hashed as it is read, gunzipped on the way when compressed.

    A gzip stream is decompressed a megabyte at a time and never beyond ``expansion_limit``;
    several gzip members follow each other, as ``gzip -d`` reads them, and bytes after the last
    member that start no other are ignored, as ``gzip -d`` does.
    """

    def __init__(self, handle, *, compressed: bool, hashing: bool, expansion_limit: int) -> None:
        super().__init__()
        self._handle = handle
        self._hasher = hashlib.sha256() if hashing else None
        self._compressed = compressed
        self._limit = expansion_limit
        self._disk = 0  # bytes read from disk
        if compressed:
            self._inflater = zlib.decompressobj(wbits=31)
            self._input = b""  # compressed bytes read but not yet given to the inflater
            self._output = memoryview(b"")
            self._produced = 0
            self._ended = False

    def _disk_read(self, n: int) -> bytes:
        data = self._handle.read(n)
        if self._hasher is not None and data:
            self._hasher.update(data)
        self._disk += len(data)
        return data

    def _readinto_source(self, view: memoryview) -> int:
        if not self._compressed:
            n = self._handle.readinto(view)
            if n and self._hasher is not None:
                self._hasher.update(view[:n])
            self._disk += n or 0
            return n or 0
        if not self._output:
            self._output = memoryview(self._inflate())
            if not self._output:
                return 0
        n = min(len(view), len(self._output))
        view[:n] = self._output[:n]
        self._output = self._output[n:]
        return n

    def _inflate(self) -> bytes:
        """The next decompressed bytes; empty at the end of the last gzip member."""
        while not self._ended:
            if self._inflater.eof:
                rest = self._inflater.unused_data + self._input
                if len(rest) < 2:
                    rest += self._disk_read(_CHUNK_BYTES)
                if rest[:2] != b"\x1f\x8b":
                    self._ended = True  # the end, or trailing bytes that begin no gzip member
                    break
                self._inflater, self._input = zlib.decompressobj(wbits=31), rest
            if not self._input:
                self._input = self._disk_read(_CHUNK_BYTES // 16)
                if not self._input:
                    raise FitsReadError(f"gzip stream ends at byte {self._disk} before its end "
                                        "(the file is truncated)")
            start = self._disk - len(self._input)
            saved = self._inflater.copy()
            try:
                out = self._inflater.decompress(self._input, _CHUNK_BYTES)
            except zlib.error as exc:
                raise FitsReadError(f"gzip stream damaged at byte {start + _damage_offset(saved, self._input)} "
                                    f"({_zlib_reason(exc)})") from None
            self._input = self._inflater.unconsumed_tail
            if out:
                self._produced += len(out)
                if self._produced > self._limit:
                    raise FrameTooLargeError(f"gzip stream expands beyond {self._limit // 2 ** 20} MB "
                                             "(twice the frame budget): not decompressed further")
                return out
        return b""

    def finish(self) -> None:
        """Read the rest of the file: the hash covers every byte, and a gzip stream is checked to its end."""
        if self._compressed:
            self._output = memoryview(b"")
            while self._inflate():
                pass
        while self._disk_read(_CHUNK_BYTES):
            pass

    def hexdigest(self) -> str | None:
        return None if self._hasher is None else self._hasher.hexdigest()


def _damage_offset(inflater, data: bytes) -> int:
    """Offset in ``data`` of the byte at which ``inflater`` (a copy taken before it) fails."""
    for i in range(len(data)):
        try:
            inflater.decompress(data[i:i + 1])
        except zlib.error:
            return i
    return len(data)


def _zlib_reason(exc: zlib.error) -> str:
    # "Error -3 while decompressing data: invalid distance too far back" -> "invalid distance too far back"
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text


class _FileBuffer:
    """One reusable buffer for the file bytes of this process's main thread.

    Every frame of a night has the same size, so the bytes of the next file
    go where the last ones were: no fresh allocation per file, and a peak
    memory that does not depend on where the allocator happens to put a new
    16 MiB block.  The buffer is reused only once the hash of the previous
    file (which may still be running in a thread) is done with it.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.array = np.empty(0, dtype=np.uint8)
        self.in_use = None  # the future hashing the current contents

    def take(self, size: int) -> np.ndarray:
        if self.in_use is not None:
            self.in_use.result()
            self.in_use = None
        if self.array.size < size:
            self.array = np.empty(size, dtype=np.uint8)
        return self.array[:size]


_FILE_BUFFER: _FileBuffer | None = None


def _shared_buffer() -> _FileBuffer | None:
    """The process's file buffer, or None off the main thread (threads must not share it)."""
    global _FILE_BUFFER
    if threading.current_thread() is not threading.main_thread():
        return None
    if _FILE_BUFFER is None or _FILE_BUFFER.pid != os.getpid():  # a forked worker gets its own
        _FILE_BUFFER = _FileBuffer()
    return _FILE_BUFFER


def _read_into_array(handle, expected: int, shared: _FileBuffer | None = None) -> np.ndarray:
    """The bytes of an open file in a writable uint8 array (one read, no copy), in ``shared`` when given."""
    buffer = shared.take(expected) if shared is not None else np.empty(expected, dtype=np.uint8)
    n = 0
    while n < expected:
        got = handle.readinto(memoryview(buffer)[n:])
        if not got:
            break
        n += got
    rest = handle.read(IN_MEMORY_FILE_BYTES + 1) if n == expected else b""
    if rest:  # the file grew while being read
        return np.concatenate([buffer[:n], np.frombuffer(rest, dtype=np.uint8)])
    return buffer[:n]
