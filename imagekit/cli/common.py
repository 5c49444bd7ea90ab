"""What several commands share: the adapters they hand their stages, the matrix and lock they read,
and the one way a run ends (a table per run, then exit 1 when anything in it failed)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagekit import console
from imagekit.adapters import cosign, docker_engine, git, host
from imagekit.adapters.buildkit import OCI, ZSTD_TIP, Builder, BuildProcesses, find_builder
from imagekit.adapters.registry import CERTS_D, Registry, auth_config, insecure
from imagekit.cli.options import DEFAULT_MATRIX
from imagekit.core import lock as lock_mod
from imagekit.core.evidence import RunnerClass, StagedImage, read_staged
from imagekit.core.lock import pins
from imagekit.core.matrix import ImageSpec, Matrix, load_matrix
from imagekit.core.provenance import Provenance
from imagekit.core.render import Rendered, Renderer
from imagekit.errors import ConfigurationError, EngineError, RunFailed
from imagekit.files import write_atomic
from imagekit.outcomes import State
from imagekit.reports import ReportsDir
from imagekit.stages import reproducibility
from imagekit.stages.ports import BuildRunner, Engine, HostRunner, RegistryClient, Signer
from imagekit.stages.relock import Resolvers, update_lock


@dataclass(frozen=True)
class Adapters:
    """The outside world as commands reach it, each part made when a command first needs it:
    `main` uses the real adapters, a unit test hands `main(argv, adapters)` fakes instead."""

    engine: Callable[[], Engine] = docker_engine.Engine  # not yet connected
    builder: Callable[[host.Probe], Builder] = find_builder
    runner: Callable[[], BuildRunner] = BuildProcesses
    registry: Callable[..., RegistryClient] = Registry  # (host, environment_credentials=True, insecure=False)
    registry_auth: Callable[[str], dict[str, str] | None] = auth_config
    resolvers: Resolvers = field(default_factory=Resolvers)
    provenance: Callable[[Path, str | None], Provenance] = git.collect  # the matrix's folder, its `source`
    probe: host.Probe = host.run_probe  # host tools: nvidia-smi, the docker CLIs
    host_runner: HostRunner = host.run_logged  # `imagekit smoke`'s pytest on this host
    # cosign with the site's keys: (registry host → how to reach it, private key or None, public key or None)
    signer: Callable[[Callable[[str], cosign.RegistryAccess], cosign.SigningKey | None, str | None], Signer] = lambda access, key, public: (
        cosign.KeyedSigner(cosign.Cosign(access), key, public)
    )


class Args:
    """One run's options, read-only: a command computes what it needs instead of rewriting them."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"options are read-only ({name})")


def load(args: Args) -> Matrix:
    matrix = load_matrix(args.matrix or [DEFAULT_MATRIX])
    for note in matrix.notes:
        console.warn(note)
    return matrix


def lock_path(args: Args, matrix: Matrix) -> Path:
    return getattr(args, "lock", None) or lock_mod.default_path(matrix)


def rendered(matrix: Matrix, images: list[ImageSpec], lock: lock_mod.Lock | None) -> list[Rendered]:
    renderer = Renderer(matrix, lock)
    return [renderer.render(i) for i in images]


def current_lock(matrix: Matrix, images: list[ImageSpec], path: Path) -> lock_mod.Lock:
    """The lock file, refused when it does not match the matrix for ``images``."""
    if not path.is_file():
        raise ConfigurationError(
            f"no lock file {path}", tip="`imagekit build` writes it (or run `imagekit lock` with the same --matrix files); commit it"
        )
    lock = lock_mod.Lock.read(path)
    problems = lock.problems(images, matrix)
    if problems:
        raise ConfigurationError(
            "the lock does not match the matrix:\n  " + "\n  ".join(problems),
            tip=f"run `imagekit lock` with the same --matrix files (it rewrites {path}), then commit it",
        )
    return lock


def engine(use: Adapters) -> Engine:
    found = use.engine()
    found.version()  # an unreachable engine is one clear error before any work, not a failure per image
    return found


def registry(use: Adapters, host: str, docker: Engine | None = None, *, environment_credentials: bool = True) -> RegistryClient:
    """A client for ``host`` that speaks to it as this host's Docker does: HTTPS, or plain HTTP where
    the engine treats the registry as insecure. A command that needs no engine otherwise asks one if
    it answers, and goes by Docker's defaults (loopback insecure) if not."""
    return use.registry(host, environment_credentials=environment_credentials, insecure=insecure(host, _engine_info(use, docker)))


def _engine_info(use: Adapters, docker: Engine | None) -> dict[str, Any] | None:
    """The engine's settings (its insecure registries), or None with no engine here: then Docker's
    defaults decide, as they would for `docker push`."""
    try:
        return (docker or use.engine()).info()
    except Exception:  # noqa: BLE001 - any failure to reach an engine means "no engine"
        return None


def signer(use: Adapters, docker: Engine | None, public: str | None = None, *, environment_credentials: bool = True) -> Signer | None:
    """cosign with the site's key (IMAGEKIT_SIGNING_KEY, its password in IMAGEKIT_SIGNING_PASSWORD),
    reaching each registry as this host's Docker does; None when no key is set and no ``public``
    key was given (signing is off). ``environment_credentials`` False: `docker login`'s alone, as
    for a host named on a command line (see `registry`)."""
    value = "" if public is not None else os.environ.get("IMAGEKIT_SIGNING_KEY", "")
    if not value and public is None:
        return None
    key = cosign.signing_key(value, os.environ.get("IMAGEKIT_SIGNING_PASSWORD", "")) if value else None
    info = _engine_info(use, docker)

    def access(host_name: str) -> cosign.RegistryAccess:
        ca = CERTS_D / host_name / "ca.crt"
        auth = use.registry_auth(host_name) if environment_credentials else None
        credentials = (auth["username"], auth["password"]) if auth else None
        return cosign.RegistryAccess(insecure(host_name, info), ca if ca.is_file() else None, credentials)

    return use.signer(access, key, public)


def local_runner(use: Adapters, docker: Engine, name: str = "local") -> RunnerClass:
    """This host as a runner class: its GPUs and driver as nvidia-smi sees them, and its engine."""
    version = docker.version()
    gpus = host.nvidia_gpus(use.probe) or []
    return RunnerClass(
        name=name,
        gpus=tuple(g.name for g in gpus),
        driver=gpus[0].driver if gpus else "",
        engine=f"Engine {version.get('Version', '?')}, {docker.describe_store()}",
    )


def staged_images(matrix: Matrix, images: list[ImageSpec], path: Path) -> dict[str, StagedImage]:
    """The staged digests of ``images``, each held to the matrix's staging repository: a staged.json
    comes from a CI artifact, and the staging credentials go only where the matrix stages."""
    if not matrix.ci.staging:
        raise ConfigurationError(
            "the matrix names no staging repository (ci.staging)", tip="set `ci: {staging: host[:port]/path}` in the matrix or an overlay"
        )
    staged = staged_record(path)
    for image in images:
        entry = staged.get(image.id)
        if entry is not None and entry.name != f"{matrix.ci.staging}/{image.repository}":
            raise ConfigurationError(
                f"{path}: {image.id}: reference {entry.reference[:120]} is not in the staging repository {matrix.ci.staging}/{image.repository}",
                tip="use the staged.json that `imagekit stage` wrote with this matrix's ci.staging",
            )
    return {i.id: staged[i.id] for i in images if i.id in staged}


def staged_record(path: Path) -> dict[str, StagedImage]:
    """The staged.json `imagekit stage` wrote (a CI artifact: read as untrusted)."""
    if not path.is_file():
        raise ConfigurationError(
            f"no staged record at {path}", tip="run `imagekit stage` on the build host and hand its reports/staged.json to this job"
        )
    if path.stat().st_size > 4 * 2**20:
        raise ConfigurationError(
            f"{path} is over 4 MiB, far more than a staged record", tip="use the staged.json that `imagekit stage` wrote"
        )
    return read_staged(path.read_text(encoding="utf-8", errors="replace"), str(path))


def conclude(
    title: str,
    columns: Sequence[str],
    rows: Sequence[tuple[str, State, Sequence[str]]],
    *,
    failed: str,
    tip: str,
    reasons: Mapping[str, str] | None = None,
) -> int:
    """The end of every run over images: one table (image, state, then ``columns``), then exit 1,
    naming the images, when any state is not ok. ``failed``: what happened to them, e.g. "failed to
    build"; ``reasons``: image → why, listed in the error too (the table goes to stdout)."""
    console.table(title, ["image", "result", *columns], [[image, str(state), *rest] for image, state, rest in rows])
    bad = [image for image, state, _ in rows if not state.ok]
    if not bad:
        return 0
    if reasons:
        raise RunFailed(
            f"{len(bad)} of {len(rows)} image(s) {failed}:\n  " + "\n  ".join(f"{i}: {reasons.get(i, '')}" for i in bad), tip=tip
        )
    raise RunFailed(f"{len(bad)} of {len(rows)} image(s) {failed}: {', '.join(bad)}", tip=tip)


def append_summary(reports: ReportsDir, markdown: str) -> None:
    """Add to reports/summary.md and, in GitHub Actions, to the job summary."""
    previous = reports.summary.read_text() if reports.summary.is_file() else ""
    write_atomic(reports.summary, previous + markdown)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
            fh.write(markdown)


def require_smoke(matrix: Matrix) -> None:
    if not (matrix.smoke_dir / "conftest.py").is_file():
        raise ConfigurationError(
            f"smoke suite not found at {matrix.smoke_dir}", tip="set `smoke:` in the matrix (relative to the matrix file)"
        )


def write_lock(use: Adapters, matrix: Matrix, images: list[ImageSpec], path: Path, *, upgrade: bool, title: str) -> int:
    """`imagekit lock`, and how `imagekit build` writes a missing lock: the lock brought up to date
    for ``images`` and written, or nothing written when any of them cannot be locked."""
    lock, done = update_lock(path, matrix, images, engine(use), upgrade=upgrade, resolvers=use.resolvers)
    rows = []
    for image in images:
        entry = lock.images.get(image.id) if done[image.id].state.ok else None
        shown = [entry.base or f"(parent {image.parent})", str(len(pins(entry.requirements)))] if entry else ["–", "–"]
        rows.append((image.id, done[image.id].state, shown))
    return conclude(
        title,
        ["base", "packages"],
        rows,
        failed=f"could not be locked; {path} is unchanged",
        tip="lock what this host can reach with --only, and the rest where their index and bases are reachable",
        reasons={image_id: outcome.message for image_id, outcome in done.items()},
    )


def require_compression(found: list[Rendered], repro: reproducibility.Reproducibility) -> None:
    """zstd layers are made by the OCI-archive path alone: refuse before building anything."""
    wanted = sorted({r.image.compression for r in found} - {"gzip"})
    if wanted and repro.method != OCI:
        raise EngineError(
            f"the matrix asks for {', '.join(wanted)} layers (publish.compression), which this builder cannot write: {repro.describe()}",
            tip=ZSTD_TIP,
        )
