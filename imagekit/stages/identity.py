"""A rendered image bound to its content id on one engine: the lock's base checked against what the
engine holds (build, test, verify and publish all start here)."""

from __future__ import annotations

from imagekit.adapters.docker_engine import BASE_TIP
from imagekit.core.identity import Identity, identify
from imagekit.core.render import Rendered
from imagekit.errors import ConfigurationError, EngineError
from imagekit.stages.ports import ImageStore


def resolve_identity(engine: ImageStore, rendered: Rendered, *, pull: bool) -> Identity | None:
    """Bind a rendered image to its content id on this engine; None when its base is absent. An
    extension's base is its parent's exact content, the image id behind the parent's content tag:
    None until the parent is built."""
    if rendered.parent is None:
        base_ref = locked_base(engine, rendered.image.base_image, rendered.base_lock, pull=pull)
        return identify(rendered, base_ref) if base_ref else None
    parent = resolve_identity(engine, rendered.parent, pull=pull)
    attrs = engine.inspect_image(parent.content_tag) if parent else None
    return identify(rendered, attrs["Id"], parent) if attrs else None


def locked_base(engine: ImageStore, ref: str, locked: str | None, *, pull: bool) -> str | None:
    """The base pinned in the lock (``name@sha256:…`` or a local image id), once it is on this
    engine (pulled by digest when ``pull``); None when absent. A local base whose tag now names
    another image is an error: it is not the base that was locked."""
    if locked is None:
        raise ConfigurationError(f"{ref} has no pin in the lock file", tip="run `imagekit lock`")
    if "@" not in locked:
        attrs = engine.inspect_image(ref)
        if attrs is not None and attrs["Id"] != locked:
            raise EngineError(
                f"the local base {ref} is image {attrs['Id'][:19]}, but the lock pins {locked[:19]}",
                tip="a local base is made per host: run `imagekit lock` to pin this host's (or restore the locked one)",
            )
        return locked if attrs is not None else None
    if engine.inspect_image(locked) is None:
        if not pull:
            return None
        engine.ensure(locked, what="base image", tip=BASE_TIP)
    return locked
