"""Strict patterns for everything a user names. Every front end goes through these."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from dulwich.refs import check_ref_format

from paas.errors import PaasError

APP_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")  # a DNS label (Dokku's tests use 43 characters)
RESERVED_APP_NAMES = frozenset({"paas", "www", "api", "admin", "default", "help", "root"})
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
CONFIG_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PROCESS_TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,29}$")
BRANCHES_THAT_DEPLOY = ("main", "master")
MAX_BRANCH_BYTES = 240  # a loose ref is a file: its name must fit the file system's 255 bytes


def app_name(name: str) -> str:
    """Return the app name if valid: it becomes a hostname label, a path and a docker label."""
    if not isinstance(name, str) or not APP_NAME_RE.fullmatch(name) or name.endswith("-"):
        raise PaasError(
            f"invalid app name {name!r}: use 1-63 lowercase letters, digits and dashes, "
            "starting with a letter"
        )
    if name in RESERVED_APP_NAMES:
        raise PaasError(f"app name {name!r} is reserved")
    return name


def branch_name(ref: bytes) -> str:
    """The branch of a pushed `refs/heads/<branch>`, if git itself could have made it (`git
    check-ref-format`: no `..`, no spaces or control characters, no `.lock` ...), UTF-8 and at
    most MAX_BRANCH_BYTES long; a one-line refusal otherwise."""
    shown = printable(ref.decode("utf-8", "replace"))[:80]
    if not ref.startswith(b"refs/heads/"):
        raise PaasError(f"only branches can be pushed, not {shown!r}")
    raw = ref.removeprefix(b"refs/heads/")
    if not check_ref_format(ref) or not raw:
        raise PaasError(
            f"invalid branch name {shown.removeprefix('refs/heads/')!r}: see git check-ref-format"
        )
    try:
        branch = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PaasError(f"invalid branch name {shown.removeprefix('refs/heads/')!r}: not UTF-8") from None
    if len(raw) > MAX_BRANCH_BYTES:
        raise PaasError(f"branch name too long ({len(raw)} bytes, at most {MAX_BRANCH_BYTES})")
    if not branch.isprintable():
        raise PaasError(f"invalid branch name {printable(branch)[:80]!r}: it holds control characters")
    return branch


def key_name(name: str) -> str:
    if not KEY_NAME_RE.fullmatch(name or ""):
        raise PaasError(f"invalid key name {name!r}: use letters, digits, '.', '_', '@' or '-' (max 64)")
    return name


def user_name(name: str) -> str:
    """Dashboard user names follow the SSH key names' pattern (they share the events' actor column)."""
    if not isinstance(name, str) or not KEY_NAME_RE.fullmatch(name):
        raise PaasError(f"invalid user name {name!r}: use letters, digits, '.', '_', '@' or '-' (max 64)")
    return name


def config_key(key: str) -> str:
    if not CONFIG_KEY_RE.fullmatch(key or ""):
        raise PaasError(f"invalid config key {key!r}: must match [A-Za-z_][A-Za-z0-9_]*")
    return key


def process_type(name: str) -> str:
    if not PROCESS_TYPE_RE.fullmatch(name or ""):
        raise PaasError(f"invalid process type {name!r}: use lowercase letters, digits, '_', '-'")
    return name


DOMAIN_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_SCALE = 100
MAX_CONFIG_BYTES = 64 * 1024


def domain(name: str) -> str:
    """A hostname made of RFC 1123 labels, lowercased; `*.` is allowed as a prefix only."""
    host = (name or "").strip().lower().rstrip(".")
    labels = host.split(".")
    wildcard = labels[0] == "*"
    check = labels[1:] if wildcard else labels
    if (
        not host
        or len(host) > 253
        or len(check) < 1
        or (wildcard and len(check) < 2)
        or not all(DOMAIN_LABEL_RE.fullmatch(label) for label in check)
    ):
        raise PaasError(f"invalid domain {name!r}: use a hostname like www.example.com or *.example.com")
    return host


def scale(value: str | int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise PaasError(f"invalid count {value!r}: use a number from 0 to {MAX_SCALE}") from None
    if not 0 <= n <= MAX_SCALE or str(value).strip() != str(n):
        raise PaasError(f"invalid count {value!r}: use a number from 0 to {MAX_SCALE}")
    return n


def config_size(config: dict[str, str]) -> None:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in config.items())
    if size > MAX_CONFIG_BYTES:
        raise PaasError(f"config too large: {size} bytes, the limit is {MAX_CONFIG_BYTES} bytes per app")


def config_value(key: str, value: str) -> str:
    if "\x00" in value:
        raise PaasError(f"config value of {key} contains a NUL byte, which environments cannot hold")
    return value


URL_PATH_RE = re.compile(r"^/[\x21-\x7e]{0,1023}$")


def url_path(path: str) -> bool:
    """A URL path we may send in a request line: starts with /, printable ASCII, no spaces."""
    return isinstance(path, str) and bool(URL_PATH_RE.fullmatch(path)) and "\\" not in path


def printable(text: str) -> str:
    """Text with control characters shown as escapes, safe to print on a terminal or page."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def terminal_safe(text: str) -> str:
    """Like `printable`, but keeps tabs: a line of app output or a stored name made safe for a
    terminal (no ESC sequences that set a clipboard, move the cursor or forge other lines)."""
    return "\t".join(printable(part) for part in str(text).split("\t"))


def terminal_text(text: str) -> str:
    """`terminal_safe` for text of many lines: line breaks stay, every other control character
    (a CR that overwrites a line, ESC, BEL, C1 codes) is shown as an escape."""
    return "\n".join(terminal_safe(line) for line in str(text).split("\n"))


def site_path(target: str | None) -> bool:
    """Whether `target` is a path on this site, safe as a redirect target after login.

    Browsers drop tabs and line breaks inside URLs and read a backslash as a slash, so
    `/\\t/evil.com` or `/\\\\evil.com` become `//evil.com` (another host). Refuse any control
    character, whitespace or backslash, in the text and once percent-decoded, then anything
    urlsplit reads a scheme or host from."""
    if not isinstance(target, str) or not 1 <= len(target) <= 2048:
        return False
    for text in (target, unquote(target)):
        if any(not c.isprintable() or c.isspace() or c == "\\" for c in text):
            return False
        if not text.startswith("/") or text.startswith("//"):
            return False
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return False
    return True


LOGIN_NAME_MAX = 64


def login_name(name: object) -> str | None:
    """A name typed on the login form if it could name a user (else None): only such names are
    ever stored (failed-login counts, events) or looked up."""
    if isinstance(name, str) and KEY_NAME_RE.fullmatch(name):
        return name
    return None
