"""`imagekit build`: build images with BuildKit, skipping unchanged ones. Like `cargo build` and
`uv run`, it writes a missing lock file first (and says so); `--locked` (CI) refuses instead. A lock
that no longer matches the matrix is always refused: re-pinning is `imagekit lock`'s decision."""

from __future__ import annotations

from pathlib import Path

from imagekit import console
from imagekit.adapters.docker_engine import CONTAINERD
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, conclude, current_lock, engine, load, lock_path, rendered, require_compression, write_lock
from imagekit.core.lock import Lock
from imagekit.core.manifest import human
from imagekit.core.matrix import ImageSpec, Matrix
from imagekit.errors import ConfigurationError, EngineError
from imagekit.reports import ReportsDir
from imagekit.stages import reproducibility
from imagekit.stages.build import build_images

HELP = "build images with BuildKit (skips unchanged ones; writes a missing lock file unless --locked)"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.LOCKED, o.OUT, o.REPORTS, o.JOBS, o.CACHE_REGISTRY)


def run(args: Args, use: Adapters) -> int:
    matrix = load(args)
    # An extension is built on its parent's current content, so the parent is built (or found
    # unchanged) first even when --only names the extension alone.
    images = matrix.select(args.only, with_parents=True)
    path = lock_path(args, matrix)
    ensure_locked(use, matrix, images, path, locked=args.locked)
    lock = current_lock(matrix, images, path)
    found = rendered(matrix, images, lock)
    builder, docker, runner = use.builder(use.probe), engine(use), use.runner()
    repro = reproducibility.detect(builder, docker, runner)
    require_compression(found, repro)
    console.info(f"building {len(found)} image(s) with {builder.describe(repro.method)}, {args.jobs} at a time")
    console.info(f"engine: {docker.describe_store()}; reproducibility on this builder: {repro.describe()}")
    export = docker.store == CONTAINERD
    if args.cache_registry:
        if builder.kind != "buildx":
            raise EngineError(
                f"--cache-registry: this builder ({builder.describe(repro.method)}) reads no registry cache",
                tip="leave --cache-registry out here (IMAGEKIT_CACHE_REGISTRY too), or install the buildx plugin",
            )
        how = "read and written" if export else "read only (the classic store's builder cannot export a cache; the containerd store's can)"
        console.info(f"build cache: {args.cache_registry}, {how}")
    reports = ReportsDir(args.reports)
    outcomes = build_images(
        found,
        engine=docker,
        builder=builder,
        runner=runner,
        provenance=use.provenance(matrix.files[0].parent, matrix.source),
        jobs=args.jobs,
        render_dir=args.out,
        reports=reports,
        size_budgets=matrix.size_budgets,
        reproducibility=repro,
        cache_registry=args.cache_registry,
        cache_export=export,
    )
    for outcome in outcomes:
        for line in outcome.details:
            console.info(f"{outcome.image.id}: {line}")
    return conclude(
        "build summary",
        ["time", "size", "detail"],
        [(x.image.id, x.state, [f"{x.seconds:.0f}s", human(x.size) if x.size else "–", x.message]) for x in outcomes],
        failed="failed to build",
        tip=f"logs are in {reports.logs}",
    )


def ensure_locked(use: Adapters, matrix: Matrix, images: list[ImageSpec], path: Path, *, locked: bool) -> None:
    """Lock what the lock file lacks (all of it when there is none), keeping every current entry;
    with ``locked``, refuse instead. A stale entry is never re-pinned here: that is refused later,
    with the remedy, before anything is written."""
    lock = Lock.read(path) if path.is_file() else None
    absent = [i for i in images if lock is None or i.id not in lock.images]
    if not absent:
        return
    what = f"no lock file {path}" if lock is None else f"{path} lacks {', '.join(i.id for i in absent)}"
    if locked:
        raise ConfigurationError(
            f"{what}, and --locked refuses to lock on this host",
            tip="run `imagekit lock` with the same --matrix files where the bases and the index are reachable, and commit it",
        )
    if lock is not None:
        current_lock(matrix, [i for i in images if i not in absent], path)  # stale entries: refused, nothing written
    console.info(f"{what}: locking {len(absent)} image(s) first (`imagekit lock` does this alone)")
    write_lock(use, matrix, images, path, upgrade=False, title=f"wrote {path} (commit it)")
