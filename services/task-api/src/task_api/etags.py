"""HTTP entity tags: how a task revision travels in ETag and If-Match headers.

If-Match as RFC 9110 (section 13.1.1) defines it: `*` (any current version), or a
comma-separated list of entity tags; the condition holds when any listed tag matches
the current one by strong comparison, so a weak tag (`W/"..."`) never matches. A task's
ETag is always strong: its revision, quoted."""

import re

# One list element: an optional weak indicator and a quoted opaque tag (etagc: any
# visible character but the double quote, or obs-text), then the end or a comma.
_ENTITY_TAG = re.compile(r'[ \t]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|\Z)')
_EMPTY_ELEMENT = re.compile(r"[ \t]*,")


class MalformedIfMatch(ValueError):
    """The If-Match header is neither `*` nor a list of quoted entity tags."""


def format_etag(revision: str) -> str:
    return f'"{revision}"'


def parse_if_match(header: str | None) -> frozenset[str] | None:
    """The revisions an If-Match header accepts, or None when any version will do (no
    header, or `*`). Weak tags are left out: an If-Match naming only weak tags (or none)
    accepts no version at all."""
    if header is None or header.strip(" \t") == "*":
        return None
    accepted: set[str] = set()
    position = 0
    while position < len(header):
        if empty := _EMPTY_ELEMENT.match(header, position):
            position = empty.end()  # the list rule allows empty elements
            continue
        if header[position:].strip(" \t") == "":
            break
        tag = _ENTITY_TAG.match(header, position)
        if tag is None:
            raise MalformedIfMatch(header)
        if tag.group(1) is None:
            accepted.add(tag.group(2))
        position = tag.end()
    return frozenset(accepted)
