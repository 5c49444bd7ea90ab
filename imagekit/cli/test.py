"""`imagekit test`: run the smoke suite inside each built image; JUnit and a summary under reports/."""

from __future__ import annotations

from imagekit import console, reports
from imagekit.cli import options as o
from imagekit.cli.common import (
    Adapters,
    Args,
    append_summary,
    conclude,
    current_lock,
    engine,
    load,
    local_runner,
    lock_path,
    registry,
    rendered,
    require_smoke,
    signer,
    staged_images,
)  # fmt: skip
from imagekit.core.matrix import ImageSpec, Matrix
from imagekit.core.render import variant_drivers
from imagekit.errors import ConfigurationError
from imagekit.outcomes import Tested
from imagekit.reports import ReportsDir
from imagekit.stages.evidence import Evidence, StagedRun, smoke_staged
from imagekit.stages.ports import Engine, RegistryClient
from imagekit.stages.test import SmokeOptions, SmokeOutcome, resolve_gpus, smoke_images

HELP = "run the smoke suite inside each built image"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.REPORTS, o.GPUS, o.REQUIRE_GPU, o.TIMEOUT, o.MEMORY, o.CPUS, o.STAGED, o.RUNNER_CLASS, o.RERUN)


def run(args: Args, use: Adapters) -> int:
    matrix = load(args)
    images = matrix.select(args.only)
    require_smoke(matrix)
    if args.staged is None and (args.runner_class or args.rerun):
        raise ConfigurationError(
            "--runner-class and --rerun concern staged images", tip="add --staged reports/staged.json (what `imagekit stage` wrote)"
        )
    # A staged image is tested by its digest: no lock, build context or base needed on this runner.
    found = [] if args.staged else rendered(matrix, images, current_lock(matrix, images, lock_path(args, matrix)))
    docker = engine(use)
    options = SmokeOptions(
        gpus=resolve_gpus(args.gpus, docker, use.probe),
        require_gpu=args.require_gpu,
        timeout=args.timeout,
        memory=args.memory,
        cpus=args.cpus,
        environment={"IMAGEKIT_VARIANT_DRIVERS": variant_drivers(matrix.images)},
    )
    folder = ReportsDir(args.reports)
    if args.staged is not None:
        return report(_staged(args, use, matrix, images, docker, options, folder), folder, with_builds=False)
    console.info(f"testing {len(found)} image(s), GPUs: {options.gpus}")
    outcomes = smoke_images(
        found, engine=docker, options=options, smoke_dir=matrix.smoke_dir, reports=folder, extension_tests=matrix.extension_tests
    )
    return report(outcomes, folder, with_builds=True)


def _staged(
    args: Args, use: Adapters, matrix: Matrix, images: list[ImageSpec], docker: Engine, options: SmokeOptions, folder: ReportsDir
) -> list[SmokeOutcome]:
    if not args.runner_class:
        raise ConfigurationError(
            "--staged needs --runner-class: results are recorded per runner class",
            tip=f"name this runner's class of ci.classes: {', '.join(matrix.ci.classes) or '(none declared)'}",
        )
    if args.runner_class not in matrix.ci.classes:
        raise ConfigurationError(
            f"--runner-class {args.runner_class} is no class of the matrix's ci.classes ({', '.join(matrix.ci.classes) or 'none declared'})",
            tip="declare it under ci.classes, with the runner labels of its test jobs",
        )
    staged = staged_images(matrix, images, args.staged)
    runner = local_runner(use, docker, args.runner_class)
    clients: dict[str, RegistryClient] = {}

    def client(host_name: str) -> RegistryClient:
        if host_name not in clients:
            clients[host_name] = registry(use, host_name, docker)
        return clients[host_name]

    console.info(f"testing {len(images)} staged image(s) on {runner.describe()}, GPUs: {options.gpus}")
    signing = signer(use, docker)
    try:
        run = StagedRun(
            docker,
            use.registry_auth,
            Evidence(client, runner),
            options,
            matrix.smoke_dir,
            folder,
            matrix.extension_tests,
            args.rerun,
            signing,
        )
        return smoke_staged([i.id for i in images], staged, run)
    finally:
        for c in clients.values():
            c.close()
        if signing is not None:
            signing.close()


def report(outcomes: list[SmokeOutcome], folder: ReportsDir, *, with_builds: bool) -> int:
    """Merged JUnit, summary.md (and the GitHub step summary), a table, and the exit code. Shared
    with `imagekit smoke`, whose one run has no build report beside it."""
    build_report = folder.build_junit if with_builds else None
    reports.merge(([build_report] if build_report else []) + [x.report for x in outcomes], folder.merged_junit)
    built = reports.build_states(build_report) if build_report else {}
    summaries = {
        x.image_id: reports.summarise(x.report) if x.state not in (Tested.NOT_BUILT, Tested.NOT_STAGED) else None for x in outcomes
    }
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
