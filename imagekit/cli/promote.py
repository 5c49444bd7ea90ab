"""`imagekit promote`: copy each staged digest that every required runner class passed to the release
repository, immutable tag first, without moving a layer; refuse the others, naming what is missing."""

from __future__ import annotations

import json

from imagekit import console
from imagekit.adapters.cosign import key_reference
from imagekit.adapters.registry import split_reference
from imagekit.cli import common
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, append_summary, conclude, load, registry, staged_images
from imagekit.core.evidence import RunnerClass
from imagekit.errors import ConfigurationError
from imagekit.files import write_atomic
from imagekit.reports import ReportsDir
from imagekit.stages.evidence import Evidence
from imagekit.stages.promote import Promoter, promote_images
from imagekit.stages.publish import Retry

HELP = "tag staged digests for release once every required runner class passed them; no layer moves"
OPTIONS = (o.MATRIX, o.ONLY, o.REPORTS, o.STAGED, o.REGISTRY, o.DRY_RUN, o.RETRIES, o.KEY)


def run(args: Args, use: Adapters) -> int:
    matrix = load(args)
    images = matrix.select(args.only)
    folder = ReportsDir(args.reports)
    staged = staged_images(matrix, images, args.staged or folder.staged)
    release = args.registry or matrix.registry
    if not release:
        raise ConfigurationError(
            "no release registry to promote to", tip="set `registry: host[:port]/path` in the matrix or an overlay, or pass --registry"
        )
    host, _ = split_reference(release)
    client = registry(use, host)
    # The site's public key (--key), else the public half of IMAGEKIT_SIGNING_KEY: evidence checked.
    checker = common.signer(use, None, key_reference(args.key, "--key", public=True) if args.key else None)
    if checker is None:
        console.warn("not checking signatures: no --key and no IMAGEKIT_SIGNING_KEY; promotion rests on the recorded test results alone")
    try:
        promoter = Promoter(
            client, release, matrix.ci.require, Evidence(lambda _host: client, RunnerClass("promote")), dry_run=args.dry_run,
            retry=Retry(attempts=args.retries + 1), signer=checker,
        )  # fmt: skip
        console.info(f"{'plan: ' if args.dry_run else ''}promoting {len(images)} image(s) to {release}")
        outcomes = promote_images(images, staged, promoter)
    finally:
        client.close()
        if checker is not None:
            checker.close()
    # What it cost on the wire: manifests and result records, never a layer.
    console.info(f"registry traffic: {client.moved} bytes sent and received")
    if not args.dry_run:
        write_atomic(folder.published, json.dumps([x.record() for x in outcomes if x.state.ok], indent=2) + "\n")
        lines = ["", "## promoted", "", "| image | result | tested on | reference |", "| --- | --- | --- | --- |"]
        for x in outcomes:
            classes = ", ".join(
                f"{t['class']} ({', '.join(t['gpus']) or 'no GPU'}{', driver ' + str(t['driver']) if t['driver'] else ''})"
                for t in x.tested_on
            )  # type: ignore[arg-type]
            lines.append(f"| `{x.image_id}` | {x.state} | {classes or '–'} | {x.message} |")
        append_summary(folder, "\n".join(lines) + "\n")
    return conclude(
        "promote summary",
        ["detail"],
        [(x.image_id, x.state, [x.message]) for x in outcomes],
        failed="were not promoted",
        tip="each one's reason is in the table above: test the staged digest on the classes named (`imagekit test --staged`), then promote again",
    )
