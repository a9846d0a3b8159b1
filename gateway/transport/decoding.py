"""Content decoding of upstream answers, bounded as the body arrives.

We never ask for an encoded answer, but HTTP lets a server send one anyway
(RFC 9110, 12.5.3): it is decoded within the body's limit, never in one piece.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Final

import httpx

#: The codings decoded, and zlib's window bits for each (None: deflate, told by its first bytes).
_CODINGS: Final[dict[bytes, int | None]] = {
    b"gzip": 16 + zlib.MAX_WBITS,
    b"x-gzip": 16 + zlib.MAX_WBITS,
    b"deflate": None,
}


class BodyDecoder:
    """Decodes one body of one content coding as it arrives, to ``limit`` + 1 bytes at most.

    ``feed`` each raw piece and keep what it returns; once ``full``, the body
    is over the limit and the caller stops reading (the decoder returns
    nothing more). ``finish`` checks, at the body's end, that the coding ended
    there too.
    """

    def __init__(self, coding: bytes, limit: int) -> None:
        self._limit = limit
        self._produced = 0
        self._pending = b""
        self._fed = False
        wbits = _CODINGS[coding]
        self._inflater = zlib.decompressobj(wbits) if wbits is not None else None

    @property
    def full(self) -> bool:
        """Whether the decoded body passed ``limit``: the answer is too large."""
        return self._produced > self._limit

    def feed(self, data: bytes) -> bytes:
        """The decoded bytes ``data`` yields, never taking the total past ``limit`` + 1."""
        room = self._limit + 1 - self._produced
        if room <= 0 or not data:
            return b""
        self._fed = True
        inflater = self._inflater
        if inflater is None:
            # deflate: the zlib format by the book, raw deflate from some servers; the
            # first two bytes tell which (a zlib header is a multiple of 31, method 8).
            data = self._pending + data
            if len(data) < 2:
                self._pending = data
                return b""
            self._pending = b""
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            inflater = self._inflater = zlib.decompressobj(
                zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
            )
        try:
            # At most ``room`` bytes of output; input left over stays in unconsumed_tail,
            # which is only ever left when the output reached the limit (and we stop).
            out = inflater.decompress(data, room)
        except zlib.error:
            raise httpx.DecodingError("The upstream's encoded body is malformed") from None
        if inflater.unused_data:
            raise httpx.DecodingError("The upstream's body goes on past its encoding's end")
        self._produced += len(out)
        return out

    def finish(self) -> None:
        """Raise ``httpx.DecodingError`` unless the coding ended with the body (or it was full)."""
        if self.full or not self._fed:
            return  # refused for its size anyway; or an empty body, in which nothing was encoded
        if self._inflater is None or not self._inflater.eof:
            raise httpx.DecodingError("The upstream's encoded body is cut short")


def decoder_for(values: Iterable[bytes], limit: int) -> BodyDecoder | None:
    """The decoder for an answer's ``Content-Encoding`` values (raw bytes); None if no coding.

    gzip (``x-gzip``) and deflate (zlib-wrapped or raw) are decoded, one layer
    at most; ``identity`` is no coding. Anything else (br, zstd, compress, two
    layers, an unknown or non-ASCII coding) is ``httpx.DecodingError``, as is
    a body that ends before its coding does or goes on after it.
    """
    codings = [
        token
        for value in values
        for part in value.split(b",")
        if (token := part.strip().lower()) and token != b"identity"
    ]
    if not codings:
        return None
    if len(codings) > 1:
        raise httpx.DecodingError("The upstream's answer has more than one content coding")
    if codings[0] not in _CODINGS:
        raise httpx.DecodingError("The upstream's answer has a content coding we don't decode")
    return BodyDecoder(codings[0], limit)
