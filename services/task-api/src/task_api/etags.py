"""HTTP entity tags: how a task revision travels in ETag and If-Match headers."""


def format_etag(revision: str) -> str:
    return f'"{revision}"'


def parse_if_match(header: str | None) -> str | None:
    """The revision an If-Match header requires, or None when any version will do.

    A list of tags or `*` is accepted; since a task has exactly one current revision,
    only the first tag of a list can be meaningful."""
    if header is None or header.strip() == "*":
        return None
    first = header.split(",")[0].strip()
    first = first.removeprefix("W/")
    return first.strip('"')
