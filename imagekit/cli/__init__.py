"""The `imagekit` command: one module per command, each declaring the options it takes
(`options.py`) and a `run(args, use)` that raises; ``use`` is the adapters it hands its stages
(`common.Adapters`). `main` is the one place errors become messages and exit codes: 0 success, 1 a
build or test failed, 2 bad input or an unusable host."""

from __future__ import annotations

import argparse
import signal
import sys
from types import ModuleType
from typing import Any

from imagekit import console
from imagekit.cli import build, check, diff, doctor, layers, lock, manifest, matrix, promote, publish, render, smoke, stage, test, verify
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args
from imagekit.errors import ConfigurationError, ImagekitError

COMMANDS: dict[str, ModuleType] = {
    "matrix": matrix, "render": render, "lock": lock, "build": build, "stage": stage, "test": test, "smoke": smoke,
    "publish": publish, "promote": promote, "check": check, "verify": verify, "manifest": manifest, "diff": diff, "layers": layers, "doctor": doctor,
}  # fmt: skip


def _takes() -> dict[str, tuple[o.Option, ...]]:
    """Command (`matrix list` for sub-actions) → the options it takes."""
    found = {name: module.OPTIONS for name, module in COMMANDS.items() if hasattr(module, "OPTIONS")}
    found |= {f"matrix {action}": options for action, (_, options) in matrix.ACTIONS.items()}
    return found


class _Parser(argparse.ArgumentParser):
    # No abbreviations: with each command taking its own options, `--re` would mean --reports to
    # one command and nothing to the next.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigurationError(message, tip=f"see `{self.prog} --help`")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="imagekit", description="Build reproducible PyTorch GPU images from matrix.yaml and prove they work.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, module in COMMANDS.items():
        command = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        if name == "matrix":
            actions = command.add_subparsers(dest="action", required=True, parser_class=_Parser)
            for action, (help_text, options) in matrix.ACTIONS.items():
                o.add(actions.add_parser(action, help=help_text), options)
            continue
        o.add(command, module.OPTIONS)
        if hasattr(module, "arguments"):
            module.arguments(command)
    return p


def _options_of(given: argparse.Namespace) -> tuple[o.Option, ...]:
    if given.command == "matrix":
        return matrix.ACTIONS[given.action][1]
    return COMMANDS[given.command].OPTIONS


def main_inner(argv: list[str] | None = None, adapters: Adapters | None = None) -> int:
    given, extra = parser().parse_known_args(argv)
    command = given.command + (f" {given.action}" if given.command == "matrix" else "")
    if extra:
        found = next((r for flag in extra if flag.startswith("--") and (r := o.refused(flag, command, _takes()))), None)
        if found:
            raise ConfigurationError(found[0], tip=found[1])
        raise ConfigurationError(f"unrecognized arguments: {' '.join(extra)}", tip=f"see `imagekit {command} --help`")
    args = Args({**vars(given), **o.resolve(given, _options_of(given))})
    return COMMANDS[given.command].run(args, adapters or Adapters())


def _terminate(signum: int, frame: object) -> None:
    # CI cancellation sends SIGTERM: unwind like Ctrl-C so containers are removed.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, adapters: Adapters | None = None) -> int:
    """``adapters``: the outside world (tests hand in fakes); the real one when None."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return main_inner(argv, adapters)
    except ImagekitError as exc:
        console.error(exc.message, exc.tip)
        return exc.return_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
