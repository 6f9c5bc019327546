"""Opaque list cursors: where, in each index shard, the next page continues."""

import base64
import binascii

from task_api.errors import InvalidCursor
from task_api.task_index import SHARD_COUNT


def encode_cursor(below: list[int]) -> str:
    raw = ".".join(str(seq) for seq in below).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        below = [int(part) for part in raw.split(".")]
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor("cursor is not one this API returned") from error
    if len(below) != SHARD_COUNT or any(seq < 0 for seq in below):
        raise InvalidCursor("cursor is not one this API returned")
    return below
