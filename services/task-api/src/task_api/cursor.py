"""Opaque list cursors: the position of the last task a page returned."""

import base64
import binascii
from datetime import datetime
from uuid import UUID

from task_api.errors import InvalidCursor
from task_api.task_index import IndexEntry


def encode_cursor(entry: IndexEntry) -> str:
    raw = f"{entry.created_at.isoformat()}|{entry.task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> IndexEntry:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, task_id = raw.split("|")
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return IndexEntry(created_at, UUID(task_id))
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor("cursor is not one this API returned") from error
