"""`imagekit check REF... --key PUB`: verify each image's evidence in its registry, as a cluster's
admission policy would: a signature by the site's key on that very digest, a signed CycloneDX SBOM
naming its content, and a signed smoke-test pass for that content. Prints what it found; exit 1 when
anything is missing or does not verify, 2 on bad input."""

from __future__ import annotations

import argparse
import json

from imagekit import console
from imagekit.adapters.cosign import key_reference
from imagekit.adapters.registry import split_image_reference
from imagekit.cli import common
from imagekit.cli import options as o
from imagekit.cli.common import Adapters, Args, conclude
from imagekit.core import grammar
from imagekit.core.evidence import printable as text
from imagekit.errors import ConfigurationError, ImagekitError, RunFailed
from imagekit.outcomes import Attested
from imagekit.stages.ports import Signer
from imagekit.stages.signing import Checked, check

HELP = "verify images' signatures, SBOM and test attestations in their registry"
OPTIONS = (o.KEY, o.REQUIRE_CLASS, o.FORMAT)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "refs", metavar="REF", nargs="+", help="host[:port]/path/repository:tag or …@sha256:… (a tag is resolved once, to its digest)"
    )


def run(args: Args, use: Adapters) -> int:
    if not args.key:
        raise ConfigurationError(
            "check needs the public key that verifies the signatures", tip="pass --key cosign.pub (or set IMAGEKIT_VERIFY_KEY)"
        )
    for ref in args.refs:
        if len(ref) > grammar.NAME_MAX + 200 or not grammar.full(grammar.IMAGE_REF, ref):
            raise ConfigurationError(
                f"{text(ref, 80)!r} is not an image reference", tip="e.g. registry.example:5000/ml/pytorch:2.6.0-cu121-py3.11-runtime"
            )
        try:
            split_image_reference(ref)  # a registry host is required: evidence lives in a registry
        except ImagekitError as exc:
            raise ConfigurationError(
                f"{text(ref, 80)!r}: {exc.message}", tip="name the image with its registry host, e.g. 127.0.0.1:5000/ml/pytorch:tag"
            ) from None
    public = key_reference(args.key, "--key", public=True)
    # A host named on a command line gets `docker login`'s credentials, never the CI's publishing secrets.
    signer = common.signer(use, None, public, environment_credentials=False)
    assert signer is not None
    found: list[Checked] = []
    try:
        for ref in args.refs:
            found.append(_one(use, signer, ref, tuple(args.require_class)))
    finally:
        signer.close()
    tip = "each one's problems are listed above; publish or promote again with IMAGEKIT_SIGNING_KEY set to attach what is missing"
    if args.format == "json":  # the JSON alone on stdout, for a script to read
        console.print_json([{"reference": c.reference, "verified": c.ok, "found": c.lines()} for c in found])
        bad = [ref for ref, c in zip(args.refs, found, strict=True) if not c.ok]
        if bad:
            raise RunFailed(f"{len(bad)} of {len(found)} image(s) have evidence that does not verify: {', '.join(bad)}", tip=tip)
        return 0
    for c in found:
        console.result(f"{c.reference}:\n  " + "\n  ".join(c.lines()))
    return conclude(
        "check summary",
        ["reference"],
        [(ref, Attested.VERIFIED if c.ok else Attested.NOT_VERIFIED, [c.reference]) for ref, c in zip(args.refs, found, strict=True)],
        failed="have evidence that does not verify",
        tip=tip,
    )


def _one(use: Adapters, signer: Signer, ref: str, required: tuple[str, ...]) -> Checked:
    host, path, reference = split_image_reference(ref)
    registry = common.registry(use, host, environment_credentials=False)
    try:
        # The manifest held to its bytes (raw_manifest hashes them), and a digest asked for must be
        # the digest served: a registry cannot answer for one digest with another image's evidence.
        manifest = registry.raw_manifest(path, reference)
        if manifest is None:
            return Checked(f"{host}/{path}@?", problems=(f"{host}/{path} has no {text(reference, 80)}",))
        if reference.startswith("sha256:") and manifest.digest != reference:
            return Checked(f"{host}/{path}@{reference}", problems=(f"the registry served {manifest.digest[:19]} for {reference[:19]}",))
        config_digest = (manifest.json().get("config") or {}).get("digest")
        if not (isinstance(config_digest, str) and grammar.full(grammar.DIGEST, config_digest)):
            return Checked(f"{host}/{path}@{manifest.digest}", problems=("not a single image manifest: imagekit pushes one per image",))
        config = json.loads(registry.blob(path, config_digest))  # held to its digest
    except (ImagekitError, ValueError, RecursionError) as exc:
        return Checked(f"{host}/{path}@?", problems=(exc.message if isinstance(exc, ImagekitError) else "the image config is not JSON",))
    finally:
        registry.close()
    inner = config.get("config") if isinstance(config, dict) else None
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    content_id = labels.get("io.imagekit.content-id") if isinstance(labels, dict) else None
    digest_ref = f"{host}/{path}@{manifest.digest}"
    if not (isinstance(content_id, str) and grammar.full(grammar.HEX64, content_id)):
        return Checked(digest_ref, problems=("the image carries no io.imagekit.content-id label: imagekit did not build it",))
    return check(signer, digest_ref, content_id, required)
