"""`imagekit stage`: push built images, untested, to the staging repository under their immutable
content tags, and record their digests in reports/staged.json: what test jobs on each runner class
pull (`imagekit test --staged`) and `imagekit promote` copies to the release repository."""

from __future__ import annotations

from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args
from imagekit.cli.publish import push, summarise
from imagekit.core.evidence import StagedImage, read_staged, write_staged
from imagekit.files import write_atomic

HELP = "push built images to the staging repository by content tag; write reports/staged.json"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.REPORTS, o.STAGING, o.RETRIES)


def run(args: Args, use: Adapters) -> int:
    outcomes, folder = push(args, use, target=args.staging, staging=True)
    # Kept: images staged by an earlier run into the same folder (another cell, another --only).
    staged = read_staged(folder.staged.read_text(encoding="utf-8"), str(folder.staged)) if folder.staged.is_file() else {}
    for x in outcomes:
        if x.state.ok:
            staged[x.image_id] = StagedImage(x.image_id, x.content_id, x.reference, x.parent)
    if staged:
        write_atomic(folder.staged, write_staged(staged))
    return summarise(outcomes, folder, "staged", dry_run=False)
