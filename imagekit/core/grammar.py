"""The grammar of every string that reaches a Dockerfile, a shell word, a file name or a tag.

Matrix files, overlays and lock files come from other teams' pull requests, so each value is held
to the grammar of the place it lands, with full-match patterns (``re.fullmatch``: a ``$`` would
let a trailing newline through) over character classes that hold no whitespace, and length
limits that keep every rendered line, path and tag within what Docker, BuildKit and the file
system take. Pure: patterns and checks, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

# Docker's reference grammar (distribution/reference): a tag is at most 128 characters, a
# repository name at most 255 (with its registry host).
TAG_MAX = 128
NAME_MAX = 255

_DOMAIN_PART = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]{{1,5}})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
HEX64 = re.compile(r"[0-9a-f]{64}")

# repository: an optional registry host (with a dot, a port, or `localhost`, as Docker tells a
# host from a path), then lowercase path components.
REPOSITORY = re.compile(rf"(?:{_DOMAIN}/)?{_PATH}")
# A registry to publish to: a host (with a dot or a port, or localhost) and an optional path.
REGISTRY = re.compile(rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})+(?::[0-9]{{1,5}})?|{_DOMAIN_PART}:[0-9]{{1,5}}|localhost)(?:/{_PATH})?")
# An image reference as FROM takes it: name, optional :tag, optional @digest.
IMAGE_REF = re.compile(rf"(?P<name>(?:{_DOMAIN}/)?{_PATH})(?::{_TAG})?(?:@sha256:[0-9a-f]{{64}})?")
TAG = re.compile(_TAG)

# Variant and extension names become part of image ids, tags and folder names.
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")
# POSIX portable user names as Debian's useradd takes them (NAME_REGEX), at most 32 characters.
USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# PEP 508 name, optional extras, `==`, and a PEP 440 version in its normal form.
_PEP440 = r"(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?(?:\+[a-z0-9]+(?:\.[a-z0-9]+)*)?"
_PROJECT = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?"
PIN = re.compile(rf"{_PROJECT}(?:\[{_PROJECT}(?:,{_PROJECT})*\])?=={_PEP440}")
# Debian policy 5.6.1 and 5.6.12: a package name; a version [epoch:]upstream[-revision] whose
# upstream starts with a digit and whose revision, when there is a hyphen, is not empty.
DEB_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]{1,99}")
DEB_VERSION = re.compile(r"(?:[0-9]{1,9}:)?[0-9][A-Za-z0-9.+~]*(?:-[A-Za-z0-9.+~]+)*")


def deb_package(value: str, *, pinned: bool) -> bool:
    """``name`` or ``name=version`` in Debian's grammar; ``pinned``: the version is required."""
    name, sep, version = value.partition("=")
    return full(DEB_NAME, name) and (full(DEB_VERSION, version) if sep else not pinned)


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
ENV_VALUE_MAX = 4096
CUDA = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
DRIVER = re.compile(r"[0-9]{1,4}(?:\.[0-9]{1,4}){0,2}")
OS = re.compile(r"[a-z][a-z0-9.]{0,31}")
RUNNER_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# The driver label is a runner label with `{branch}` where the driver's major version goes; it
# is filled by plain replacement, never str.format (whose format specs can ask for a huge width).
DRIVER_LABEL = re.compile(r"[A-Za-z0-9._-]{0,90}\{branch\}[A-Za-z0-9._-]{0,90}")
# A layer of the plan names a file of the build context (requirements-<name>.txt).
LAYER_NAME = re.compile(r"[a-z][a-z0-9-]{0,23}")
# Globs over normalised pip project names (PEP 503: lowercase, runs of -_. as one -).
PACKAGE_GLOB = re.compile(r"[a-z0-9*?\[][a-z0-9*?\[\]!-]{0,99}")
# Globs over image ids (`parent`, size budget keys, --only).
GLOB = re.compile(r"[A-Za-z0-9._*?!\[\]-]{1,200}")
# `${VAR}` or `${VAR:-default}`: index URLs name credentials by variable, never literally. Only
# variables meant for an index may be named (IMAGEKIT_INDEX_*, or PIP_INDEX_URL for a whole URL):
# a matrix that could name any variable could send the CI's other secrets to a host it picks.
_VAR = re.compile(r"\$\{(?P<var>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
INDEX_VARIABLE = re.compile(r"IMAGEKIT_INDEX_[A-Z0-9_]{1,64}")
WHOLE_URL_VARIABLE = "PIP_INDEX_URL"
URL_MAX = 2048


def full(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.fullmatch(value) is not None


def printable(value: str) -> bool:
    """No control characters and no line or paragraph separators: one line as every tool sees it."""
    return not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value)


def printable_part(value: str) -> str:
    """``value`` with every character `printable` refuses dropped: text from elsewhere, shown."""
    return "".join(c for c in value if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))


def redact(url: str) -> str:
    """``url`` with any user:password@ replaced, for messages about it."""
    return re.sub(r"//[^/@\s]*@", "//***@", url)


def url_problem(value: str, *, variables: bool) -> str | None:
    """Why ``value`` is not an http(s) URL without literal credentials, or None. ``variables``:
    the whole URL may be `${PIP_INDEX_URL}` or `${IMAGEKIT_INDEX_…}` (with an optional literal
    `:-default` URL), and its user and password may be `${IMAGEKIT_INDEX_…}` variables; nothing
    else may come from the environment. Never repeats the value: it may hold a password."""
    if len(value) > URL_MAX:
        return f"is longer than {URL_MAX} characters"
    if not printable(value) or any(c.isspace() or c in "\"'`\\<>^|" for c in value):
        return "must be one URL without spaces, quotes or control characters"
    names = [m.group("var") for m in _VAR.finditer(value)]
    if not variables and ("{" in value or "}" in value):
        return "must be a plain URL, without ${…} or braces"
    if any(not (full(INDEX_VARIABLE, n) or n == WHOLE_URL_VARIABLE) for n in names):
        return (
            "may name only IMAGEKIT_INDEX_* variables (and PIP_INDEX_URL for the whole URL), so it cannot send "
            "another secret of the environment to the host it names"
        )
    whole = _VAR.fullmatch(value)
    if whole:
        default = whole.group("default")
        return None if default is None else url_problem(default, variables=False)
    scheme, sep, rest = value.partition("://")
    netloc, _, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if "{" in scheme + host + path or "}" in scheme + host + path or WHOLE_URL_VARIABLE in names or not sep:
        return "must be a URL, or ${PIP_INDEX_URL:-https://…}; variables may stand only for the user and password"
    if at:
        user, _, password = userinfo.partition(":")
        # A user name may be written out (`__token__`); a password, or a token standing alone as
        # the user, only as a variable without a default.
        literal_password = _VAR.sub("", password)
        if literal_password or (not password and "${" not in user) or any(m.group("default") is not None for m in _VAR.finditer(userinfo)):
            return "holds literal credentials; keep them in the environment: write https://${IMAGEKIT_INDEX_USER}:${IMAGEKIT_INDEX_TOKEN}@host/simple"
        if "{" in _VAR.sub("", userinfo) or "}" in _VAR.sub("", userinfo):
            return "must be a URL; variables may stand only for the user and password"
    try:
        parts = urlsplit(f"{scheme}://{host}/{path}")
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL"
    return None
