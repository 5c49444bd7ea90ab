"""What a stage says about one image, as closed sets of states. Each state's text is what tables,
reports and the job summary show; ``ok`` says whether it lets the run exit 0."""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    ok: bool

    def __new__(cls, text: str, ok: bool) -> State:
        member = str.__new__(cls, text)
        member._value_ = text
        member.ok = ok
        return member

    def __str__(self) -> str:
        return self.value


class Built(State):
    BUILT = "built", True
    UNCHANGED = "unchanged", True  # its content tag already existed
    FAILED = "failed", False
    BLOCKED = "blocked", False  # its parent failed, so it was not tried


class Tested(State):
    PASSED = "passed", True
    FAILED = "failed", False  # a check failed
    ERROR = "error", False  # the suite could not run to the end (crash, timeout, no report)
    NOT_BUILT = "not built", False
    NOT_STAGED = "not staged", False  # `test --staged`: the staged record has no entry for it
    PASSED_BEFORE = "passed before", True  # this runner class's recorded pass for the same digest (memoized)


class Promoted(State):
    PROMOTED = "promoted", True
    UNCHANGED = "unchanged", True  # the release tags already named this digest
    PLANNED = "would promote", True  # a dry run's verdict
    REFUSED = "refused", False  # a required runner class has no pass for the digest, or a parent is missing
    FAILED = "failed", False


class Verified(State):
    SAME = "same", True
    DIFFERENT = "different", False
    FAILED = "failed", False


class Published(State):
    PUBLISHED = "published", True
    UNCHANGED = "unchanged", True  # already in the registry with this content
    PLANNED = "would publish", True  # a dry run's verdict
    REFUSED = "refused", False  # the gate said no (untested, changed, parent missing)
    FAILED = "failed", False


class Attested(State):
    """`imagekit check`: whether a digest's signature, SBOM and passing smoke test all verified."""

    VERIFIED = "verified", True
    NOT_VERIFIED = "not verified", False


class Relocked(State):
    KEPT = "kept", True
    INPUTS_RECORDED = "kept, inputs recorded", True
    REPINNED = "re-pinned local base", True
    RESOLVED = "resolved", True
    FAILED = "failed", False


class Finding(State):
    """One of `imagekit doctor`'s checks; its text is the mark the line starts with."""

    OK = "ok", True
    FAIL = "FAIL", False
    INFO = "--", True  # informational: e.g. no GPU on a CPU-only host is not a failure
