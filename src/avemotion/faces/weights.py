"""Detector weights: where they come from (params, download cache, download) and their sha256."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from pathlib import Path

from .config import FacesConfig

log = logging.getLogger(__name__)

#: face-alignment's download addresses; the cached file keeps the address' file name.
WEIGHT_URLS = {
    "sfd": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
    "retinaface": "https://www.adrianbulat.com/downloads/python-fan/retinaface_mobilenet0.25.pth",
}


class DetectorUnavailable(RuntimeError):
    """The configured face detector cannot be built (no weights, no such device)."""


def _download(url: str, dest: Path) -> None:
    """Fetch `url` to `dest` (face-alignment's first-use download). Separate so tests can stub it."""
    from torch.hub import download_url_to_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    download_url_to_file(url, str(dest), progress=False)


#: face-alignment's (and torch.hub's) convention: a weights file's name carries the first
#: hex digits of its sha256 after the last dash, ``s3fd-619a316812.pth``; at least 8 here,
#: so that a name like ``model-best.pth`` is not taken for one
HASH_PREFIX_RE = re.compile(r"-([0-9a-f]{8,64})\.[^-]*$")


def hash_prefix(path: str | Path) -> str | None:
    """The sha256 prefix a weights file's name carries, or None."""
    m = HASH_PREFIX_RE.search(Path(path).name)
    return m.group(1) if m else None


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: str | Path) -> str:
    st = os.stat(path)
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def verify_weights(path: str | Path) -> str:
    """The sha256 of a weights file, checked against the prefix its name carries.

    Raises DetectorUnavailable when the name says one hash and the bytes give another
    (a partial download, a renamed file, other weights under the usual name).
    """
    digest = sha256_of(path)
    prefix = hash_prefix(path)
    if prefix is not None and not digest.startswith(prefix):
        raise DetectorUnavailable(
            f"{path}: its name says sha256 {prefix}..., its contents hash to {digest[:len(prefix)]}... "
            "(a partial download or other weights under this name?). Delete it and let it be "
            "downloaded again, or copy the right file there, or point faces.weights at it."
        )
    if prefix is None:
        log.info("%s: no sha256 prefix in the name to check against; recording sha256 %s", path, digest)
    return digest


def detector_files_sha256(detector: str, weights: str | None) -> str:
    """sha256 of what the detector is made of: its weights, or the cascade file scikit-image ships."""
    if detector == "cascade":
        from skimage.data import lbp_frontal_face_cascade_filename

        return sha256_of(lbp_frontal_face_cascade_filename())
    return verify_weights(weights)


def cached_weights_path(detector: str) -> Path:
    """Where face-alignment keeps downloaded weights: $TORCH_HOME/hub/checkpoints/<file>."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_URLS[detector].rsplit("/", 1)[-1]


def resolve_weights(cfg: FacesConfig) -> str | None:
    """The weights file the detector will load (None for the cascade, which needs none).

    Order: ``faces.weights``; face-alignment's cache; a download into that cache. The
    file is checked against the sha256 prefix its name carries (`verify_weights`).
    Raises DetectorUnavailable with what was tried and what to do instead.
    """
    if cfg.detector == "cascade":
        return None
    if cfg.weights is not None:
        path = Path(cfg.weights)
        if not path.is_file():
            raise DetectorUnavailable(
                f"faces.weights = {cfg.weights}: file not found (faces.detector: {cfg.detector}). "
                f"Point faces.weights at a copy of {WEIGHT_URLS[cfg.detector].rsplit('/', 1)[-1]}, "
                "set faces.weights: null to use face-alignment's download cache, "
                "or use faces.detector: cascade (ships with scikit-image, no download)."
            )
        verify_weights(path)
        return str(path)
    cached = cached_weights_path(cfg.detector)
    if cached.is_file():
        verify_weights(cached)
        return str(cached)
    url = WEIGHT_URLS[cfg.detector]
    try:
        log.info("downloading %s weights from %s to %s", cfg.detector, url, cached)
        _download(url, cached)
        verify_weights(cached)
    except DetectorUnavailable:
        cached.unlink(missing_ok=True)  # never leave a bad download where the next run trusts it
        raise
    except Exception as exc:  # offline: URLError, socket errors, HTTP errors, ...
        raise DetectorUnavailable(
            f"faces.detector: {cfg.detector} needs weights that could not be had: faces.weights is "
            f"null, {cached} does not exist, and downloading {url} failed ({exc}). "
            f"On an offline machine either copy the file to {cached} (or set $TORCH_HOME), "
            "or set faces.weights to a local copy, or use faces.detector: cascade "
            "(ships with scikit-image, no download)."
        ) from None
    return str(cached)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DetectorUnavailable("faces.device: cuda, but no CUDA device is available; use auto or cpu")
    return device
