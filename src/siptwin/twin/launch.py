"""One way to make a twin of any backend: what ``siptwin up --backend`` and the suite both call.

- ``embedded``: everything in this process (:class:`~siptwin.twin.embedded.EmbeddedTwin`);
- ``process``: the control plane and every region in their own processes;
- ``netns``: the same, each region in its own network namespace (root);
- ``docker``: each region in a container of the project's own dockerd (root), built here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .config import Twin, TwinConfig

if TYPE_CHECKING:
    from .backends.docker import DockerEngine

BACKENDS = ("embedded", "process", "netns", "docker")


def project_root() -> Path:
    """The checkout the docker image is built from."""
    return Path(__file__).resolve().parents[3]


def make_twin(backend: str, config: TwinConfig) -> tuple[Twin, DockerEngine | None]:
    """A twin of ``backend``, not yet started, and the docker engine it needs (stop it after
    the twin, or on a failed start; None for the other backends)."""
    if backend == "embedded":
        from .embedded import EmbeddedTwin

        return EmbeddedTwin(config), None
    if backend == "process":
        from .backends.process import ProcessTwin

        return ProcessTwin(config), None
    if backend == "netns":
        from .backends.netns import NetnsTwin

        return NetnsTwin(config), None
    if backend == "docker":
        from .backends.docker import DockerEngine, DockerTwin, build_image, image_cache

        engine = DockerEngine(config.state_dir / "docker")
        try:
            engine.start()
            build_image(engine, image_cache(), project_root())
        except BaseException:
            engine.stop()  # our dockerd must not outlive a failed start
            raise
        return DockerTwin(config, engine), engine
    raise ValueError(f"unknown backend {backend!r}: one of {', '.join(BACKENDS)}")
