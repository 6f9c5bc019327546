"""Opaque list cursors: where, in each index shard, the next page continues.

A cursor is signed (HMAC-SHA256, key from the secret store): a position decides how much
of the index a list walks, so a client must only hand back positions this API gave it.
The server still clamps them to the shard heads (see TaskIndex.scan), in case a key
leaks or another replica signed with a key of its own.
"""

import base64
import binascii
import hashlib
import hmac

from task_api.errors import InvalidCursor
from task_api.task_index import SHARD_COUNT

_MAC_SIZE = hashlib.sha256().digest_size


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the cursor key is empty")
        self._key = key

    def _mac(self, raw: bytes) -> bytes:
        return hmac.new(self._key, raw, hashlib.sha256).digest()

    def encode(self, below: list[int]) -> str:
        raw = ".".join(str(seq) for seq in below).encode()
        return base64.urlsafe_b64encode(raw + self._mac(raw)).decode().rstrip("=")

    def decode(self, cursor: str) -> list[int]:
        try:
            signed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError) as error:
            raise InvalidCursor("cursor is not base64") from error
        raw, mac = signed[:-_MAC_SIZE], signed[-_MAC_SIZE:]
        # Checked before anything else is read from the cursor, in constant time.
        if len(signed) <= _MAC_SIZE or not hmac.compare_digest(mac, self._mac(raw)):
            raise InvalidCursor("cursor is not one this API returned")
        try:
            below = [int(part) for part in raw.decode("ascii").split(".")]
        except (UnicodeDecodeError, ValueError) as error:  # signed, yet not ours: a bug
            raise InvalidCursor("cursor is not one this API returned") from error
        if len(below) != SHARD_COUNT or any(seq < 0 for seq in below):
            raise InvalidCursor("cursor is not one this API returned")
        return below
