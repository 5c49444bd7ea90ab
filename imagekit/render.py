"""Validated image specs → Dockerfiles (Jinja2, StrictUndefined), byte-identical for equal inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from .errors import ConfigurationError
from .matrix import ImageSpec, Matrix

TEMPLATE = "Dockerfile.j2"


def static_labels(image: ImageSpec) -> dict[str, str]:
    """Labels fixed by the matrix cell. Labels that depend on the host or time (revision, created,
    the content id itself) are added at build time so they do not change the content id."""
    return {
        "org.opencontainers.image.title": image.repository.rsplit("/", 1)[-1],
        "org.opencontainers.image.version": image.id,
        "io.imagekit.image-id": image.id,
        "io.imagekit.flavor": image.flavor,
        "io.imagekit.torch": image.torch,
        "io.imagekit.torchaudio": image.torchaudio,
        "io.imagekit.python": image.python,
        "io.imagekit.cuda": image.cuda,
        "io.imagekit.wheel": image.wheel,
        "io.imagekit.wheel-cuda": image.wheel_cuda,
        "io.imagekit.driver-min": image.driver_min,
    }


@dataclass(frozen=True)
class Rendered:
    image: ImageSpec
    # Everything sent as the build context, by relative path; the Dockerfile is one of them.
    context: dict[str, bytes]

    @property
    def dockerfile(self) -> str:
        return self.context["Dockerfile"].decode()

    def write(self, out_dir: Path) -> Path:
        """Write the context to ``out_dir/<image id>/``, replacing what an earlier render left."""
        target = out_dir / self.image.id
        target.mkdir(parents=True, exist_ok=True)
        for stale in target.iterdir():
            if stale.is_file() and stale.name not in self.context:
                stale.unlink()
        for name, data in self.context.items():
            (target / name).write_bytes(data)
        return target


class Renderer:
    def __init__(self, matrix: Matrix) -> None:
        if not (matrix.templates_dir / TEMPLATE).is_file():
            raise ConfigurationError(
                f"template {matrix.templates_dir / TEMPLATE} not found",
                tip="set `templates:` in the matrix to the folder holding Dockerfile.j2 (relative to the matrix file)",
            )
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(matrix.templates_dir),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # noqa: S701 - Dockerfiles, not HTML
        )

    def render(self, image: ImageSpec) -> Rendered:
        try:
            text = self._env.get_template(TEMPLATE).render(image=image, labels=static_labels(image))
        except jinja2.TemplateError as exc:
            where = f"{exc.filename}:{exc.lineno}" if isinstance(exc, jinja2.TemplateSyntaxError) else TEMPLATE
            raise ConfigurationError(f"{where}: cannot render {image.id}: {exc.message}") from None
        return Rendered(image=image, context={"Dockerfile": text.encode()})
