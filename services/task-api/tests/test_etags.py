"""If-Match as RFC 9110 (section 13.1.1) reads it: `*`, or a list of entity tags of
which any one may match, compared strongly (a weak tag never matches)."""

import pytest

from task_api.etags import MalformedIfMatch, format_etag, parse_if_match


def test_an_etag_is_the_revision_quoted() -> None:
    assert format_etag("3f2c") == '"3f2c"'
    assert parse_if_match(format_etag("3f2c")) == frozenset({"3f2c"})


@pytest.mark.parametrize("header", [None, "*", " * "])
def test_no_header_or_a_star_accepts_any_current_version(header: str | None) -> None:
    assert parse_if_match(header) is None


@pytest.mark.parametrize(
    ("header", "revisions"),
    [
        ('"old", "current"', {"old", "current"}),
        ('"old","current"', {"old", "current"}),
        ('"current" , "old"', {"current", "old"}),
        # The list rule allows empty elements.
        (', "old",, "current" ,', {"old", "current"}),
        ('W/"current"', set()),
        ('W/"current", "old"', {"old"}),
        ('""', {""}),
        ('"a,b"', {"a,b"}),
        # An empty list names no version: nothing can match it.
        ("", set()),
        (" , ", set()),
    ],
)
def test_every_strong_tag_of_a_list_counts(header: str, revisions: set[str]) -> None:
    assert parse_if_match(header) == frozenset(revisions)


@pytest.mark.parametrize(
    "header",
    [
        "current",  # unquoted
        '"current',
        'current"',
        '"a" "b"',  # no comma between tags
        '*, "current"',  # a star is alone or not at all
        'w/"current"',  # the weak indicator is case-sensitive
        '"in"side"',
        '"sp ace"',
    ],
)
def test_a_header_that_is_not_a_list_of_entity_tags_is_malformed(header: str) -> None:
    with pytest.raises(MalformedIfMatch):
        parse_if_match(header)
