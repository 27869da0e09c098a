"""Door 2: the login's `next` is a path on this site, in every spelling a browser would read."""

from __future__ import annotations

import pytest

from paas.core.validation import site_path

REFUSED = [
    "/\t/evil.example",  # browsers drop tabs: //evil.example
    "/\n/evil.example",
    "/\r/evil.example",
    "/%09/evil.example",  # the same once decoded
    "/%0a/x",
    "/%0d%0aSet-Cookie:x",
    "//evil.example",
    "/\\evil.example",  # browsers read a backslash as a slash
    "/%5cevil.example",
    "/%2f/evil.example",
    "/%2F%2Fevil.example",
    " /apps",
    "/apps x",
    "/a%20b",  # strict: no whitespace once decoded either (no page of ours needs one)
    "/\x00",
    "/\x1b[31m",
    "/\u2028evil",
    "/\u00a0",
    "https://evil.example/",
    "javascript:alert(1)",
    "evil.example",
    "",
    None,
    "/" + "a" * 3000,
]
ACCEPTED = ["/", "/apps/demo", "/apps/demo?reveal=1#config", "/apps/demo/releases/v3/build"]


@pytest.mark.parametrize("target", REFUSED)
def test_refused(target: str | None) -> None:
    assert not site_path(target)


@pytest.mark.parametrize("target", ACCEPTED)
def test_accepted(target: str) -> None:
    assert site_path(target)
