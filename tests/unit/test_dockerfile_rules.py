"""What a pushed Dockerfile may name and fetch (paas/buildpacks/dockerfile_rules.py), table-driven.

The attack rows (ATTACKS) all passed the check before these rules, whose only test was that FROM's
image exists here (another app's image does): `test_the_old_check_let_the_attacks_through` replays
that regex check on them. The parser-differential rows are marked below.
"""

from __future__ import annotations

import re

import pytest

from paas.buildpacks import dockerfile, dockerfile_rules
from paas.buildpacks.result import BuildFailed
from paas.core.output import BuildLog

STACK = "paas/stack:trixie-abc123"
ARGS = {"PAAS_STACK_IMAGE": STACK}
REFS = dockerfile.stack_references(STACK)
OTHER = "paas/app-other:b3-inst"


def check(text: str) -> dockerfile_rules.Checked:
    return dockerfile_rules.check(text, ARGS, REFS, "paas/stack:latest")


ALLOWED = [
    ("literal stack", "FROM paas/stack:latest\nCMD x\n", ["paas/stack:latest"]),
    ("untagged stack", "from paas/stack\ncmd x\n", ["paas/stack:latest"]),
    ("stack by name", "FROM docker.io/paas/stack:trixie\n", ["paas/stack:trixie"]),
    ("stack arg", "ARG PAAS_STACK_IMAGE\nFROM ${PAAS_STACK_IMAGE}\n", [STACK]),
    ("stack arg unbraced", "ARG PAAS_STACK_IMAGE\nFROM $PAAS_STACK_IMAGE AS b\n", [STACK]),
    ("build arg beats default", f"ARG PAAS_STACK_IMAGE={OTHER}\nFROM $PAAS_STACK_IMAGE\n", [STACK]),
    ("arg default", "ARG BASE=paas/stack:latest\nFROM ${BASE}\n", ["paas/stack:latest"]),
    ("scratch", "FROM scratch\nCOPY x /x\n", []),
    (
        "stages by name and index",
        "FROM paas/stack:latest AS Build\nRUN make\nFROM build AS two\nFROM scratch\n"
        "COPY --from=BUILD /a /a\nCOPY --from=1 /b /b\nCOPY --from=0 /c /c\n",
        ["paas/stack:latest"],
    ),
    ("copy from stack", "FROM scratch\nCOPY --from=paas/stack:latest --chown=1000 /bin /bin\n", None),
    ("run mount stage", "FROM paas/stack AS a\nFROM a\nRUN --mount=type=bind,from=a,target=/x true\n", None),
    ("add local", 'FROM paas/stack\nADD app.tar.gz /srv/\nADD ["a b", "/c"]\nADD --chown=1000 x /x\n', None),
    ("onbuild local", "FROM paas/stack\nONBUILD COPY . /app\nONBUILD ADD x /x\n", None),
    ("escape directive", "# escape=`\nFROM paas/stack\nRUN echo a `\n  b\nCMD C:\\x\n", None),
    ("comment in continuation", "FROM paas/stack\nRUN a \\\n# FROM paas/app-x:1\n  b\n", None),
    ("crlf", "FROM paas/stack\r\nRUN a \\\r\n  b\r\n", None),
    ("shift in RUN", "FROM paas/stack\nRUN echo $((1<<2)) >/x\n", None),
    ("url in RUN", "FROM paas/stack\nRUN curl -fsS https://example.org/x -o /x\n", None),
    ("tabs and blank lines", "\n\nFROM\tpaas/stack\n\n\nRUN\ta\n", None),
]


@pytest.mark.parametrize("text,images", [(t, i) for _, t, i in ALLOWED], ids=[n for n, _, _ in ALLOWED])
def test_allowed(text: str, images: list[str] | None) -> None:
    checked = check(text)
    if images is not None:
        assert checked.images == images


# (name, Dockerfile, line, message): FROM / COPY --from another app, ADD of a URL, and the tricks.
REFUSED = [
    ("from other app", f"FROM {OTHER}\n", 1, f"FROM {OTHER}: may only name the stack image"),
    ("from other app lowercase", f"from paas/stack\nfrom {OTHER}\n", 2, "may only name the stack"),
    ("from image id", "FROM sha256:0123abcd\n", 1, "may only name the stack image (paas/stack:latest)"),
    ("from other via arg", f"ARG B={OTHER}\nFROM $B\n", 2, f"FROM {OTHER}: may only name"),
    ("from arg default trick", f"FROM ${{X:-{OTHER}}}\n", 1, "cannot be resolved"),
    ("from undeclared arg", "FROM ${NOPE}\n", 1, "cannot be resolved"),
    ("from quoted arg", f'ARG B="{OTHER}"\nFROM $B\n', 2, "cannot be resolved"),
    ("from arg concat", "ARG T=latest\nFROM paas/stack:$T\n", 2, "cannot be resolved"),
    ("from later stage", "FROM later\nFROM paas/stack AS later\n", 1, "FROM later: may only name"),
    ("from platform flag", f"FROM --platform=linux/amd64 {OTHER}\n", 1, "may only name"),
    ("copy from other", f"FROM paas/stack\nCOPY --from={OTHER} /app /x\n", 2, f"COPY --from={OTHER}: may"),
    ("copy from unknown", "FROM paas/stack\nCOPY --from=nginx:latest / /\n", 2, "earlier stage or the stack"),
    ("copy from own stage", "FROM paas/stack AS a\nCOPY --from=a / /\n", 2, "COPY --from=a"),
    ("copy from later index", "FROM paas/stack\nCOPY --from=0 / /\n", 2, "COPY --from=0"),
    ("copy from upper flag", f"FROM paas/stack\nCOPY --FROM={OTHER} / /\n", 2, "COPY --from="),
    ("copy from json", f'FROM paas/stack\nCOPY --from={OTHER} ["/a", "/b"]\n', 2, "COPY --from="),
    ("copy from variable", "FROM paas/stack\nARG S=x\nCOPY --from=$S / /\n", 3, "COPY --from=$S"),
    ("copy from quoted", f'FROM paas/stack\nCOPY --from="{OTHER}" / /\n', 2, "quotes and escapes in flags"),
    ("flag name quoted", f'FROM paas/stack\nCOPY --fr"om"={OTHER} / /\n', 2, "quotes and escapes in flags"),
    ("flag escaped space", f"FROM paas/stack\nCOPY --chown=a\\ b --from={OTHER} / /\n", 2, "quotes and esc"),
    ("add from", f"FROM paas/stack\nADD --from={OTHER} / /\n", 2, "ADD --from="),
    ("run mount other", f"FROM paas/stack\nRUN --mount=type=bind,from={OTHER} x\n", 2, "RUN --mount from"),
    ("run mount FROM key", f"FROM paas/stack\nRUN --mount=type=cache,FROM={OTHER},target=/c x\n", 2, "from"),
    ("onbuild copy from", f"FROM paas/stack\nONBUILD COPY --from={OTHER} / /\n", 2, "ONBUILD COPY --from="),
    ("onbuild from", "FROM paas/stack\nonbuild FROM paas/stack\n", 2, "ONBUILD FROM is not allowed"),
    ("add url", "FROM paas/stack\nADD http://127.0.0.1:8000/secret /s\n", 2, "URLs are refused"),
    ("add https lowercase", "FROM paas/stack\nadd https://example.org/x /x\n", 2, "URLs are refused"),
    ("add url upper", "FROM paas/stack\nADD HTTP://127.0.0.1/ /s\n", 2, "URLs are refused"),
    ("add git", "FROM paas/stack\nADD git@example.org:a/b.git /s\n", 2, "URLs are refused"),
    ("add ftp", "FROM paas/stack\nADD ftp://127.0.0.1/x /s\n", 2, "URLs are refused"),
    ("add json url", 'FROM paas/stack\nADD ["http://127.0.0.1:1/", "/s"]\n', 2, "URLs are refused"),
    ("add json escape", 'FROM paas/stack\nADD ["http:\\u002f/127.0.0.1/", "/s"]\n', 2, "URLs are refused"),
    ("add quoted url", 'FROM paas/stack\nADD "http"://127.0.0.1/ /s\n', 2, "URLs are refused"),
    ("add escaped url", "# escape=`\nFROM paas/stack\nADD http:`/`/127.0.0.1/ /s\n", 3, "URLs are refused"),
    ("add variable url", "FROM paas/stack\nENV U=http://127.0.0.1/\nADD $U /s\n", 3, "variables"),
    ("add url continued", "FROM paas/stack\nADD \\\n  http://127.0.0.1/ \\\n  /s\n", 2, "URLs are refused"),
    ("add url after comment", "FROM paas/stack\nADD \\\n# x\n http://127.0.0.1/ /s\n", 2, "URLs are refused"),
    ("onbuild add url", "FROM paas/stack\nONBUILD ADD http://127.0.0.1/ /s\n", 2, "ONBUILD ADD http"),
    ("onbuild add url lower", "FROM paas/stack\nonbuild add http://127.0.0.1/ /s\n", 2, "ONBUILD ADD"),
    # Parser differentials. Measured on dockerd 20.10 with LABEL probes: it drops a BOM, ends a
    # continuation at U+00A0 / \v, continues through an empty line and keeps a file's last line even
    # inside a continuation, so it runs an instruction a naive (or Python-`\s`) reading misses. The
    # rest are refused as ambiguous or invalid before dockerd is asked.
    ("bom", f"\ufeffFROM {OTHER}\n", 1, "byte-order mark"),
    ("no-break space ends continuation", f"FROM paas/stack\nRUN a \\\xa0\nFROM {OTHER}\n", 2, "'\\xa0'"),
    ("vertical tab", f"FROM paas/stack\nRUN a \\\x0b\nFROM {OTHER}\n", 2, "unusual whitespace"),
    ("lone carriage return", "FROM paas/stack\nRUN a\rADD http://x/ /\n", 2, "'\\r'"),
    ("not utf-8", "FROM paas/stack\nRUN \ufffd\n", 2, "not UTF-8"),
    (
        "empty line in continuation",
        "FROM paas/stack\nADD \\\n\nhttp://127.0.0.1/ /s\n",
        3,
        "empty line inside a continuation",
    ),
    (
        "escape directive swallows",
        f"# escape=`\nFROM paas/stack\nRUN echo \\\nFROM {OTHER}\n",
        4,
        "may only name the stack",
    ),
    ("ends in continuation", "FROM paas/stack\nADD http://127.0.0.1/ /s \\\n", 2, "cannot parse this line"),
    ("heredoc", "FROM paas/stack\nRUN <<EOF\necho \\\nEOF\n", 2, "heredocs (<<EOF) are not supported"),
    ("heredoc add", "FROM paas/stack\nADD <<-'X' /f\nhttp://x\nX\n", 2, "ADD: heredocs"),
    ("unknown instruction", "FROM paas/stack\nFR0M x\n", 2, "unknown instruction FR0M"),
    ("before from", "RUN x\nFROM paas/stack\n", 1, "RUN before the first FROM"),
    ("from takes one image", "FROM paas/stack paas/app-x\n", 1, "FROM takes an image"),
]


@pytest.mark.parametrize(
    "text,line,message", [(t, ln, m) for _, t, ln, m in REFUSED], ids=[n for n, *_ in REFUSED]
)
def test_refused_with_one_line_naming_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(BuildFailed) as err:
        check(text)
    text_of_error = str(err.value)
    assert text_of_error.startswith(f"Dockerfile line {line}: "), text_of_error
    assert message in text_of_error and "\n" not in text_of_error


def test_no_from_is_refused() -> None:
    with pytest.raises(BuildFailed, match="^Dockerfile: no FROM instruction$"):
        check("# just a comment\n")


# The check before these rules (commit 05faff4): FROM lines by regex after joining `\` lines, ARGs
# substituted; the build went ahead if every named image existed on the server.
_OLD_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?\s*$", re.IGNORECASE)
_OLD_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)


def _old_base_images(text: str) -> list[str]:
    args, stages, images, seen_from = dict(ARGS), set(), [], False
    for line in text.replace("\\\n", " ").splitlines():
        if (m := _OLD_ARG.match(line)) and not seen_from:
            args.setdefault(m.group(1), m.group(2) or "")
            continue
        if not (m := _OLD_FROM.match(line)):
            continue
        seen_from = True
        image = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda v: args.get(v.group(1), ""), m.group(1))
        if image.lower() != "scratch" and image not in stages:
            images.append(image)
        if m.group(2):
            stages.add(m.group(2))
    return images


ATTACKS = [
    "from other app",
    "from other app lowercase",
    "copy from other",
    "run mount other",
    "onbuild copy from",
    "add url",
    "add json url",
    "onbuild add url",
    "add url continued",
    "add url after comment",
    "escape directive swallows",
    "empty line in continuation",
    "ends in continuation",
]


@pytest.mark.parametrize("name", ATTACKS)
def test_the_old_check_let_the_attacks_through(name: str) -> None:
    """Each attack row passed the old check: it named only images that exist (the stack, or another
    app's image, which exists by construction) or did not name them at all."""
    [text] = [t for n, t, _, _ in REFUSED if n == name]
    exists = {STACK, "paas/stack:latest", "paas/stack", OTHER}
    assert set(_old_base_images(text)) <= exists


@pytest.mark.parametrize(
    "user,passwd,uid",
    [
        ("", None, 0),
        ("0", None, 0),
        ("00", None, 0),
        ("0:0", None, 0),
        ("1000:0", None, 1000),
        ("4242", None, 4242),
        ("root", "root:x:0:0:root:/root:/bin/sh\n", 0),
        ("root:root", "root:x:0:0:root:/root:/bin/sh\n", 0),
        ("toor", "root:x:0:0::/:/bin/sh\ntoor:x:0:0::/:/bin/sh\n", 0),
        ("toor", "toor:x:00:0::/:/bin/sh\n", 0),
        ("app", "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/app:/bin/bash\n", 1000),
        ("app", "  app:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n", None),  # runc strips lines
        ("app", "app:x:+0:0::/:/bin/sh\n", None),
        ("app", "app:x: 1:0::/:/bin/sh\n", None),
        ("app", None, None),
        ("ghost", "app:x:1000:1000::/:/bin/sh\n", None),
    ],
)
def test_effective_uid_is_none_unless_certain(user: str, passwd: str | None, uid: int | None) -> None:
    assert dockerfile.effective_uid(user, passwd) == uid


def test_port_and_processes_unchanged() -> None:
    assert dockerfile.exposed_port({"8080/tcp": {}}, BuildLog()) == 8080
    assert dockerfile.process_commands({}, [], ["python3", "app.py"]) == {"web": "exec python3 app.py"}
