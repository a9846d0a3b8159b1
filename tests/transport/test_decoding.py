"""The bounded content decoder: what it decodes, what it refuses, and how little it holds."""

from __future__ import annotations

import gzip
import zlib

import httpx
import pytest
from support.hostile import MIB, SUCCESS, inflating_gzip

from gateway.transport.decoding import BodyDecoder, decoder_for

LIMIT = 64 * 1024


def decode(values: list[bytes], body: bytes, piece: int = 1 << 30) -> bytes:
    """``body`` decoded as ``values`` say, fed in pieces of ``piece`` bytes."""
    decoder = decoder_for(values, LIMIT)
    assert decoder is not None
    out = b"".join(decoder.feed(body[i : i + piece]) for i in range(0, len(body), piece))
    decoder.finish()
    return out


def raw_deflate(data: bytes) -> bytes:
    """``data`` as raw deflate, without zlib's header: what some servers send as deflate."""
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflater.compress(data) + deflater.flush()


@pytest.mark.parametrize(
    ("values", "body"),
    [
        ([b"gzip"], gzip.compress(SUCCESS)),
        ([b"x-gzip"], gzip.compress(SUCCESS)),
        ([b"GZip "], gzip.compress(SUCCESS)),
        ([b"deflate"], zlib.compress(SUCCESS)),
        ([b"deflate"], raw_deflate(SUCCESS)),
        ([b"identity, gzip"], gzip.compress(SUCCESS)),
        ([b"identity", b"gzip"], gzip.compress(SUCCESS)),
    ],
    ids=["gzip", "x-gzip", "case-and-space", "zlib", "raw-deflate", "identity-listed", "two-lines"],
)
@pytest.mark.parametrize("piece", [1, 7, 1 << 30], ids=["bytewise", "pieces", "whole"])
def test_one_coding_is_decoded_however_it_arrives(
    values: list[bytes], body: bytes, piece: int
) -> None:
    """gzip and deflate (either form), any case, fed a byte at a time or whole, decode exactly."""
    assert decode(values, body, piece) == SUCCESS


@pytest.mark.parametrize("values", [[], [b""], [b"identity"], [b" , identity ,"]])
def test_no_coding_means_no_decoder(values: list[bytes]) -> None:
    """Without a coding (or only identity) there is nothing to decode: no decoder at all."""
    assert decoder_for(values, LIMIT) is None


@pytest.mark.parametrize(
    "values",
    [[b"gzip, gzip"], [b"gzip", b"gzip"], [b"deflate, gzip"]],
    ids=["one-line", "two-lines", "mixed"],
)
def test_more_than_one_coding_is_refused(values: list[bytes]) -> None:
    """A second layer is refused before any byte is decoded."""
    with pytest.raises(httpx.DecodingError, match="more than one"):
        decoder_for(values, LIMIT)


@pytest.mark.parametrize("value", [b"br", b"zstd", b"compress", b"g\xe9zip", b"gzip;q=1", b"\xff"])
def test_a_coding_we_do_not_decode_is_refused(value: bytes) -> None:
    """br, zstd, compress, a value that is not ASCII, anything unknown: refused."""
    with pytest.raises(httpx.DecodingError, match="we don't decode"):
        decoder_for([value], LIMIT)


def test_a_bomb_yields_no_more_than_the_limit_and_one_byte() -> None:
    """50 MiB from 52 KB: no step returns more than the room left; it stops, full, at LIMIT + 1."""
    bomb = inflating_gzip(SUCCESS, 50)
    assert len(bomb) < LIMIT
    decoder = BodyDecoder(b"gzip", LIMIT)
    produced = 0
    for start in range(0, len(bomb), 4096):
        room = LIMIT + 1 - produced
        out = decoder.feed(bomb[start : start + 4096])
        assert len(out) <= max(room, 0)
        produced += len(out)
    assert produced == LIMIT + 1
    assert decoder.full
    decoder.finish()  # full: refused for its size by the caller, not as malformed


def test_a_body_cut_short_is_malformed() -> None:
    """A gzip stream that stops before its end is refused when the body ends."""
    decoder = BodyDecoder(b"gzip", LIMIT)
    decoder.feed(gzip.compress(SUCCESS)[:-4])
    with pytest.raises(httpx.DecodingError, match="cut short"):
        decoder.finish()


def test_a_single_byte_of_deflate_is_cut_short() -> None:
    """Deflate tells its form by two bytes: one byte alone is a body cut short."""
    decoder = BodyDecoder(b"deflate", LIMIT)
    assert decoder.feed(b"\x78") == b""
    with pytest.raises(httpx.DecodingError, match="cut short"):
        decoder.finish()


@pytest.mark.parametrize(
    "after", [b"garbage", gzip.compress(b"second member")], ids=["garbage", "second-member"]
)
def test_bytes_after_the_end_of_the_coding_are_refused(after: bytes) -> None:
    """Whatever follows the end of the encoded stream (a second gzip member too) is refused."""
    decoder = BodyDecoder(b"gzip", LIMIT)
    with pytest.raises(httpx.DecodingError, match="past its encoding"):
        decoder.feed(gzip.compress(SUCCESS) + after)


def test_bytes_that_are_not_the_coding_are_refused() -> None:
    """A body that is not gzip at all, under a gzip header, is malformed."""
    decoder = BodyDecoder(b"gzip", LIMIT)
    with pytest.raises(httpx.DecodingError, match="malformed"):
        decoder.feed(SUCCESS)


def test_an_empty_body_decodes_to_nothing() -> None:
    """No body under a coding is an empty body, not a malformed one."""
    decoder = BodyDecoder(b"gzip", LIMIT)
    assert decoder.feed(b"") == b""
    decoder.finish()


def test_once_full_nothing_more_is_decoded() -> None:
    """After the limit, further input costs nothing and yields nothing."""
    decoder = BodyDecoder(b"gzip", 10)
    assert len(decoder.feed(gzip.compress(b" " * MIB))) == 11
    assert decoder.full
    assert decoder.feed(b"anything at all") == b""
