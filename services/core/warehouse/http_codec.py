"""Bytes on the wire of the ClickHouse HTTP interface: encodings, content types, form bodies."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import lz4.frame  # type: ignore[import-untyped]

from services.core.warehouse.clickhouse_errors import CANNOT_DECOMPRESS, NOT_IMPLEMENTED, UNKNOWN_EXCEPTION
from services.core.warehouse.http_access import refusal

try:
    from compression import zstd as _zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # Python < 3.14: the backport clickhouse-connect depends on
    from backports import zstd as _zstd  # type: ignore[import-not-found,no-redef,unused-ignore]

zstd: Any = _zstd


class BodyDecoder:
    """Undo one request ``Content-Encoding`` incrementally (gzip, deflate, zstd, lz4, identity).

    Compressed bodies may be several concatenated frames (clickhouse-connect compresses each
    insert block on its own), so a new decompressor starts wherever the previous frame ended.
    """

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        self._encoding = encoding
        self._factory: Callable[[], Any] | None
        if encoding in ("", "identity"):
            self._factory = None
        elif encoding in ("gzip", "x-gzip"):
            self._factory = lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._factory = lambda: zlib.decompressobj(zlib.MAX_WBITS)
        elif encoding == "zstd":
            self._factory = zstd.ZstdDecompressor
        elif encoding == "lz4":
            self._factory = lz4.frame.LZ4FrameDecompressor
        else:
            raise refusal(NOT_IMPLEMENTED, f"Unknown HTTP Content-Encoding: {encoding}")
        self._decompressor: Any = self._factory() if self._factory is not None else None
        self._fresh = True

    def decode(self, chunk: bytes) -> bytes:
        if self._factory is None:
            return chunk
        out = bytearray()
        try:
            while chunk:
                if self._decompressor.eof:
                    self._decompressor = self._factory()
                out += self._decompressor.decompress(chunk)
                self._fresh = False
                chunk = self._decompressor.unused_data if self._decompressor.eof else b""
        except Exception as exc:
            raise refusal(
                CANNOT_DECOMPRESS, f"Cannot decompress the {self._encoding} request body: {exc}"
            ) from exc
        return bytes(out)

    def flush(self) -> bytes:
        if self._factory is None or self._fresh or self._decompressor.eof:
            return b""
        raise refusal(CANNOT_DECOMPRESS, f"The {self._encoding} request body ends inside a compressed frame")


# Ordered by preference when the client accepts several.
_RESPONSE_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": lambda data: bytes(lz4.frame.compress(data)),
    "zstd": lambda data: bytes(zstd.compress(data)),
    "gzip": lambda data: gzip.compress(data, compresslevel=3),
    "deflate": lambda data: zlib.compress(data, 3),
}


def response_encoding(accept_encoding: str) -> str | None:
    offered = {part.split(";")[0].strip().lower() for part in accept_encoding.split(",")}
    return next((name for name in _RESPONSE_ENCODERS if name in offered), None)


def encode_response(data: bytes, encoding: str) -> bytes:
    return _RESPONSE_ENCODERS[encoding](data)


def content_type(fmt: str) -> str:
    """The Content-Type ClickHouse sends for an output format."""
    name = fmt.lower()
    if name.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if name.startswith(("json", "ndjson")):
        return "application/json; charset=UTF-8"
    if name in ("xml",):
        return "application/xml; charset=UTF-8"
    if name.startswith(
        (
            "native",
            "rowbinary",
            "parquet",
            "arrow",
            "orc",
            "avro",
            "msgpack",
            "protobuf",
            "capnproto",
            "npy",
            "bson",
        )
    ):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


def form_fields(content_type_header: str, body: bytes) -> dict[str, str]:
    """Plain fields of a multipart/form-data body (``query``, ``param_*``).

    External data files (temporary tables sent with the query) are not supported.
    """
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type_header.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise refusal(UNKNOWN_EXCEPTION, "Malformed multipart/form-data body")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        if not isinstance(part, EmailMessage):
            continue
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            raise refusal(NOT_IMPLEMENTED, "External data (files in a multipart body) is not supported")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = payload.decode() if isinstance(payload, bytes) else str(payload or "")
    return fields
