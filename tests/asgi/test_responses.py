"""The JSON-or-text choice of a refusal's body, from the request's Accept header, under hypothesis."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from entitlegate_asgi._responses import denied

JSON_TYPES = ["application/json", "application/problem+json", "application/vnd.api+json"]
TEXT_TYPES = ["text/html", "text/plain"]
OTHER_TYPES = ["*/*", "application/xml", "image/webp", "text/*"]
QUALITIES = [None, "0", "0.0", "0.1", "0.5", "0.9", "1", "1.0", "1.000"]


def content_type(accept_headers: list[bytes]) -> bytes:
    """The content-type a 403 refusal is sent with, for a request carrying these Accept headers."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        raise AssertionError("a refusal reads nothing")

    scope = {"type": "http", "headers": [(b"accept", value) for value in accept_headers]}
    asyncio.run(denied("seats-feature")(scope, receive, send))
    return dict(sent[0]["headers"])[b"content-type"]


media_range = st.tuples(
    st.sampled_from(JSON_TYPES + TEXT_TYPES + OTHER_TYPES),
    st.sampled_from(QUALITIES),
    st.booleans(),  # upper case
    st.sampled_from(["", " ", "  "]),  # whitespace around it
    st.sampled_from(["", ";charset=utf-8", "; level=1"]),  # a parameter before q
)


def header(ranges: list[tuple[str, str | None, bool, str, str]]) -> bytes:
    parts = []
    for media_type, quality, upper, space, parameter in ranges:
        text = (media_type.upper() if upper else media_type) + parameter
        if quality is not None:
            text += f";q={quality}"
        parts.append(f"{space}{text}{space}")
    return ",".join(parts).encode()


def oracle(ranges: list[tuple[str, str | None, bool, str, str]]) -> bool:
    """JSON when a JSON type is acceptable (q > 0) and liked at least as well as HTML or plain text."""
    best = {"json": -1.0, "text": -1.0}
    for media_type, quality, *_ in ranges:
        kind = "json" if media_type in JSON_TYPES else "text" if media_type in TEXT_TYPES else None
        if kind is not None:
            best[kind] = max(best[kind], 1.0 if quality is None else float(quality))
    return best["json"] > 0 and best["json"] >= best["text"]


@given(st.lists(st.lists(media_range, min_size=1, max_size=4), max_size=2))
def test_a_refusal_is_json_exactly_when_the_client_prefers_json(headers: list[list[Any]]) -> None:
    every_range = [media for one_header in headers for media in one_header]

    chosen = content_type([header(one_header) for one_header in headers])

    assert (chosen == b"application/json") == oracle(every_range)


def test_a_browsers_accept_header_gets_text() -> None:
    browser = b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

    assert content_type([browser]).startswith(b"text/plain")


def test_json_refused_with_q_zero_gets_text() -> None:
    assert content_type([b"application/json;q=0"]).startswith(b"text/plain")


def test_no_accept_header_gets_text() -> None:
    assert content_type([]).startswith(b"text/plain")
