"""`imagekit stage`: push built images, untested, to the staging repository under their immutable
content tags, and record their digests in reports/staged.json: what test jobs on each runner class
pull (`imagekit test --staged`) and `imagekit promote` copies to the release repository."""

from __future__ import annotations

from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, staged_record
from imagekit.cli.publish import push, summarise
from imagekit.core.evidence import StagedImage, write_staged
from imagekit.files import write_atomic
from imagekit.reports import ReportsDir

HELP = "push built images to the staging repository by content tag; write reports/staged.json"
OPTIONS = (o.MATRIX, o.ONLY, o.LOCK, o.REPORTS, o.STAGING, o.RETRIES)


def run(args: Args, use: Adapters) -> int:
    # Kept: images staged by an earlier run into the same folder (another cell, another --only);
    # read before pushing, so a bad file stops the run before anything is pushed.
    folder = ReportsDir(args.reports)
    staged = staged_record(folder.staged) if folder.staged.is_file() else {}
    outcomes, folder = push(args, use, target=args.staging, staging=True)
    for x in outcomes:
        if x.state.ok:
            staged[x.image_id] = StagedImage(x.image_id, x.content_id, x.reference, x.parent)
    if staged:
        write_atomic(folder.staged, write_staged(staged))
    return summarise(outcomes, folder, "staged", dry_run=False)
