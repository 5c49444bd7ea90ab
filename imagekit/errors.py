"""One exception hierarchy; the CLI turns it into a message and an exit code in one place."""

from __future__ import annotations


class ImagekitError(Exception):
    """Base of every error the CLI reports without a traceback.

    ``return_code`` follows the CLI contract: 2 for bad input, 1 for a build or test that failed.
    """

    return_code = 1

    def __init__(self, message: str, *, tip: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip


class ConfigurationError(ImagekitError):
    """The user's input (matrix files, flags, environment) cannot be used."""

    return_code = 2


class MatrixError(ConfigurationError):
    """One or more problems in matrix files, each located at file:line."""

    def __init__(self, problems: list[str], *, subject: str = "the matrix", tip: str | None = None) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(
            f"{subject} has {len(problems)} {noun}:\n" + "\n".join(f"  {p}" for p in problems),
            tip=tip
            or 'fix each field at the file and line named (an overlay\'s own line when an overlay set it); README "Security" lists what each field accepts',
        )


class EngineError(ImagekitError):
    """The Docker engine or CLI cannot do what is needed on this host."""

    return_code = 2


class RegistryError(ImagekitError):
    """A registry refused or failed a request or a push. ``transient`` ones are worth retrying
    (5xx, connection refused or reset); others (denied, not found) are not."""

    def __init__(self, message: str, *, transient: bool, tip: str | None = None) -> None:
        super().__init__(message, tip=tip)
        self.transient = transient


class SigningError(ImagekitError):
    """cosign could not sign, or what a registry holds for a digest did not verify."""


class RunFailed(ImagekitError):
    """Some images failed to build or test; the others were still processed."""

    return_code = 1
