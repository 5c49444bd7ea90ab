"""`imagekit test`: run the smoke suite inside each built image; JUnit and a summary under reports/."""

from __future__ import annotations

from imagekit import console, reports
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, append_summary, conclude, current_lock, engine, load, lock_path, rendered, require_smoke
from imagekit.core.render import variant_drivers
from imagekit.outcomes import Tested
from imagekit.reports import ReportsDir
from imagekit.stages.test import SmokeOptions, SmokeOutcome, resolve_gpus, smoke_images

HELP = "run the smoke suite inside each built image"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.REPORTS, o.GPUS, o.REQUIRE_GPU, o.TIMEOUT, o.MEMORY, o.CPUS)


def run(args: Args, use: Adapters) -> int:
    matrix = load(args)
    images = matrix.select(args.only)
    found = rendered(matrix, images, current_lock(matrix, images, lock_path(args, matrix)))
    require_smoke(matrix)
    docker = engine(use)
    options = SmokeOptions(
        gpus=resolve_gpus(args.gpus, docker, use.probe),
        require_gpu=args.require_gpu,
        timeout=args.timeout,
        memory=args.memory,
        cpus=args.cpus,
        environment={"IMAGEKIT_VARIANT_DRIVERS": variant_drivers(matrix.images)},
    )
    console.info(f"testing {len(found)} image(s), GPUs: {options.gpus}")
    folder = ReportsDir(args.reports)
    outcomes = smoke_images(
        found, engine=docker, options=options, smoke_dir=matrix.smoke_dir, reports=folder, extension_tests=matrix.extension_tests
    )
    return report(outcomes, folder, with_builds=True)


def report(outcomes: list[SmokeOutcome], folder: ReportsDir, *, with_builds: bool) -> int:
    """Merged JUnit, summary.md (and the GitHub step summary), a table, and the exit code. Shared
    with `imagekit smoke`, whose one run has no build report beside it."""
    build_report = folder.build_junit if with_builds else None
    reports.merge(([build_report] if build_report else []) + [x.report for x in outcomes], folder.merged_junit)
    built = reports.build_states(build_report) if build_report else {}
    summaries = {x.image_id: reports.summarise(x.report) if x.state is not Tested.NOT_BUILT else None for x in outcomes}
    rows = [(x.image_id, str(built.get(x.image_id, "–")), summaries[x.image_id], str(x.state)) for x in outcomes]
    folder.summary.unlink(missing_ok=True)  # a test run starts the summary afresh
    append_summary(folder, reports.summary_markdown(rows))
    console.info(f"reports: {folder.merged_junit}, {folder.summary}")
    return conclude(
        "test summary",
        ["passed", "failed", "skipped", "time"],
        [(x.image_id, x.state, [*_counts(summaries[x.image_id]), f"{x.seconds:.0f}s"]) for x in outcomes],
        failed="did not pass the smoke suite",
        tip=f"see {folder.summary} and the logs in {folder.logs}",
    )


def _counts(s: reports.SuiteSummary | None) -> list[str]:
    return [str(s.passed), str(s.failed), str(s.skipped)] if s else ["–"] * 3
