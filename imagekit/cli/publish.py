"""`imagekit publish`: push tested images to the registry, immutable tag first, digests read back.
`imagekit stage` (cli/stage.py) pushes through the same steps, untested, to the staging repository."""

from __future__ import annotations

import json

from imagekit import console
from imagekit.adapters.registry import split_reference
from imagekit.cli import common
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, append_summary, conclude, current_lock, engine, load, lock_path, registry, rendered
from imagekit.core.matrix import Matrix
from imagekit.errors import ConfigurationError
from imagekit.files import write_atomic
from imagekit.reports import ReportsDir
from imagekit.stages.publish import Publisher, PublishOutcome, Retry, publish_images
from imagekit.stages.signing import Signing

HELP = "push tested images to the registry, immutable tag first"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.REPORTS, o.REGISTRY, o.DRY_RUN, o.RETRIES)


def run(args: Args, use: Adapters) -> int:
    outcomes, folder = push(args, use, target=args.registry, staging=False)
    if not args.dry_run:
        done = [x.record() for x in outcomes if x.state.ok]
        write_atomic(folder.published, json.dumps(done, indent=2) + "\n")
    return summarise(outcomes, folder, "published", dry_run=args.dry_run)


def push(args: Args, use: Adapters, *, target: str | None, staging: bool) -> tuple[list[PublishOutcome], ReportsDir]:
    """The selected images pushed to ``target`` (else the matrix's registry, or its `ci.staging` when
    ``staging``), each outcome in the matrix's order."""
    matrix = load(args)
    images = matrix.select(args.only)
    lock = current_lock(matrix, images, lock_path(args, matrix))
    found = rendered(matrix, images, lock)
    target = target or _default_target(matrix, staging)
    folder = ReportsDir(args.reports)
    host, _ = split_reference(target)
    docker = engine(use)
    dry_run = getattr(args, "dry_run", False)
    signing = None if dry_run else common.signer(use, docker)
    publisher = Publisher(
        docker,
        registry(use, host, docker),
        use.registry_auth(host),
        target,
        folder,
        dry_run=dry_run,
        retry=Retry(attempts=args.retries + 1),
        staging=staging,
        signing=Signing(signing, lock, docker, common.local_runner(use, docker)) if signing else None,
    )
    console.info(f"{'plan: ' if dry_run else ''}{'staging' if staging else 'publishing'} {len(found)} image(s) to {target}"
                 + ("" if signing is None else ", signing each digest (IMAGEKIT_SIGNING_KEY)"))  # fmt: skip
    if signing is None and not dry_run:
        console.warn("not signing: IMAGEKIT_SIGNING_KEY is not set, so the pushed digests carry no signature, SBOM or test attestation")
    try:
        return publish_images(found, publisher), folder
    finally:
        if signing is not None:
            signing.close()


def _default_target(matrix: Matrix, staging: bool) -> str:
    if staging:
        if not matrix.ci.staging:
            raise ConfigurationError(
                "no staging repository to push to",
                tip="set `ci: {staging: host[:port]/path}` in the matrix or an overlay, or pass --staging",
            )
        return matrix.ci.staging
    if not matrix.registry:
        raise ConfigurationError(
            "no registry to publish to", tip="set `registry: host[:port]/path` in the matrix or an overlay, or pass --registry"
        )
    return matrix.registry


def summarise(outcomes: list[PublishOutcome], folder: ReportsDir, done: str, *, dry_run: bool) -> int:
    if not dry_run:
        lines = ["", f"## {done}", "", "| image | result | reference |", "| --- | --- | --- |"]
        lines += [f"| `{x.image_id}` | {x.state} | {x.message} |" for x in outcomes]
        append_summary(folder, "\n".join(lines) + "\n")
    return conclude(
        f"{'stage' if done == 'staged' else 'publish'} summary",
        ["detail"],
        [(x.image_id, x.state, [x.message]) for x in outcomes],
        failed=f"were not {done}",
        tip=f"each one's reason is in the table above; nothing of theirs is recorded as {done}",
    )
