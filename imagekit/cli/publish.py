"""`imagekit publish`: push tested images to the registry, immutable tag first, digests read back."""

from __future__ import annotations

import json

from imagekit import console
from imagekit.adapters.registry import split_reference
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, append_summary, conclude, current_lock, engine, load, lock_path, rendered
from imagekit.errors import ConfigurationError
from imagekit.files import write_atomic
from imagekit.reports import ReportsDir
from imagekit.stages.publish import Publisher, Retry, publish_images

HELP = "push tested images to the registry, immutable tag first"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.REPORTS, o.REGISTRY, o.DRY_RUN, o.RETRIES)


def run(args: Args, use: Adapters) -> int:
    matrix = load(args)
    images = matrix.select(args.only)
    found = rendered(matrix, images, current_lock(matrix, images, lock_path(args, matrix)))
    registry = args.registry or matrix.registry
    if not registry:
        raise ConfigurationError(
            "no registry to publish to", tip="set `registry: host[:port]/path` in the matrix or an overlay, or pass --registry"
        )
    folder = ReportsDir(args.reports)
    host, _ = split_reference(registry)
    publisher = Publisher(
        engine(use),
        use.registry(host),
        use.registry_auth(host),
        registry,
        folder,
        dry_run=args.dry_run,
        retry=Retry(attempts=args.retries + 1),
    )
    console.info(f"{'plan: ' if args.dry_run else ''}publishing {len(found)} image(s) to {registry}")
    outcomes = publish_images(found, publisher)
    if not args.dry_run:
        done = [x.record() for x in outcomes if x.state.ok]
        write_atomic(folder.published, json.dumps(done, indent=2) + "\n")
        lines = ["", "## published", "", "| image | result | reference |", "| --- | --- | --- |"]
        lines += [f"| `{x.image_id}` | {x.state} | {x.message} |" for x in outcomes]
        append_summary(folder, "\n".join(lines) + "\n")
    return conclude(
        "publish summary",
        ["detail"],
        [(x.image_id, x.state, [x.message]) for x in outcomes],
        failed="were not published",
        tip="each one's reason is in the table above; nothing of theirs is recorded as published",
    )
