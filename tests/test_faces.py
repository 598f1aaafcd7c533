"""Speaker face crops: the right view, the face inside, following it, and the stage's files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from avemotion import faces, video
from avemotion.audio import AudioConfig
from avemotion.config import ParamsError, build
from avemotion.corpus import UTTERANCE_SCHEMA
from avemotion.video import VideoConfig
from video_fixture import (
    CONTENT_ROWS,
    LEFT_FACE,
    RIGHT_FACE,
    face,
    left_path,
    right_path,
    truncate,
    write_clip,
    write_empty_clip,
    zero_middle,
)

REPO = Path(__file__).resolve().parents[1]
FPS = 25.0
# fast cascade settings that still find the test faces on most frames
FAST = dict(detector="cascade", detect_scale=0.5, cascade_step=1.5, workers=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3 s at 30 fps: LFW face 0 drifting right in the left view, face 7 still in the right."""
    return write_clip(tmp_path_factory.mktemp("clip") / "Ses01F_impro01.avi", n_frames=90)


def job(view="left", start=0.0, end=3.0, steps=75, uid="Ses01F_impro01_F000", path="clip.avi"):
    return faces.FaceJob(uid, 1, "Ses01F_impro01", uid[-4], view, start, end, path, steps)


def crop(clip, cfg, j):
    with video.FrameReader(clip) as reader:
        return faces.crop_utterance(reader, j, cfg, FPS, faces.make_detector(cfg))


def face_offset(crop_rgb: np.ndarray, index: int, cfg: faces.FacesConfig) -> tuple[float, float, float]:
    """(match score, dx, dy): where face `index` best matches in a crop, relative to its centre,
    in video pixels."""
    k = cfg.out_px / cfg.crop_px
    template = cv2.resize(face(index), None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
    res = cv2.matchTemplate(gray, template, cv2.TM_CCOEFF_NORMED)
    _, score, _, (x, y) = cv2.minMaxLoc(res)
    th, tw = template.shape
    return score, (x + tw / 2 - cfg.out_px / 2) / k, (y + th / 2 - cfg.out_px / 2) / k


# ----------------------------------------------------------------------------- crops


@pytest.mark.parametrize("view, mine, other", [("left", LEFT_FACE, RIGHT_FACE), ("right", RIGHT_FACE, LEFT_FACE)])
def test_crops_hold_the_speakers_face_from_the_right_view(clip, view, mine, other):
    cfg = build(faces.FacesConfig, {"faces": {**FAST, "detect_every": 1}}, "faces")
    r = crop(clip, cfg, job(view=view))
    assert r.reason is None and r.face_found
    assert r.faces.shape == (75, 96, 96, 3) and r.faces.dtype == np.uint8
    assert r.frames_detected >= 0.8 * r.frames_searched
    x0 = r.crop_xy[:, 0]
    assert ((x0 >= 0) & (x0 + 224 <= 360)).all() if view == "left" else ((x0 >= 360) & (x0 + 224 <= 720)).all()
    for i in range(0, 75, 7):
        score, dx, dy = face_offset(r.faces[i], mine, cfg)
        assert score > 0.7, f"frame {i}: the speaker's face is not in the crop"
        assert abs(dx) < 15 and abs(dy) < 15, f"frame {i}: face off centre by ({dx:.0f}, {dy:.0f}) px"
        assert face_offset(r.faces[i], other, cfg)[0] < score - 0.2, f"frame {i}: the other actor's face"


def test_crop_follows_the_moving_face(clip):
    cfg = faces.FacesConfig(**FAST, detect_every=1)
    r = crop(clip, cfg, job())
    frames = video.step_frames(0.0, 75, FPS, 30.0)
    truth = np.array([left_path(i) for i in frames])  # (75, 2) frame pixels
    centre = r.crop_xy + cfg.crop_px / 2
    expected_x = np.clip(truth[:, 0], 112, 360 - 112)  # the crop stays inside the view
    assert np.abs(centre[:, 0] - expected_x).max() < 12
    assert np.abs(centre[:, 1] - truth[:, 1]).max() < 15
    assert centre[-1, 0] - centre[0, 0] > 100  # it moved with the face (~130 px)
    assert (np.diff(centre[:, 0]) >= -2).all()  # smoothly: no jumps back


def test_detecting_every_fifth_frame_gives_nearly_the_same_crops(clip):
    every1 = crop(clip, faces.FacesConfig(**FAST, detect_every=1), job())
    every5 = crop(clip, faces.FacesConfig(**FAST, detect_every=5), job())
    assert every5.frames_searched == 16  # steps 0, 5, ..., 70 and the last, 74
    assert np.abs(every1.crop_xy.astype(int) - every5.crop_xy).max() <= 10
    diff = np.abs(every1.faces.astype(int) - every5.faces).mean()
    assert diff < 12, f"mean pixel difference {diff:.1f}"


def test_view_without_a_face_is_cropped_at_its_centre_and_flagged(tmp_path):
    path = write_clip(tmp_path / "noface.avi", n_frames=30, left=None, right=right_path)
    r = crop(path, faces.FacesConfig(**FAST), job(end=1.0, steps=25))
    assert r.reason is None and not r.face_found and r.frames_detected == 0
    assert r.faces.shape[0] == 25
    # the picture's centre (rows 122-359 hold the picture, black bars above and below)
    top, bottom = CONTENT_ROWS
    assert (r.crop_xy == [(360 - 224) // 2, top + (bottom - top - 224) // 2]).all()


def test_utterance_past_the_video_end_is_clipped_or_rejected(clip):
    cfg = faces.FacesConfig(**FAST)
    tail = crop(clip, cfg, job(start=2.5, end=4.0, steps=38))
    assert tail.reason is None and tail.n_frames == 12 and tail.n_steps == 38  # frames up to 3.0 s
    past = crop(clip, cfg, job(start=3.5, end=4.0, steps=13))
    assert past.reason == "time_range" and "after the video ends" in past.detail
    bad = crop(clip, cfg, job(start=2.0, end=1.0))
    assert bad.reason == "time_range"


def test_zeros_in_the_middle_of_a_video_reject_the_utterances_they_touch(tmp_path):
    # 10 s; a fifth of the file's bytes in the middle overwritten with zeros
    good = write_clip(tmp_path / "good.avi", n_frames=300, left=lambda i: (180.0, 240.0))  # still
    zero_middle(good, tmp_path / "Ses01F_impro01.avi", 0.2)
    jobs = [job(start=t, end=t + 1.0, steps=25, uid=f"Ses01F_impro01_F{i:03d}", path="Ses01F_impro01.avi") for i, t in enumerate([0.0, 1.5, 4.0, 5.5, 8.0])]
    cfg = faces.FacesConfig(**FAST)
    results = faces.crop_chunk(jobs, tmp_path, cfg, FPS, faces.make_detector(cfg))
    by_reason = {}
    for r in results:
        by_reason.setdefault(r.reason, []).append(r)
    assert [r.utterance_id for r in by_reason[None]][:2] == ["Ses01F_impro01_F000", "Ses01F_impro01_F001"]
    corrupt = by_reason.get("video_corrupt", [])
    assert corrupt, [(r.utterance_id, r.reason) for r in results]
    for r in corrupt:
        assert r.faces is None
        assert "Ses01F_impro01.avi: the decoder reported damaged data at frame" in r.detail
        assert f"utterance {r.utterance_id}, frames " in r.detail
    # what is kept shows the speaker's face, at the frames asked for
    for r in by_reason[None]:
        assert r.face_found and face_offset(r.faces[5], LEFT_FACE, cfg)[0] > 0.7


def test_cascade_looks_near_the_last_face_but_is_not_held_by_it():
    det = faces.CascadeDetector(scale=0.5)
    here = np.full((480, 360, 3), 90, dtype=np.uint8)
    there = here.copy()
    here[100:240, 20:160] = face(LEFT_FACE)[..., None]
    there[300:440, 200:340] = face(LEFT_FACE)[..., None]
    a, b, c = det.detect([here, there, here])
    assert abs(a.cx - 90) < 15 and abs(a.cy - 170) < 15
    assert abs(b.cx - 270) < 15 and abs(b.cy - 370) < 15  # not near the previous face: found anyway
    assert abs(c.cx - a.cx) < 2 and abs(c.cy - a.cy) < 2


# ----------------------------------------------------------------------------- track and crop geometry


def test_track_drops_a_single_false_detection_and_interpolates():
    steps = np.array([0, 5, 10, 15, 20])
    centres = np.array([[100, 50], [110, 50], [300, 50], [130, 50], [140, 50]], dtype=float)  # 300: false
    path = faces.track(21, steps, centres, window=1)
    assert path.shape == (21, 2)
    assert np.abs(path[:, 0] - np.linspace(100, 140, 21)).max() <= 10
    assert path[:, 0].max() < 150
    # beyond the first/last detection: the nearest one
    assert faces.track(5, np.array([2]), np.array([[7.0, 8.0]]), window=3).tolist() == [[7.0, 8.0]] * 5


def test_crop_stays_inside_the_view_and_pads_only_where_the_view_is_too_small():
    assert faces.crop_origin(50, 224, 360) == 0
    assert faces.crop_origin(340, 224, 360) == 136
    assert faces.crop_origin(180, 224, 360) == 68
    view = np.full((100, 300, 3), 7, dtype=np.uint8)
    y0 = faces.crop_origin(50, 224, 100)
    assert y0 == -62
    c = faces.crop_square(view, 0, y0, 224)
    assert c.shape == (224, 224, 3)
    assert (c[62:162] == 7).all() and not c[:62].any() and not c[162:].any()


def test_faces_config_checks_its_keys():
    cfg = build(faces.FacesConfig, {"faces": {"detector": "cascade", "detect_every": 5}}, "faces")
    assert cfg.crop_px == 224 and cfg.out_px == 96 and cfg.workers == 0
    with pytest.raises(ParamsError, match="faces.detector"):
        build(faces.FacesConfig, {"faces": {"detector": "haar"}}, "faces")
    with pytest.raises(ParamsError, match="faces.out_px"):
        build(faces.FacesConfig, {"faces": {"out_px": 300}}, "faces")
    with pytest.raises(ParamsError, match="faces.detect_every"):
        build(faces.FacesConfig, {"faces": {"detect_every": 0}}, "faces")


# ----------------------------------------------------------------------------- sfd


@pytest.fixture(scope="module")
def s3fd_weights(tmp_path_factory):
    """A randomly initialised S3FD state dict on disk (no download, no real weights)."""
    torch = pytest.importorskip("torch")
    from face_alignment.detection.sfd.net_s3fd import s3fd

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "s3fd-random.pth"
    torch.save(s3fd().state_dict(), path)
    return path


def test_sfd_loads_the_weights_named_in_params(s3fd_weights):
    import torch
    from face_alignment.detection.sfd.detect import batch_detect

    cfg = faces.FacesConfig(detector="sfd", weights=str(s3fd_weights), device="cpu", threshold=0.0)
    assert faces.resolve_weights(cfg) == str(s3fd_weights)
    det = faces.make_detector(cfg)
    saved = torch.load(s3fd_weights, weights_only=True)
    for name, value in det.net.state_dict().items():
        assert torch.equal(value, saved[name]), name
    # our batched decoding ranks first the box face-alignment's own post-processing ranks first
    rng = np.random.default_rng(0)
    views = [rng.integers(0, 256, (64, 80, 3), dtype=np.uint8) for _ in range(3)]  # BGR, as decoded
    boxes = det.detect(views)
    rgb = np.stack(views)[..., ::-1].copy()  # face-alignment takes RGB and flips it to BGR itself
    ref = batch_detect(det.net, torch.from_numpy(rgb).permute(0, 3, 1, 2).float(), "cpu")
    for box, candidates in zip(boxes, ref):
        x1, y1, x2, y2, score = candidates[candidates[:, 4].argmax()]
        assert box.score == pytest.approx(score, abs=1e-5)
        assert (box.cx, box.cy) == pytest.approx(((x1 + x2) / 2, (y1 + y2) / 2), abs=1e-3)
        assert (box.w, box.h) == pytest.approx((x2 - x1, y2 - y1), abs=1e-3)


def test_sfd_uses_face_alignments_download_cache(s3fd_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert faces.cached_weights_path("sfd") == tmp_path / "hub" / "checkpoints" / "s3fd-619a316812.pth"
    # the random weights under a name that carries their own hash, as the real file's does
    name = f"s3fd-{faces.sha256_of(s3fd_weights)[:10]}.pth"
    monkeypatch.setitem(faces.WEIGHT_URLS, "sfd", f"https://example.invalid/{name}")
    cached = tmp_path / "hub" / "checkpoints" / name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(s3fd_weights.read_bytes())
    monkeypatch.setattr(faces.weights, "_download", lambda url, dest: pytest.fail("downloaded although cached"))
    assert faces.resolve_weights(faces.FacesConfig(detector="sfd")) == str(cached)


def _weights_file(directory: Path, content: bytes, prefix: str | None = None) -> Path:
    """A made-up weights file whose name carries `prefix` (default: its true sha256 prefix)."""
    import hashlib

    prefix = prefix or hashlib.sha256(content).hexdigest()[:10]
    path = directory / f"s3fd-{prefix}.pth"
    path.write_bytes(content)
    return path


def test_weights_are_checked_against_the_hash_in_their_name(tmp_path):
    good = _weights_file(tmp_path, b"weights as published")
    cfg = faces.FacesConfig(detector="sfd", weights=str(good))
    assert faces.resolve_weights(cfg) == str(good)
    (tmp_path / "other").mkdir()
    bad = _weights_file(tmp_path / "other", b"weights as published, cut sh", prefix=good.name[5:15])
    with pytest.raises(faces.DetectorUnavailable) as e:
        faces.resolve_weights(faces.FacesConfig(detector="sfd", weights=str(bad)))
    assert str(bad) in str(e.value) and "sha256" in str(e.value)
    assert faces.hash_prefix("s3fd-619a316812.pth") == "619a316812"
    assert faces.hash_prefix("retinaface_mobilenet0.25.pth") is None and faces.hash_prefix("model-best.pth") is None


def test_a_download_that_does_not_match_its_hash_is_refused_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = faces.cached_weights_path("sfd")  # s3fd-619a316812.pth

    def truncated(url, dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"the first bytes of the file")

    monkeypatch.setattr(faces.weights, "_download", truncated)
    with pytest.raises(faces.DetectorUnavailable, match="its name says sha256 619a316812"):
        faces.resolve_weights(faces.FacesConfig(detector="sfd"))
    assert not cached.exists()


def test_sfd_without_weights_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, dest):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(faces.weights, "_download", offline)
    with pytest.raises(faces.DetectorUnavailable) as e:
        faces.resolve_weights(faces.FacesConfig(detector="sfd"))
    msg = str(e.value)
    for words in ("faces.weights", "s3fd-619a316812.pth", str(tmp_path), "name resolution", "faces.detector: cascade"):
        assert words in msg
    with pytest.raises(faces.DetectorUnavailable, match="nowhere.pth: file not found"):
        faces.resolve_weights(faces.FacesConfig(detector="sfd", weights=str(tmp_path / "nowhere.pth")))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    with pytest.raises(faces.DetectorUnavailable, match="not an S3FD state dict"):
        faces.make_detector(faces.FacesConfig(detector="sfd", weights=str(junk), device="cpu"))


def test_sfd_crops_an_utterance_in_batches(clip, s3fd_weights):
    # random weights find "faces" anywhere: this checks the batching and box plumbing only
    cfg = faces.FacesConfig(
        detector="sfd", weights=str(s3fd_weights), device="cpu", threshold=0.0, detect_scale=0.25, batch=4, detect_every=5
    )
    r = crop(clip, cfg, job(end=1.0, steps=25))
    assert r.reason is None and r.face_found and r.frames_searched == 6 == r.frames_detected
    assert r.faces.shape == (25, 96, 96, 3)
    assert ((r.crop_xy[:, 0] >= 0) & (r.crop_xy[:, 0] + 224 <= 360)).all()


@pytest.mark.gpu
def test_sfd_runs_on_the_gpu(s3fd_weights):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cfg = faces.FacesConfig(detector="sfd", weights=str(s3fd_weights), device="auto", threshold=0.0)
    det = faces.make_detector(cfg)
    assert next(det.net.parameters()).is_cuda
    assert len(det.detect([np.zeros((64, 64, 3), np.uint8)] * 3)) == 3


# ----------------------------------------------------------------------------- the stage


def _utt(uid, start, end, seconds, view=None, session=None):
    dialog, speaker = uid.rsplit("_", 1)[0], uid[-4]
    letter = dialog[5]
    session = session or int(dialog[3:5])
    return {
        "utterance_id": uid,
        "session": session,
        "dialog": dialog,
        "improvised": True,
        "speaker": speaker,
        "gender": speaker,
        "dialog_letter": letter,
        "view": view or ("left" if speaker == letter else "right"),
        "start": start,
        "end": end,
        "wav_path": f"Session{session}/sentences/wav/{dialog}/{uid}.wav",
        "video_path": f"Session{session}/dialog/avi/DivX/{dialog}.avi",
        "n_samples": int(seconds * 16000),
        "sample_rate": 16000,
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two sessions with good, clipped, faceless and broken videos; returns (root, utterances, labels)."""
    root = tmp_path_factory.mktemp("corpus")
    avi = lambda s, d: root / f"Session{s}/dialog/avi/DivX/{d}.avi"  # noqa: E731
    write_clip(avi(1, "Ses01F_impro01"), n_frames=120)  # 4 s
    good = write_clip(avi(2, "Ses02M_impro01"), n_frames=180)  # 6 s, then cut in half
    truncate(good, avi(2, "Ses02M_impro01"), 0.5)
    write_empty_clip(avi(2, "Ses02M_impro02"))
    write_clip(avi(2, "Ses02M_impro03"), n_frames=60, left=None, right=None)  # nobody there
    rows = [
        _utt("Ses01F_impro01_F000", 0.0, 1.2, 1.2),
        _utt("Ses01F_impro01_F001", 2.0, 3.5, 1.5),
        _utt("Ses01F_impro01_M000", 1.2, 2.0, 0.8),
        _utt("Ses01F_impro01_M001", 3.5, 4.6, 1.1),  # runs 0.5 s past the video: clipped
        _utt("Ses01F_impro01_M002", 5.0, 6.0, 1.0),  # starts after the video: time_range
        _utt("Ses01F_impro01_F002", 0.5, 1.0, 0.5),  # label dropped: not processed
        _utt("Ses01F_impro02_F000", 0.0, 1.0, 1.0),  # no video file
        _utt("Ses02M_impro01_M000", 0.2, 1.0, 0.8),  # before the cut: fine
        _utt("Ses02M_impro01_F000", 4.5, 5.5, 1.0),  # after the cut: video_decode
        _utt("Ses02M_impro02_M000", 0.0, 1.0, 1.0),  # zero frames: video_unreadable
        _utt("Ses02M_impro03_F000", 0.0, 1.0, 1.0),  # no face: face_found false
    ]
    utterances = pa.Table.from_pylist(sorted(rows, key=lambda r: r["utterance_id"]), schema=UTTERANCE_SCHEMA)
    labels = pa.table(
        {
            "utterance_id": [r["utterance_id"] for r in rows],
            "emotion": [None if r["utterance_id"] == "Ses01F_impro01_F002" else "neu" for r in rows],
        }
    )
    return root, utterances, labels


def run_stage(corpus, out: Path, workers=1, **faces_kw):
    root, utterances, labels = corpus
    cfg = faces.FacesConfig(**{**FAST, "out_px": 48, "contact_utterances": 4, "workers": workers, **faces_kw})
    return faces.run(
        utterances, labels, root, out / "faces", out / "contact", cfg, AudioConfig(seconds=1.0), VideoConfig(fps=FPS)
    )


@pytest.fixture(scope="module")
def stage(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("stage")
    old = os.umask(0o022)  # the usual umask, whatever this machine's is
    try:
        return out, run_stage(corpus, out)
    finally:
        os.umask(old)


def test_stage_writes_a_handful_of_files(stage):
    out, _ = stage
    assert sorted(p.name for p in (out / "faces").iterdir()) == [
        "Session1.parquet",
        "Session2.parquet",
        "rejects.parquet",
        "summary.json",
    ]
    assert sorted(p.name for p in (out / "contact").iterdir()) == ["Session1.png", "Session2.png"]


def test_outputs_are_readable_by_group_and_others_under_umask_022(stage):
    """On a shared server teammates can read the crops, summary and contact sheets."""
    out, _ = stage
    made = [p for d in ("faces", "contact") for p in sorted((out / d).iterdir())]
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in made} == {p.name: 0o644 for p in made}

def test_every_kept_utterance_is_cropped_or_rejected_with_a_reason(stage):
    out, result = stage
    rejects = {r["utterance_id"]: r for r in pq.read_table(out / "faces" / "rejects.parquet").to_pylist()}
    assert {u: r["reason"] for u, r in rejects.items()} == {
        "Ses01F_impro01_M002": "time_range",
        "Ses01F_impro02_F000": "video_missing",
        "Ses02M_impro01_F000": "video_decode",
        "Ses02M_impro02_M000": "video_unreadable",
    }
    assert all(r["stage"] == "faces" and r["detail"] for r in rejects.values())
    assert "Session1/dialog/avi/DivX/Ses01F_impro02.avi" in rejects["Ses01F_impro02_F000"]["detail"]
    assert str(out) not in json.dumps(list(rejects.values()))  # relative paths only
    cropped = [r["utterance_id"] for s in (1, 2) for r in pq.read_table(out / "faces" / f"Session{s}.parquet").to_pylist()]
    assert len(cropped) + len(rejects) == 10 and not set(cropped) & set(rejects)
    summary = json.loads((out / "faces" / "summary.json").read_text())
    assert summary["utterances"] == 10 and summary["cropped"] == 6 and summary["no_face"] == 1
    assert summary["rejected"] == {"time_range": 1, "video_decode": 1, "video_missing": 1, "video_unreadable": 1}
    # the one that runs past the video's end is named, not only counted
    assert summary["utterances_clipped_at_video_end"] == 1
    assert summary["clipped_at_video_end"] == {"Ses01F_impro01_M001": {"n_steps": 25, "n_frames": 12}}


def test_session_file_rows_and_schema(stage):
    out, _ = stage
    table = pq.read_table(out / "faces" / "Session1.parquet")
    ids = table.column("utterance_id").to_pylist()
    assert ids == sorted(ids) == ["Ses01F_impro01_F000", "Ses01F_impro01_F001", "Ses01F_impro01_M000", "Ses01F_impro01_M001"]
    meta = table.schema.metadata
    assert b"(n_frames, 48, 48, 3)" in meta[b"faces"] and meta[b"steps"] == b"25"
    rows = {r["utterance_id"]: r for r in table.to_pylist()}
    assert rows["Ses01F_impro01_F000"]["n_frames"] == 25  # 1.2 s of audio, cropped to 1 s
    assert rows["Ses01F_impro01_M000"]["n_frames"] == 20  # 0.8 s
    clipped = rows["Ses01F_impro01_M001"]
    assert (clipped["n_steps"], clipped["n_frames"]) == (25, 12)  # video ends at 4.0 s: 12 step centres before
    for r in rows.values():
        assert r["face_found"] and r["frames_detected"] > 0
        assert len(r["faces"]) == r["n_frames"] * 48 * 48 * 3
    _, f = next(faces.read_faces(out / "faces" / "Session1.parquet", "Ses01F_impro01_M000"))
    score, dx, dy = face_offset(f[5], RIGHT_FACE, faces.FacesConfig(out_px=48))
    assert score > 0.6 and abs(dx) < 20 and abs(dy) < 20
    s2 = {r["utterance_id"]: r for r in pq.read_table(out / "faces" / "Session2.parquet").to_pylist()}
    assert not s2["Ses02M_impro03_F000"]["face_found"] and s2["Ses02M_impro03_F000"]["frames_detected"] == 0


def test_the_detectors_hash_is_in_every_output(stage):
    from skimage.data import lbp_frontal_face_cascade_filename

    out, _ = stage
    sha = faces.sha256_of(lbp_frontal_face_cascade_filename())
    summary = json.loads((out / "faces" / "summary.json").read_text())
    assert summary["params"]["faces"]["weights_sha256"] == sha
    meta = pq.read_schema(out / "faces" / "Session1.parquet").metadata
    assert json.loads(meta[b"params"])["faces"]["weights_sha256"] == sha


def test_other_weights_give_other_outputs(s3fd_weights, corpus, tmp_path):
    import torch

    # the same numbers in another file of the same name (the legacy format): even that must
    # show in the outputs, where the file name alone would not
    (tmp_path / "elsewhere").mkdir()
    other = tmp_path / "elsewhere" / s3fd_weights.name
    torch.save(torch.load(s3fd_weights, weights_only=True), other, _use_new_zipfile_serialization=False)
    kw = dict(detector="sfd", device="cpu", threshold=0.0, detect_scale=0.25, detect_every=10)
    a = run_stage(corpus, tmp_path / "a", weights=str(s3fd_weights), **kw)
    b = run_stage(corpus, tmp_path / "b", weights=str(other), **kw)
    assert a.summary["params"]["faces"]["weights_sha256"] != b.summary["params"]["faces"]["weights_sha256"]
    assert (tmp_path / "a/faces/Session1.parquet").read_bytes() != (tmp_path / "b/faces/Session1.parquet").read_bytes()


def test_contact_sheet_is_a_png_with_one_row_per_sampled_utterance(stage):
    out, _ = stage
    img = cv2.imread(str(out / "contact" / "Session2.png"))
    # on top the view check of the two utterances that could be read (238 picture rows at
    # half size, widened to the sheet's width); then 4 utterances in session 2, all
    # sampled; 8 frames of 48 px shown at 96 px
    assert img.shape == (2 * (16 + round(119 * 768 / 360)) + 4 * (96 + 16), 8 * 96, 3)
    # rows by id: rejected, cropped, rejected, no face; the no-face one is framed in red
    row = img[-112 + 16 :]
    assert (row[:, :, 2] > 200).sum() > 100 and (row[:, :, 0] < 50)[row[:, :, 2] > 200].all()


def test_outputs_are_byte_identical_whatever_the_worker_count(corpus, stage, tmp_path):
    out1, _ = stage
    out2 = tmp_path / "two"
    run_stage(corpus, out2, workers=2)
    for sub in ("faces", "contact"):
        names = sorted(p.name for p in (out1 / sub).iterdir())
        assert names == sorted(p.name for p in (out2 / sub).iterdir())
        for name in names:
            assert (out1 / sub / name).read_bytes() == (out2 / sub / name).read_bytes(), name


def test_workers_spread_over_every_visible_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert faces.worker_devices("cuda", 7) == ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1", "cuda:2", "cuda:0"]
    assert faces.worker_devices("cuda", 1) == ["cuda:0"]  # one worker: in the stage's own process
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert faces.worker_devices("cuda", 2) == ["cuda:0", "cuda:0"]
    assert faces.worker_devices("cpu", 2) == ["cpu", "cpu"] and faces.worker_devices(None, 3) == [None] * 3


def test_each_worker_process_takes_its_own_device(corpus, monkeypatch):
    # two workers handed cuda:0 and cuda:1 (two GPUs stubbed; the cascade runs on the CPU
    # whatever it is handed): every worker starts, and the results are the in-process ones
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    root, utterances, labels = corpus
    cfg = faces.FacesConfig(**{**FAST, "out_px": 48})
    jobs = faces.plan_jobs(utterances, labels, AudioConfig(seconds=1.0), VideoConfig(fps=FPS), cfg.view)
    chunks = faces.chunk_jobs(jobs, per_chunk=1)
    key = lambda rs: [(r.utterance_id, r.reason, None if r.faces is None else r.faces.tobytes()) for r in rs]  # noqa: E731
    alone = key(faces.iter_results(chunks, root, cfg, FPS, None, "cuda", workers=1))
    pooled = key(faces.iter_results(chunks, root, cfg, FPS, None, "cuda", workers=2))
    assert pooled == alone and len(alone) == len(jobs)


def test_entry_point_runs_from_params(corpus, tmp_path):
    root, utterances, labels = corpus
    pq.write_table(utterances, tmp_path / "utterances.parquet")
    pq.write_table(labels, tmp_path / "labels.parquet")
    params = {
        "audio": {"seconds": 1.0},
        "video": {"fps": 5},
        "faces": {**FAST, "out_px": 32, "contact_utterances": 2},
    }
    (tmp_path / "params.yaml").write_text(json.dumps(params))  # JSON is YAML
    cmd = [
        sys.executable, str(REPO / "pipeline" / "faces.py"), "--params", str(tmp_path / "params.yaml"), "--corpus", str(root),
        "--utterances", str(tmp_path / "utterances.parquet"), "--labels", str(tmp_path / "labels.parquet"),
        "--out", str(tmp_path / "faces"), "--contact", str(tmp_path / "contact"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"cropped": 6' in done.stdout and "video_missing" in done.stdout
    assert (tmp_path / "faces" / "Session2.parquet").is_file()
    params["faces"] = {"detector": "sfd", "weights": str(tmp_path / "none.pth")}
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1 and "none.pth: file not found" in done.stderr and "Traceback" not in done.stderr


# ----------------------------------------------------------------------------- picture and views


def test_a_face_near_the_top_bar_gives_a_crop_inside_the_picture(tmp_path):
    """The crop is clamped to the picture rows, not the frame: no black bar in the crop."""
    top, bottom = CONTENT_ROWS
    path = write_clip(tmp_path / "high.avi", n_frames=30, left=lambda i: (180.0, top + 75.0), right=right_path)
    cfg = faces.FacesConfig(**{**FAST, "detect_every": 1})
    r = crop(path, cfg, job(end=1.0, steps=25))
    assert r.reason is None and r.face_found
    y0 = r.crop_xy[:, 1]
    assert (y0 >= top).all() and (y0 + 224 <= bottom).all()
    # no row of the stored crop is letterbox black
    assert (r.faces.max(axis=(2, 3)) > faces.BLACK_LEVEL).all()
    score, _, _ = face_offset(r.faces[10], LEFT_FACE, cfg)
    assert score > 0.7


@pytest.mark.parametrize(
    "speaker, letter, rule, view",
    [("F", "F", "letter", "left"), ("M", "F", "letter", "right"), ("M", "M", "letter", "left"),
     ("F", "M", "letter", "right"), ("M", "M", "gender", "right"), ("F", "M", "gender", "left"),
     ("F", "F", "gender", "left"), ("M", "F", "gender", "right")],
)
def test_the_view_rule_is_a_parameter(speaker, letter, rule, view):
    assert faces.speaker_view(speaker, letter, rule) == view


def test_plan_jobs_uses_faces_view_and_marks_each_speakers_first_utterance(corpus):
    _, utterances, labels = corpus
    args = (utterances, labels, AudioConfig(seconds=1.0), VideoConfig(fps=FPS))
    by_letter = {j.utterance_id: j for j in faces.plan_jobs(*args)}
    by_gender = {j.utterance_id: j for j in faces.plan_jobs(*args, view="gender")}
    # Ses02M: the male speaker wears the markers (left); the gender rule puts him right
    assert by_letter["Ses02M_impro01_M000"].view == "left" and by_gender["Ses02M_impro01_M000"].view == "right"
    assert by_letter["Ses01F_impro01_F000"].view == by_gender["Ses01F_impro01_F000"].view == "left"
    previews = sorted(u for u, j in by_letter.items() if j.preview)
    assert previews == ["Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro02_F000", "Ses02M_impro01_F000",
                        "Ses02M_impro01_M000", "Ses02M_impro02_M000", "Ses02M_impro03_F000"]
    assert build(faces.FacesConfig, {"faces": {"view": "gender"}}, "faces").view == "gender"
    with pytest.raises(ParamsError, match="faces.view"):
        build(faces.FacesConfig, {"faces": {"view": "speaker"}}, "faces")


@pytest.mark.parametrize("rule, chosen", [("letter", "left"), ("gender", "right")])
def test_contact_sheet_shows_both_views_with_the_chosen_one_framed(tmp_path, rule, chosen):
    frame = np.full((480, 720, 3), 90, dtype=np.uint8)
    frame[:122] = frame[360:] = 0
    j = faces.FaceJob("Ses02M_impro01_M000", 2, "Ses02M_impro01", "M", faces.speaker_view("M", "M", rule),
                      0.0, 1.0, "x.avi", 5, dialog_letter="M", preview=True)
    r = faces.FaceResult(j.utterance_id, 2, 5, faces=np.zeros((5, 32, 32, 3), np.uint8), face_found=True,
                         preview=faces.preview_image(frame), job=j)
    sheet = faces.ContactSheet([j.utterance_id], 32, 8, rule)
    sheet.add(r)
    sheet.write(tmp_path / "sheet.png")
    img = cv2.imread(str(tmp_path / "sheet.png"))
    preview = img[16 : 16 + round(119 * 768 / 360)]
    green = (preview[:, :, 1] > 200) & (preview[:, :, 0] < 50) & (preview[:, :, 2] < 50)
    left, right = green[:, :384].sum(), green[:, 384:].sum()
    assert (left > 500 and right == 0) if chosen == "left" else (right > 500 and left == 0)


def _limit_file_size(max_bytes):
    def limit():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit


def test_a_failed_write_is_one_line_naming_the_file(corpus, tmp_path):
    # a full disk or a file-size limit: the stage ends with the file and the cause, no traceback
    root, utterances, labels = corpus
    pq.write_table(utterances, tmp_path / "utterances.parquet")
    pq.write_table(labels, tmp_path / "labels.parquet")
    params = {"audio": {"seconds": 1.0}, "video": {"fps": 5}, "faces": {**FAST, "out_px": 32}}
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    cmd = [
        sys.executable, str(REPO / "pipeline" / "faces.py"), "--params", "params.yaml", "--corpus", str(root),
        "--utterances", "utterances.parquet", "--labels", "labels.parquet", "--out", "faces", "--contact", "contact",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, preexec_fn=_limit_file_size(4096))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "cannot write faces/Session1.parquet: File too large" in error[0], done.stderr
    assert not list((tmp_path / "faces").glob("*")), "no partial output"


def _entry_point_cmd(corpus, tmp_path, out: str, workers: int) -> list[str]:
    root, utterances, labels = corpus
    pq.write_table(utterances, tmp_path / "utterances.parquet")
    pq.write_table(labels, tmp_path / "labels.parquet")
    params = {
        "audio": {"seconds": 1.0},
        "video": {"fps": FPS},
        "faces": {**FAST, "detect_every": 1, "cascade_step": 1.0, "out_px": 32, "contact_utterances": 4, "workers": workers},
    }
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    return [
        sys.executable, str(REPO / "pipeline" / "faces.py"), "--params", "params.yaml", "--corpus", str(root),
        "--utterances", "utterances.parquet", "--labels", "labels.parquet",
        "--out", f"{out}/faces", "--contact", f"{out}/contact",
    ]  # fmt: skip


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process tree checks read Linux process state")
def test_killed_stage_leaves_no_process_and_its_rerun_gives_the_same_bytes(corpus, tmp_path):
    import signal
    import time

    psutil = pytest.importorskip("psutil")
    whole = subprocess.run(_entry_point_cmd(corpus, tmp_path, "whole", 2), cwd=tmp_path, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr

    cmd = _entry_point_cmd(corpus, tmp_path, "killed", 2)
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    main = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    workers = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = [c for c in main.children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
        if len(workers) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None and len(workers) >= 2, "the stage ended before its workers could be seen"
    tree = main.children(recursive=True)  # the workers and multiprocessing's resource tracker
    time.sleep(0.5)  # mid-run: the workers are cropping
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    def alive(p):
        try:
            return p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    end = time.monotonic() + 10
    while time.monotonic() < end and any(alive(p) for p in tree):
        time.sleep(0.1)
    assert not [p.pid for p in tree if alive(p)], "processes of the killed stage are still running"

    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    for sub in ("faces", "contact"):
        names = sorted(p.name for p in (tmp_path / "whole" / sub).iterdir())
        assert sorted(p.name for p in (tmp_path / "killed" / sub).iterdir()) == names  # no temporaries left
        for name in names:
            assert (tmp_path / "whole" / sub / name).read_bytes() == (tmp_path / "killed" / sub / name).read_bytes(), name


def test_a_rerun_removes_the_temporaries_of_a_killed_run(stage, corpus, tmp_path):
    out = tmp_path / "again"
    (out / "faces").mkdir(parents=True)
    (out / "contact").mkdir()
    (out / "faces" / ".Session1.parquet.k2j4x9.tmp").write_bytes(b"half a file")
    (out / "contact" / ".Session2.png.a8c1.tmp").write_bytes(b"half a file")
    (out / "faces" / "notes.txt").write_text("not ours")
    run_stage(corpus, out)
    assert not list(out.glob("*/.*.tmp"))
    assert (out / "faces" / "notes.txt").exists()
