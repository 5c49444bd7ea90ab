"""The `imagekit` command. `main_inner` raises; `main` is the one place errors become messages and
exit codes: 0 success, 1 a build or test failed, 2 bad input or an unusable host."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from imagekit import console, reports
from imagekit.adapters.buildkit import find_builder
from imagekit.adapters.docker_engine import Engine
from imagekit.adapters.git import collect
from imagekit.adapters.secrets import pip_secrets
from imagekit.core import cells as github_cells
from imagekit.core import lock as lock_mod
from imagekit.core import manifest as package_manifest
from imagekit.core.matrix import Matrix, check_registry, load_matrix
from imagekit.core.render import Rendered, Renderer, expectations, variant_drivers, write_all
from imagekit.errors import ConfigurationError, ImagekitError, RunFailed
from imagekit.stages import reproducibility
from imagekit.stages.build import BuildRun, build_images
from imagekit.stages.doctor import run_checks
from imagekit.stages.inspect import read_manifest
from imagekit.stages.publish import Publisher, Retry, publish_images
from imagekit.stages.relock import relock
from imagekit.stages.test import SmokeOptions, SmokeOutcome, resolve_gpus, smoke_host, smoke_images
from imagekit.stages.verify import verify_one

DEFAULT_MATRIX = Path("matrix.yaml")
_GPUS = re.compile(r"all|none|auto|device=[0-9]{1,3}(,[0-9]{1,3}){0,63}")


def _gpus(value: str) -> str:
    if not _GPUS.fullmatch(value):
        raise argparse.ArgumentTypeError("expected all, none, auto or device=0,1")
    return value


def _positive(value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,7}", value) or int(value) < 1:
        raise argparse.ArgumentTypeError("expected a whole number from 1 to 9999999")
    return int(value)


def _memory(value: str) -> str:
    if not re.fullmatch(r"[0-9]{1,15}[bkmgBKMG]?", value):
        raise argparse.ArgumentTypeError("expected a size such as 16g, 512m or a number of bytes")
    return value


def _cpus(value: str) -> float:
    cpus = float(value) if re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,3})?", value) else 0.0
    if not 0.01 <= cpus <= 4096:
        raise argparse.ArgumentTypeError("expected a number of CPUs from 0.01 to 4096, e.g. 4 or 1.5")
    return cpus


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigurationError(message, tip=f"see `{self.prog} --help`")


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--matrix",
        action="append",
        type=Path,
        metavar="FILE",
        help="matrix file; repeat to deep-merge overlays over it in order (default: $IMAGEKIT_MATRIX, space-separated, else matrix.yaml)",
    )
    common.add_argument(
        "--only",
        action="append",
        metavar="GLOB",
        help="select images by id glob, e.g. '*cu121*' (repeatable; default: $IMAGEKIT_ONLY, space-separated)",
    )
    common.add_argument(
        "--lock", type=Path, metavar="FILE", help="lock file (default: $IMAGEKIT_LOCK, else the last --matrix file with a .lock suffix)"
    )
    outputs = argparse.ArgumentParser(add_help=False)
    outputs.add_argument("--reports", type=Path, default=Path("reports"), help="reports folder (default: reports)")
    render_out = argparse.ArgumentParser(add_help=False)
    render_out.add_argument("--out", type=Path, default=Path("build"), help="where rendered build contexts go (default: build)")

    p = _Parser(prog="imagekit", description="Build reproducible PyTorch GPU images from matrix.yaml and prove they work.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    m = sub.add_parser("matrix", help="validate or list the matrix").add_subparsers(dest="action", required=True, parser_class=_Parser)
    m.add_parser("validate", parents=[common], help="check the matrix files; exit 2 with file:line errors")
    ls = m.add_parser("list", parents=[common], help="list the images the matrix defines")
    ls.add_argument(
        "--format", choices=["table", "json", "github"], default="table", help="github: job cells for a workflow's strategy.matrix"
    )
    ls.add_argument("--changed-against", type=Path, metavar="FILE",
                    help="github: mark cells whose inputs differ from this earlier listing (a pull request's base) as changed")  # fmt: skip
    ls.add_argument("--changed-only", action="store_true", help="github: list only the changed cells")

    sub.add_parser("render", parents=[common, render_out], help="write each image's Dockerfile and build context")

    lk = sub.add_parser("lock", parents=[common], help="pin base digests and hashed requirement sets into the lock file")
    lk.add_argument("--check", action="store_true", help="change nothing; exit 1 when the lock is missing or stale")
    lk.add_argument("--upgrade", action="store_true", help="re-resolve current entries too (default: keep them as locked)")

    # build, test and publish accept the same options, so `nox -s build test publish -- ARGS` can
    # hand one set to all three; each command uses the ones that concern it.
    # What the smoke suite run takes, in an image (test) and on a host (smoke).
    suite_opts = argparse.ArgumentParser(add_help=False)
    suite_opts.add_argument("--require-gpu", action="store_true", help="fail, rather than skip, GPU checks when no GPU is visible")
    suite_opts.add_argument("--timeout", type=_positive, default=1800, help="seconds per suite run before it is stopped (default: 1800)")
    run_opts = argparse.ArgumentParser(add_help=False, parents=[suite_opts])
    g = run_opts.add_argument_group("build")
    g.add_argument("--jobs", type=_positive, default=2, help="images built at once (default: 2)")
    g = run_opts.add_argument_group("test")
    g.add_argument("--gpus", type=_gpus, default="auto", help="all, none, auto (default: GPUs if the host has them) or device=0,1")
    g.add_argument("--memory", type=_memory, help="memory limit for the test container, e.g. 16g")
    g.add_argument("--cpus", type=_cpus, help="CPU limit for the test container, e.g. 4")
    g = run_opts.add_argument_group("publish")
    g.add_argument("--registry", help="host[:port]/path to push to (default: the matrix's `registry:`)")
    g.add_argument("--dry-run", action="store_true", help="show exactly what would be pushed, push nothing")
    g.add_argument("--retries", type=int, choices=range(0, 11), default=3, metavar="N",
                   help="retries of a transient registry error, with doubling backoff from 2s (default: 3)")  # fmt: skip

    sub.add_parser("build", parents=[common, render_out, outputs, run_opts], help="build images with BuildKit (skips unchanged ones)")
    sub.add_parser("test", parents=[common, render_out, outputs, run_opts], help="run the smoke suite inside each built image")

    sub.add_parser("smoke", parents=[common, outputs, suite_opts], help="run the smoke suite on this host, without an image")

    sub.add_parser(
        "publish", parents=[common, render_out, outputs, run_opts], help="push tested images to the registry, immutable tag first"
    )

    vf = sub.add_parser(
        "verify", parents=[common, render_out, outputs], help="rebuild images without the build cache and compare their file trees"
    )
    vf.add_argument("images", nargs="+", metavar="IMAGE", help="image id or glob, e.g. 2.6.0-cu121-py3.11-runtime")

    mf = sub.add_parser("manifest", parents=[common], help="what is inside an image: pip and apt packages, CUDA libraries, sizes")
    mf.add_argument("image", metavar="IMAGE", help="a matrix image id (its tag), or any image reference (pulled when absent)")
    mf.add_argument("--format", choices=["table", "json"], default="table")
    df = sub.add_parser("diff", parents=[common], help="what changed between two images; exit 1 when they differ, like diff(1)")
    df.add_argument("old", metavar="A", help="a matrix image id, or any image reference (pulled when absent)")
    df.add_argument("new", metavar="B", help="the same, compared with A")
    df.add_argument("--format", choices=["table", "json"], default="table")

    sub.add_parser("doctor", parents=[common], help="what this host can build and run")
    return p


def _matrix(args: argparse.Namespace) -> Matrix:
    matrix = load_matrix(args.matrix or [DEFAULT_MATRIX])
    for note in matrix.notes:
        console.warn(note)
    return matrix


def _selected(args: argparse.Namespace, *, with_parents: bool = False, locked: bool = True) -> tuple[Matrix, list[Rendered]]:
    """The matrix and the rendered images `--only` selects (with the parents of selected
    extensions, when ``with_parents``), from a lock file that must be current for each of them
    (when ``locked``; `render` shows what it can without one)."""
    matrix = _matrix(args)
    images = matrix.select(args.only, with_parents=with_parents)
    path = _lock_path(args, matrix)
    lock = lock_mod.Lock.read(path) if locked or path.is_file() else None
    if locked and lock is not None:
        problems = lock.problems(images, matrix)
        if problems:
            raise ConfigurationError(
                "the lock does not match the matrix:\n  " + "\n  ".join(problems),
                tip=f"run `imagekit lock` with the same --matrix files (it rewrites {path}), then commit it",
            )
    renderer = Renderer(matrix, lock)
    return matrix, [renderer.render(i) for i in images]


def _engine() -> Engine:
    engine = Engine()
    engine.version()  # an unreachable engine is one clear error before any work, not a failure per image
    return engine


def cmd_matrix(args: argparse.Namespace) -> int:
    matrix = _matrix(args)
    images = matrix.select(args.only)
    if args.action == "validate":
        console.info(f"ok: {len(matrix.images)} images from {', '.join(map(str, matrix.files))}")
        return 0
    if args.format == "github":
        path = _lock_path(args, matrix)
        lock = lock_mod.Lock.read(path) if path.is_file() else None  # unlocked cells still list; their build refuses them
        previous = github_cells.read_previous(args.changed_against) if args.changed_against else None
        found = github_cells.cells(matrix, lock, matrix.select(args.only, with_parents=True), previous)
        console.print_json({"include": [c for c in found if c["changed"] or not args.changed_only]}, compact=True)
    elif args.format == "json":
        console.print_json([{**i.entry(), "tag": i.tag} for i in images])
    else:
        console.table(
            None,
            ["image", "base image (extensions: parent)", "cuda", "wheel", "driver >=", "tag"],
            [[i.id, i.base_image, i.cuda, i.wheel, i.driver_min, i.tag] for i in images],
        )
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    _, rendered = _selected(args, locked=False)
    for r, path in zip(rendered, write_all(rendered, args.out), strict=True):
        console.info(f"{r.image.id}: {path / 'Dockerfile'}")
    return 0


def _lock_path(args: argparse.Namespace, matrix: Matrix) -> Path:
    return args.lock or lock_mod.default_path(matrix)


def cmd_lock(args: argparse.Namespace) -> int:
    matrix = _matrix(args)
    path = _lock_path(args, matrix)
    images = matrix.select(args.only, with_parents=True)
    if args.check:
        lock = lock_mod.Lock.read(path)
        problems = lock.problems(images, matrix)
        problems += [f"{k} is in {path} but not in the matrix" for k in lock.strays(matrix) if not args.only]
        if problems:
            raise RunFailed(
                f"{path} is stale:\n  " + "\n  ".join(problems), tip=f"run `imagekit lock` with the same --matrix files and commit {path}"
            )
        console.info(f"ok: {path} is current for {len(images)} image(s)")
        return 0
    lock = lock_mod.Lock.read(path) if path.is_file() else lock_mod.Lock(path)
    for stray in lock.strays(matrix):
        del lock.images[stray]
    done = relock(lock, images, matrix, _engine(), upgrade=args.upgrade)
    failed = {i: what.removeprefix("failed: ") for i, what in done.items() if what.startswith("failed: ")}
    if failed:
        raise RunFailed(
            f"{len(failed)} of {len(images)} image(s) could not be locked; {path} is unchanged:\n  "
            + "\n  ".join(f"{i}: {m}" for i, m in failed.items()),
            tip="lock what this host can reach with --only, and the rest where their index and bases are reachable",
        )
    lock.write(matrix.files)
    console.table(
        f"lock: {path}",
        ["image", "result", "base", "packages"],
        [
            [i.id, done[i.id], lock.images[i.id].base or f"(parent {i.parent})", str(len(lock_mod.pins(lock.images[i.id].requirements)))]
            for i in images
        ],
    )
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    # An extension is built on its parent's current content, so the parent is built (or found
    # unchanged) first even when --only names the extension alone.
    matrix, rendered = _selected(args, with_parents=True)
    builder = find_builder()
    engine = _engine()
    repro = reproducibility.detect(builder, engine)
    console.info(f"building {len(rendered)} image(s) with {builder.describe(repro.method)}, {args.jobs} at a time")
    console.info(f"engine: {engine.describe_store()}; reproducibility on this builder: {repro.describe()}")
    outcomes = build_images(
        rendered,
        engine=engine,
        builder=builder,
        provenance=collect(matrix.files[0].parent, matrix.source),
        jobs=args.jobs,
        render_dir=args.out,
        reports_dir=args.reports,
        size_budgets=matrix.size_budgets,
        reproducibility=repro,
    )
    for o in outcomes:
        for line in o.details:
            console.info(f"{o.image.id}: {line}")
    console.table(
        "build summary",
        ["image", "result", "time", "size", "detail"],
        [[o.image.id, o.state, f"{o.seconds:.0f}s", package_manifest.human(o.size) if o.size else "–", o.message] for o in outcomes],
    )
    failed = [o.image.id for o in outcomes if o.state in ("failed", "blocked")]
    if failed:
        raise RunFailed(
            f"{len(failed)} of {len(outcomes)} image(s) failed to build: {', '.join(failed)}", tip=f"logs are in {args.reports / 'logs'}"
        )
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    matrix, rendered = _selected(args)
    _require_smoke(matrix)
    engine = _engine()
    options = SmokeOptions(
        gpus=resolve_gpus(args.gpus, engine),
        require_gpu=args.require_gpu,
        timeout=args.timeout,
        memory=args.memory,
        cpus=args.cpus,
        environment={"IMAGEKIT_VARIANT_DRIVERS": variant_drivers(matrix.images)},
    )
    console.info(f"testing {len(rendered)} image(s), GPUs: {options.gpus}")
    outcomes = smoke_images(
        rendered,
        engine=engine,
        options=options,
        smoke_dir=matrix.smoke_dir,
        reports_dir=args.reports,
        extension_tests=matrix.extension_tests,
    )
    return _report(outcomes, args.reports, args.reports / "junit" / "build.xml")


def cmd_smoke(args: argparse.Namespace) -> int:
    matrix = _matrix(args)
    _require_smoke(matrix)
    environment = {"IMAGEKIT_VARIANT_DRIVERS": variant_drivers(matrix.images)}
    if args.only:
        chosen = matrix.select(args.only)
        if len(chosen) != 1:
            raise ConfigurationError(
                f"--only selects {len(chosen)} images; on a host the suite checks one image's promises",
                tip="narrow --only to one image id, or leave it out to check the host alone",
            )
        environment |= expectations(chosen[0])
    console.info(f"running {matrix.smoke_dir} on this host with {sys.executable}")
    outcome = smoke_host(matrix.smoke_dir, args.reports, require_gpu=args.require_gpu, environment=environment, timeout=args.timeout)
    return _report([outcome], args.reports, None)


def cmd_publish(args: argparse.Namespace) -> int:
    matrix, rendered = _selected(args)
    registry = args.registry or matrix.registry
    if not registry:
        raise ConfigurationError(
            "no registry to publish to", tip="set `registry: host[:port]/path` in the matrix or an overlay, or pass --registry"
        )
    engine = _engine()
    publisher = Publisher(engine, registry, args.reports, dry_run=args.dry_run, retry=Retry(attempts=args.retries + 1))
    console.info(f"{'plan: ' if args.dry_run else ''}publishing {len(rendered)} image(s) to {registry}")
    outcomes = publish_images(rendered, publisher)
    console.table("publish summary", ["image", "result", "detail"], [[o.image_id, o.state, o.message] for o in outcomes])
    if not args.dry_run:
        done = [o.record() for o in outcomes if o.state in ("published", "unchanged")]
        reports.write_atomic(args.reports / "published.json", json.dumps(done, indent=2) + "\n")
        lines = ["", "## published", "", "| image | result | reference |", "| --- | --- | --- |"]
        lines += [f"| `{o.image_id}` | {o.state} | {o.message} |" for o in outcomes]
        _append_summary(args.reports, "\n".join(lines) + "\n")
    bad = [o.image_id for o in outcomes if o.state in ("refused", "failed")]
    if bad:
        raise RunFailed(f"{len(bad)} of {len(outcomes)} image(s) were not published: {', '.join(bad)}",
                        tip="each one's reason is in the table above; nothing of theirs is recorded as published")  # fmt: skip
    return 0


def _append_summary(reports_dir: Path, markdown: str) -> None:
    """Add to reports/summary.md and, in GitHub Actions, to the job summary."""
    path = reports_dir / "summary.md"
    previous = path.read_text() if path.is_file() else ""
    reports.write_atomic(path, previous + markdown)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
            fh.write(markdown)


def _require_smoke(matrix: Matrix) -> None:
    if not (matrix.smoke_dir / "conftest.py").is_file():
        raise ConfigurationError(
            f"smoke suite not found at {matrix.smoke_dir}", tip="set `smoke:` in the matrix (relative to the matrix file)"
        )


def _report(outcomes: list[SmokeOutcome], reports_dir: Path, build_report: Path | None) -> int:
    """Merged JUnit, summary.md (and the GitHub step summary), a table, and the exit code."""
    reports.merge(([build_report] if build_report else []) + [o.report for o in outcomes], reports_dir / "junit.xml")
    built = reports.build_states(build_report) if build_report else {}
    rows = [
        (o.image_id, built.get(o.image_id, "–"), reports.summarise(o.report) if o.state != "not built" else None, o.state) for o in outcomes
    ]
    (reports_dir / "summary.md").unlink(missing_ok=True)  # a test run starts the summary afresh
    _append_summary(reports_dir, reports.summary_markdown(rows))
    console.table(
        "test summary",
        ["image", "result", "passed", "failed", "skipped", "time"],
        [[o.image_id, o.state, *_counts(s), f"{o.seconds:.0f}s"] for o, (_, _, s, _) in zip(outcomes, rows, strict=True)],
    )
    console.info(f"reports: {reports_dir / 'junit.xml'}, {reports_dir / 'summary.md'}")
    bad = [o.image_id for o in outcomes if o.state != "passed"]
    if bad:
        raise RunFailed(
            f"{len(bad)} of {len(outcomes)} did not pass the smoke suite: {', '.join(bad)}",
            tip=f"see {reports_dir / 'summary.md'} and the logs in {reports_dir / 'logs'}",
        )
    return 0


def _counts(s: reports.SuiteSummary | None) -> list[str]:
    return [str(s.passed), str(s.failed), str(s.skipped)] if s else ["–"] * 3


def cmd_verify(args: argparse.Namespace) -> int:
    args.only = [*(args.only or []), *args.images]
    matrix, rendered = _selected(args)
    engine, builder = _engine(), find_builder()
    repro = reproducibility.detect(builder, engine)
    console.info(f"engine: {engine.describe_store()}; reproducibility on this builder: {repro.describe()}")
    provenance = collect(matrix.files[0].parent, matrix.source)
    run = BuildRun(engine, builder, provenance, args.out, args.reports / "logs", reproducibility=repro)
    outcomes = []
    with pip_secrets({r.image.index_url for r in rendered}) as secrets:
        for r in rendered:
            outcomes.append(verify_one(r, run, secrets[r.image.index_url], args.reports))
    for o in outcomes:
        for d in o.differences[:50]:
            console.info(f"{o.image_id}: {d.path}: {d.what}")
        if len(o.differences) > 50:
            console.info(f"{o.image_id}: … {len(o.differences) - 50} more in {args.reports / f'verify-{o.image_id}.json'}")
    console.table(
        "verify summary", ["image", "result", "time", "detail"], [[o.image_id, o.state, f"{o.seconds:.0f}s", o.message] for o in outcomes]
    )
    bad = [o.image_id for o in outcomes if o.state != "same"]
    if bad:
        raise RunFailed(f"{len(bad)} of {len(outcomes)} image(s) did not rebuild to the same content: {', '.join(bad)}",
                        tip=f"the differing paths are listed above and in {args.reports}/verify-<image>.json")  # fmt: skip
    return 0


def _image_ref(args: argparse.Namespace, engine: Engine, name: str) -> str:
    """A matrix image id names its moving tag; anything else is an image reference, pulled when absent."""
    if args.matrix or DEFAULT_MATRIX.is_file():
        matrix = _matrix(args)
        if any(i.id == name for i in matrix.images):
            name = matrix.image(name).tag
    engine.ensure(name)
    return name


def cmd_manifest(args: argparse.Namespace) -> int:
    engine = _engine()
    m = read_manifest(engine, _image_ref(args, engine, args.image))
    if args.format == "json":
        console.print_json(m.as_dict())
        return 0
    cuda = ", ".join(f"{n} {v}" for n, v in m.cuda_libraries.items()) or "none"
    console.info(f"{m.ref} ({m.image_id}): {package_manifest.human(m.size)}, Python {m.python}")
    console.info(
        f"CUDA: toolkit {m.cuda_toolkit or 'none (not a CUDA base)'}, torch built for {m.torch_cuda or 'no CUDA'}; libraries: {cuda}"
    )
    console.table(
        None,
        ["kind", "package", "version", "size"],
        [
            [p.kind, p.name, p.version, package_manifest.human(p.size)]
            for p in sorted(m.packages.values(), key=lambda p: (p.kind != "pip", p.name))
        ],
    )
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    engine = _engine()
    a = read_manifest(engine, _image_ref(args, engine, args.old))
    b = read_manifest(engine, _image_ref(args, engine, args.new))
    changes = package_manifest.diff(a, b)
    if args.format == "json":
        console.print_json({"a": a.ref, "b": b.ref, "changes": [asdict(c) for c in changes]})
    elif not changes:
        console.info(f"{a.ref} and {b.ref} hold the same packages, versions and sizes")
    else:
        console.info(f"from {a.ref} to {b.ref}: {sum(c.what in ('pip', 'apt') for c in changes)} package change(s)")
        for change in changes:
            console.result(package_manifest.change_line(change))
    return 1 if changes else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    matrix = _matrix(args) if (args.matrix or DEFAULT_MATRIX.is_file()) else None
    images = matrix.select(args.only) if matrix else []
    checks = run_checks(images, Engine(), matrix.ci if matrix else None)
    mark = {True: "ok", False: "FAIL", None: "--"}
    for check in checks:
        console.info(f"{mark[check.ok]:>4}  {check.name}: {check.detail}")
        if check.tip:
            console.info(f"      -> {check.tip}")
    return 1 if any(c.ok is False for c in checks) else 0


COMMANDS = {
    "matrix": cmd_matrix, "render": cmd_render, "lock": cmd_lock, "build": cmd_build, "test": cmd_test, "smoke": cmd_smoke,
    "publish": cmd_publish, "verify": cmd_verify, "manifest": cmd_manifest, "diff": cmd_diff, "doctor": cmd_doctor,
}  # fmt: skip


# Defaults from the environment for options left out, so a workflow sets them once per job and
# every step is a plain `imagekit build`, `imagekit test`… (README "GitHub Actions").
ENVIRONMENT_DEFAULTS = {"matrix": "IMAGEKIT_MATRIX", "only": "IMAGEKIT_ONLY", "lock": "IMAGEKIT_LOCK"}


def _environment_defaults(args: argparse.Namespace) -> None:
    for option, variable in ENVIRONMENT_DEFAULTS.items():
        value = os.environ.get(variable, "").strip()
        if not value or getattr(args, option, "absent") not in (None, []):
            continue
        words = value.split()
        if option == "lock":
            args.lock = Path(value)
        else:
            setattr(args, option, [Path(w) for w in words] if option == "matrix" else words)


def _check_flags(args: argparse.Namespace) -> None:
    """Flags are input too: folders that must be folders, a registry in the matrix's grammar."""
    for option in ("out", "reports"):
        path = getattr(args, option, None)
        if path is not None and path.exists() and not path.is_dir():
            raise ConfigurationError(f"--{option} {path} is a file, not a folder", tip=f"name a folder for --{option}; nothing was written")
        if path is not None and path.is_symlink():
            # A checkout may carry a symlink where the default folder goes: writes would land elsewhere.
            raise ConfigurationError(f"--{option} {path} is a symlink", tip=f"name a real folder for --{option}; nothing was written")
    if getattr(args, "registry", None):
        try:
            check_registry(args.registry)
        except ValueError as exc:
            raise ConfigurationError(
                f"--registry {exc}", tip="pass host[:port]/path, e.g. 127.0.0.1:5000/ml; log in with `docker login`"
            ) from None


def main_inner(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _environment_defaults(args)
    _check_flags(args)
    return COMMANDS[args.command](args)


def _terminate(signum: int, frame: object) -> None:
    # CI cancellation sends SIGTERM: unwind like Ctrl-C so containers are removed.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return main_inner(argv)
    except ImagekitError as exc:
        console.error(exc.message, exc.tip)
        return exc.return_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
