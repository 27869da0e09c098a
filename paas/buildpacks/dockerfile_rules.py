"""What a pushed Dockerfile may name and fetch, checked before dockerd sees it.

A Dockerfile is the tenant's program for dockerd, and dockerd runs it with the server's rights:
`FROM` / `COPY --from` can read any local image (another app's code), and `ADD <url>` makes dockerd
fetch from the host's own network (loopback-only services). So every image a build reads must be a
stack image or an earlier stage of the same file, and `ADD` takes local files only.

The file is read with `dockerfile-parse`; on top of it, input on which that parser and dockerd's own
could disagree is refused outright (a byte-order mark, whitespace other than space and tab, an
empty line inside a continuation, a file that ends inside one, quotes or escapes in flags), so the
instructions checked here are the instructions dockerd runs. Each refusal is one line naming the
Dockerfile line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter

from paas.buildpacks.result import BuildFailed

INSTRUCTIONS = frozenset(
    "ADD ARG CMD COPY ENTRYPOINT ENV EXPOSE FROM HEALTHCHECK LABEL MAINTAINER ONBUILD RUN SHELL "
    "STOPSIGNAL USER VOLUME WORKDIR".split()
)
NOT_IN_ONBUILD = frozenset({"FROM", "ONBUILD", "MAINTAINER"})  # dockerd refuses these as triggers
_PLAIN = re.compile(r"[A-Za-z0-9._:/@-]+")  # an image reference or stage name, nothing to expand
_ONE_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_FLAG = re.compile(r"(--[^ \t]*)(?:[ \t]+|$)")
_INSTRUCTION_WORD = re.compile(r"[ \t]*([A-Za-z]+)(?:[ \t]|$)")
_SPECIAL = "\"'\\`$"  # quoting, escaping (either escape character) and expansion
_URL_MARKS = ("://", "git@")
_HEREDOC = re.compile(r"""\d*<<-?["']?[A-Za-z0-9_]""")  # a word dockerd's newer parsers read as a heredoc


@dataclass
class Checked:
    """What a Dockerfile that passed reads: the stack images it names (each must exist here)."""

    images: list[str] = field(default_factory=list)


def normalize(ref: str) -> str:
    """`paas/stack` and `docker.io/paas/stack:latest` name what `paas/stack:latest` names."""
    for prefix in ("docker.io/", "index.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


def _refuse(lineno: int, message: str) -> BuildFailed:
    return BuildFailed(f"Dockerfile line {lineno}: {message}")


def _check_characters(text: str) -> None:
    """Refuse bytes that dockerd's parser and ours read differently (measured on dockerd 20.10):
    dockerd drops a leading byte-order mark, and ends a `\\` continuation at a no-break or vertical
    space that Python's `\\s` would skip."""
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        for ch in line:
            if ch in "\ufeff\ufffd":
                what = "a byte-order mark" if ch == "\ufeff" else "bytes that are not UTF-8"
                raise _refuse(lineno, f"{what}: save the Dockerfile as plain UTF-8")
            if (ch.isspace() and ch not in " \t") or (ord(ch) < 32 and ch != "\t") or ord(ch) == 127:
                raise _refuse(lineno, f"control or unusual whitespace character {ch!r}: use spaces and tabs")


def _check_coverage(lines: list[str], structure: list[dict]) -> None:
    """Every line is a comment, blank, or part of an instruction, and no instruction runs into a
    blank line (dockerd continues through it) or off the end of the file (dockerd keeps it)."""
    covered = [False] * len(lines)
    for item in structure:
        for i in range(item["startline"], item["endline"] + 1):
            covered[i] = True
        if item["instruction"] != "COMMENT" and item["endline"] > item["startline"]:
            if not lines[item["endline"]].strip():
                raise _refuse(item["endline"] + 1, "empty line inside a continuation: remove it")
    for i, line in enumerate(lines):
        if not covered[i] and line.strip():
            raise _refuse(i + 1, "cannot parse this line (does the file end inside a continuation?)")


def _split_flags(lineno: int, value: str) -> tuple[dict[str, list[str]], str]:
    """Leading `--name=value` flags (lowercased names) and the rest, as dockerd splits them;
    flags with quotes or escapes are refused, since only then can both splits disagree."""
    flags: dict[str, list[str]] = {}
    rest = value.lstrip(" \t")
    while m := _FLAG.match(rest):
        word, rest = m.group(1), rest[m.end() :]
        if word == "--":
            break
        if any(c in word for c in "\"'\\"):
            raise _refuse(lineno, f"quotes and escapes in flags are not supported: {word}")
        name, _, flag_value = word[2:].partition("=")
        flags.setdefault(name.lower(), []).append(flag_value)
    return flags, rest


def _args(rest: str) -> list[str]:
    """An instruction's arguments: the JSON form if it parses as a list of strings (as dockerd
    decides), else the words."""
    if rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            return parsed
    return rest.split()


class _Checker:
    def __init__(self, build_args: dict[str, str], stack_images: set[str], latest: str) -> None:
        self.build_args = build_args
        self.allowed = {normalize(ref) for ref in stack_images}
        self.latest = latest
        self.global_args: dict[str, str] = {}
        self.plain_args: set[str] = set()
        self.stage_names: set[str] = set()  # of stages before the current one
        self.stage_index = -1
        self.current_name: str | None = None
        self.images: list[str] = []

    # -- references -------------------------------------------------------------------------
    def _use_stack(self, ref: str) -> bool:
        if normalize(ref) in self.allowed:
            if normalize(ref) not in self.images:
                self.images.append(normalize(ref))
            return True
        return False

    def _resolve_from(self, lineno: int, token: str) -> str:
        """FROM's image with the global ARGs substituted (the parser's substitution), accepted only
        for a literal reference or one whole `$NAME` / `${NAME}` whose value is plain."""
        if _PLAIN.fullmatch(token):
            return token
        m = _ONE_VAR.fullmatch(token)
        name = m and (m.group(1) or m.group(2))
        if not name or name not in self.plain_args:
            raise _refuse(lineno, f"FROM {token}: cannot be resolved (use a literal image or ${{ARG}})")
        value = WordSplitter(token, args=self.global_args).dequote()
        if not _PLAIN.fullmatch(value):
            raise _refuse(lineno, f"FROM {token}: cannot be resolved (it expands to {value!r})")
        return value

    def _check_source(self, lineno: int, what: str, ref: str) -> None:
        """`COPY --from` / `RUN --mount from=`: an earlier stage (name or index) or a stack image."""
        if _PLAIN.fullmatch(ref):
            if ref.lower() in self.stage_names or self._use_stack(ref):
                return
            if ref.isascii() and ref.isdigit() and int(ref) < self.stage_index:
                return
        raise _refuse(
            lineno, f"{what}={ref}: may only name an earlier stage or the stack image ({self.latest})"
        )

    # -- instructions -----------------------------------------------------------------------
    def arg(self, lineno: int, value: str) -> None:
        """Global ARGs (before the first FROM) feed FROM; a build arg wins only if declared."""
        plain = not any(c in value for c in _SPECIAL)
        for word in value.split():
            name, eq, default = word.partition("=")
            self.global_args[name] = self.build_args.get(name, default if eq else "")
            if plain and self.global_args[name]:
                self.plain_args.add(name)
            else:
                self.plain_args.discard(name)

    def from_(self, lineno: int, value: str) -> None:
        _, rest = _split_flags(lineno, value)
        words = rest.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise _refuse(lineno, "FROM takes an image and an optional `AS name`")
        if self.current_name:
            self.stage_names.add(self.current_name)
        self.stage_index += 1
        self.current_name = words[2].lower() if len(words) == 3 else None
        image = self._resolve_from(lineno, words[0])
        if image.lower() == "scratch" or image.lower() in self.stage_names:
            return
        if not self._use_stack(image):
            raise _refuse(
                lineno, f"FROM {image}: may only name the stack image ({self.latest}) or an earlier stage"
            )

    def instruction(self, lineno: int, name: str, value: str, onbuild: bool = False) -> None:
        if name not in INSTRUCTIONS:
            raise _refuse(lineno, f"unknown instruction {name}")
        if onbuild and name in NOT_IN_ONBUILD:
            raise _refuse(lineno, f"ONBUILD {name} is not allowed")
        if self.stage_index < 0 and name not in ("ARG", "FROM"):
            raise _refuse(lineno, f"{name} before the first FROM")
        if name == "ARG" and self.stage_index < 0:
            return self.arg(lineno, value)
        if name == "FROM":
            return self.from_(lineno, value)
        if name == "ONBUILD":
            m = _INSTRUCTION_WORD.match(value)
            if not m:
                raise _refuse(lineno, "ONBUILD needs an instruction")
            return self.instruction(lineno, m.group(1).upper(), value[m.end() :], onbuild=True)
        flags, rest = _split_flags(lineno, value)
        prefix = "ONBUILD " if onbuild else ""
        if name in ("RUN", "COPY", "ADD") and any(_HEREDOC.match(word) for word in rest.split()):
            # dockerd 20.10 reads the body as instructions, newer ones as data: the two disagree.
            raise _refuse(lineno, f"{prefix}{name}: heredocs (<<EOF) are not supported")
        for ref in flags.get("from", []):
            self._check_source(lineno, f"{prefix}{name} --from", ref)
        if name == "RUN":
            for mount in flags.get("mount", []):
                for row in csv.reader(io.StringIO(mount)):
                    for item in row:
                        key, _, ref = item.partition("=")
                        if key.strip().lower() == "from":
                            self._check_source(lineno, f"{prefix}RUN --mount from", ref)
        if name == "ADD":
            self.add(lineno, prefix, rest)

    def add(self, lineno: int, prefix: str, rest: str) -> None:
        """ADD takes local files only: with quotes and escapes removed, neither an argument nor the
        whole line may look like a URL (a superset of what dockerd would fetch), and none may use a
        variable or a JSON escape."""
        for arg in [*_args(rest), rest]:
            if "$" in arg or "\\u" in arg:
                raise _refuse(lineno, f"{prefix}ADD {arg}: variables and escapes are not allowed in ADD")
            bare = "".join(c for c in arg if c not in _SPECIAL).lower()
            if any(mark in bare for mark in _URL_MARKS) or bare.startswith(("http:", "https:", "ftp:")):
                raise _refuse(
                    lineno,
                    f"{prefix}ADD {arg}: URLs are refused (dockerd would fetch it from this server's "
                    "network); download it in a RUN step, or COPY a file from the repository",
                )


def check(text: str, build_args: dict[str, str], stack_images: set[str], latest: str) -> Checked:
    """Parse and check a Dockerfile; raise BuildFailed (one line, naming the line) if refused.

    `stack_images` are the references a build may read (the stack images and their aliases);
    `latest` is the one to suggest in errors.
    """
    _check_characters(text)
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    lines = parser.lines
    structure = parser.structure
    _check_coverage(lines, structure)
    checker = _Checker(build_args, stack_images, latest)
    for item in structure:
        if item["instruction"] == "COMMENT":
            continue
        lineno = item["startline"] + 1
        m = _INSTRUCTION_WORD.match(item["content"])
        if not m:
            raise _refuse(lineno, f"unknown instruction {item['instruction']}")
        checker.instruction(lineno, m.group(1).upper(), item["value"])
    if checker.stage_index < 0:
        raise BuildFailed("Dockerfile: no FROM instruction")
    return Checked(images=checker.images)
