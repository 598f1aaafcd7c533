"""The corpus as a dependency: a fixed in-repo link, and a manifest of the files the stages read.

Where a team member keeps IEMOCAP differs from machine to machine; what the stages read
does not. So the pipeline never names the corpus' location:

- ``data/corpus`` is a symbolic link (ignored by git) to this machine's copy of
  ``IEMOCAP_full_release``, made by ``make corpus ROOT=...`` (`link_corpus`). A fresh
  clone links it to the generated demo corpus.
- The stage ``corpus`` depends on ``data/corpus``. DVC follows the link and hashes the
  content, with ``.dvcignore`` leaving out every name under it that starts with ``.``
  (macOS ``._*`` sidecars, ``.DS_Store``), so two copies with the same bytes at
  different paths give the same dependency hash.
- That stage writes ``data/interim/corpus-files.json`` (`build_manifest`): the path,
  size and MD5 of every file the later stages read for the selected sessions and dialogs
  (label files, utterance wavs, dialog videos), and what was deliberately skipped, by
  kind. ``extract``, ``faces`` and ``shard`` depend on this manifest instead of the tree,
  so a change the stages never see (an unselected session, motion capture, a new
  document) reruns only the manifest, whose bytes do not change, and nothing after it.

    >>> cfg = CorpusConfig(sessions=(1,), dialogs="improvised")
    >>> manifest = build_manifest("data/corpus", cfg)        # doctest: +SKIP
    >>> sorted(manifest)                                     # doctest: +SKIP
    ['counts', 'files', 'ignored', 'rejected_files', 'selection']
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable, Iterable

from . import corpus
from .corpus import CorpusConfig, CorpusError

log = logging.getLogger(__name__)

#: The in-repo path every stage reads the corpus from (a link, per machine).
CORPUS_LINK = "data/corpus"
#: Where the `demo` stage writes the generated corpus (the default link target).
DEMO_CORPUS = "data/demo/IEMOCAP_full_release"
#: Bytes read per step while hashing.
CHUNK_BYTES = 1 << 20


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def selected_files(root: str | Path, cfg: CorpusConfig) -> tuple[list[str], corpus.CorpusFiles]:
    """Paths (relative to `root`, sorted) of every file the stages read for `cfg`.

    Label files (and stray ``.txt`` files in ``EmoEvaluation/``, which extract reports),
    each selected dialog's utterance wavs and its video. Names starting with ``.`` are
    never listed.
    """
    found = corpus.find_label_files(root, cfg)
    root = found.root
    paths: set[str] = set()
    for session, label in found.files:
        paths.add(label.relative_to(root).as_posix())
        dialog = label.stem
        wav_dir = root / f"Session{session}" / "sentences" / "wav" / dialog
        if wav_dir.is_dir():
            for wav in wav_dir.iterdir():
                if not wav.name.startswith(".") and wav.suffix == ".wav" and wav.is_file():
                    paths.add(wav.relative_to(root).as_posix())
        video = root / f"Session{session}" / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
        if video.is_file():
            paths.add(video.relative_to(root).as_posix())
    for _, path, _ in found.stray:
        paths.add(path.relative_to(root).as_posix())
    return sorted(paths), found


def build_manifest(
    root: str | Path,
    cfg: CorpusConfig,
    progress: Callable[[Iterable[str], int], Iterable[str]] | None = None,
) -> dict:
    """Content of every file the stages read (path -> md5, bytes), and what was skipped.

    The result depends on the selected files' names and bytes only, never on where the
    corpus is mounted or on files the stages do not read. `progress(paths, total_bytes)`
    may wrap the iteration (e.g. tqdm).
    """
    paths, found = selected_files(root, cfg)
    root = found.root
    sizes = {p: (root / p).stat().st_size for p in paths}
    total = sum(sizes.values())
    it: Iterable[str] = paths if progress is None else progress(paths, total)
    files = {p: {"md5": file_md5(root / p), "bytes": sizes[p]} for p in it}
    kinds = {"label files": "/EmoEvaluation/", "utterance wavs": "/sentences/wav/", "videos": "/avi/DivX/"}
    return {
        "selection": {"sessions": sorted(cfg.sessions), "dialogs": cfg.dialogs},
        "files": files,
        "counts": {
            **{k: sum(1 for p in paths if part in p) for k, part in kinds.items()},
            "bytes": total,
        },
        "ignored": dict(sorted(found.ignored.items())),
        "rejected_files": [
            {"file": path.relative_to(root).as_posix(), "reason": reason}
            for _, path, reason in found.stray
        ],
    }


def link_corpus(target: str | Path, link: str | Path = CORPUS_LINK, check: bool = True) -> Path:
    """Point `link` at the corpus folder `target`; returns the link.

    A target inside the link's repository is linked relatively (so a moved clone keeps
    working), any other one absolutely. With `check`, the target must look like an
    ``IEMOCAP_full_release`` folder (the demo corpus may not exist yet: it is checked
    only if it does). Never touches anything tracked by git.
    """
    link = Path(link)
    target_abs = Path(os.path.abspath(target))
    if check and (target_abs.exists() or Path(target).as_posix().rstrip("/") != DEMO_CORPUS):
        corpus.check_root(target_abs)
    if link.exists() and not link.is_symlink():
        raise CorpusError(
            f"{link} exists and is not a link; move it away (it should be a link to your "
            "IEMOCAP_full_release folder, made by `make corpus ROOT=...`)"
        )
    link.parent.mkdir(parents=True, exist_ok=True)
    repo = link.parent.parent.resolve()
    try:
        Path(os.path.abspath(target)).relative_to(repo)
        dest = os.path.relpath(target_abs, link.parent.resolve())
    except ValueError:
        dest = str(target_abs)
    tmp = link.parent / f".{link.name}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(dest, tmp)
    os.replace(tmp, link)  # atomic: the link is never missing
    return link
