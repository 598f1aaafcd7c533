"""The demo corpus generator: IEMOCAP's layout and formats, consistent timings, learnable cues.

The format checks below are written from IEMOCAP.md (not from the corpus parser), so the
generator and the parser cross-check each other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from avemotion import demo
from avemotion.config import ParamsError, build

# A small corpus with both odd-named sessions: Ses03M_impro05a/b and Ses05M_script01_1b.
CFG = demo.DemoConfig(
    seed=7,
    sessions=(3, 5),
    improvised_per_session=2,
    scripted_per_session=1,
    utterances_per_dialog=6,
    min_seconds=1.0,
    max_seconds=1.6,
    workers=1,
)

CODES = "neu|fru|ang|sad|hap|exc|sur|fea|dis|oth|xxx"
WORD = "Neutral state|Neutral|Frustration|Anger|Sadness|Happiness|Excited|Surprise|Fear|Disgust|Other"
DIALOG_RE = re.compile(r"^Ses0([1-5])([FM])_(impro\d\d[ab]?|script\d\d_\d[ab]?)$")
SUMMARY_RE = re.compile(
    rf"^\[(\d+\.\d{{4}}) - (\d+\.\d{{4}})\]\t((Ses0[1-5][FM]_\w+?)_([FM])\d{{3}})\t({CODES})\t"
    r"\[(\d\.\d{4}), (\d\.\d{4}), (\d\.\d{4})\]$"
)
C_RE = re.compile(rf"^C-(E[1-6]|[FM]\d):\t((?:(?:{WORD}); )*(?:{WORD});|;)\t\([^()\t]*\)$")
A_RE = re.compile(r"^A-(E[1-6]|[FM]\d):\tval ([1-5]); act ([1-5]);(?: dom  ([1-5]);)?\t\([^()\t]*\)$")
HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo") / "IEMOCAP_full_release"
    summary = demo.write_demo_corpus(root, CFG)
    return root, summary


def parse_blocks(text: str) -> list[dict]:
    """Blocks of an EmoEvaluation file, parsed from the format in IEMOCAP.md."""
    head, _, rest = text.partition("\n\n")
    assert head == HEADER
    out = []
    for block in rest.strip("\n").split("\n\n"):
        first, *lines = block.split("\n")
        m = SUMMARY_RE.match(first)
        assert m, f"bad summary line {first!r}"
        b = {"start": float(m[1]), "end": float(m[2]), "uid": m[3], "dialog": m[4], "speaker": m[5],
             "code": m[6], "vad": tuple(float(m[i]) for i in (7, 8, 9)), "C": [], "A": []}
        for line in lines:
            if line.startswith("C-"):
                c = C_RE.match(line)
                assert c, f"bad C- line {line!r}"
                words = [] if c[2] == ";" else [w.strip() for w in c[2].rstrip(";").split(";")]
                b["C"].append((c[1], words))
            else:
                a = A_RE.match(line)
                assert a, f"bad A- line {line!r}"
                b["A"].append((a[1], int(a[2]), int(a[3]), None if a[4] is None else int(a[4])))
        out.append(b)
    return out


def majority(votes: list[list[str]]) -> str:
    """The category listed by at least two raters, else xxx (Neutral state = Neutral)."""
    counts = Counter(w.replace("Neutral state", "Neutral") for words in votes for w in set(words))
    top = [w for w, n in counts.items() if n >= 2]
    assert len(top) <= 1, f"ambiguous vote {votes}"
    return {v: k for k, v in demo.CATEGORY_WORDS.items()}[top[0]] if top else "xxx"


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------- layout


def test_layout_has_the_exact_iemocap_paths(corpus):
    root, summary = corpus
    assert root.name == "IEMOCAP_full_release"
    assert "generated demo" in (root / "Documentation" / "README.txt").read_text().lower()
    names = demo.dialog_names(CFG)
    assert names == [
        "Ses03M_impro05a", "Ses03M_impro05b", "Ses03F_script01_1",
        "Ses05F_impro01", "Ses05M_impro01", "Ses05M_script01_1b",
    ]
    for name in names:
        assert DIALOG_RE.match(name), name
        ses = root / f"Session{name[4]}"
        emo = ses / "dialog" / "EmoEvaluation"
        for rel in (
            f"dialog/EmoEvaluation/{name}.txt",
            f"dialog/wav/{name}.wav",
            f"dialog/avi/DivX/{name}.avi",
            f"dialog/transcriptions/{name}.txt",
        ):
            assert (ses / rel).is_file(), rel
        for sub in ("Categorical", "Attribute", "Self-evaluation"):
            assert any((emo / sub).glob(f"{name}*.txt")), sub
        uids = [b["uid"] for b in parse_blocks((emo / f"{name}.txt").read_text())]
        wav_dir = ses / "sentences" / "wav" / name
        wavs = sorted(p.name for p in wav_dir.iterdir() if not p.name.startswith("."))
        assert wavs == sorted(f"{u}.wav" for u in uids)
    assert sorted(p.name for p in root.iterdir()) == ["Documentation", "Session3", "Session5"]
    assert summary["dialogs"] == 6 and summary["utterances"] == 36
    assert summary["odd_names"] == ["Ses03M_impro05a", "Ses03M_impro05b", "Ses05M_script01_1b"]


def test_default_config_contains_odd_names():
    names = demo.dialog_names(demo.DemoConfig())
    assert {"Ses03M_impro05a", "Ses03M_impro05b", "Ses05M_script01_1b"} <= set(names)
    assert len(names) == 15 and all(DIALOG_RE.match(n) for n in names)


def test_macos_sidecars_are_garbage_beside_real_files(corpus):
    root, summary = corpus
    sidecars = sorted(p for p in root.rglob("._*"))
    assert len(sidecars) == summary["sidecars"] > 0
    for p in sidecars:
        assert p.is_file() and p.read_bytes()[:4] == b"\x00\x05\x16\x07"
        assert (p.parent / p.name[2:]).exists(), f"{p} has no real file beside it"
    assert any(p.parent.name == "EmoEvaluation" for p in sidecars)
    assert any(p.suffix == ".wav" and p.parent.parent.name == "wav" for p in sidecars)


# ----------------------------------------------------------------------------- EmoEvaluation


def test_emo_evaluation_files_follow_the_corpus_format(corpus):
    root, _ = corpus
    for name in demo.dialog_names(CFG):
        raw = (root / f"Session{name[4]}" / "dialog" / "EmoEvaluation" / f"{name}.txt").read_bytes()
        assert b"\r" not in raw and raw.endswith(b"\n") and b"\t" in raw
        blocks = parse_blocks(raw.decode())
        assert len(blocks) == CFG.utterances_per_dialog
        counters: Counter = Counter()
        prev_end = 0.0
        for b in blocks:
            assert b["dialog"] == name
            assert b["uid"] == f"{name}_{b['speaker']}{counters[b['speaker']]:03d}"  # per-speaker numbering
            counters[b["speaker"]] += 1
            assert prev_end <= b["start"] < b["end"]
            prev_end = b["end"]
            external = [r for r, _ in b["C"] if r.startswith("E")]
            assert len(external) == 3 == len(set(external)), b["C"]
            self_raters = [r for r, _ in b["C"] if not r.startswith("E")]
            assert all(r[0] == b["speaker"] for r in self_raters), "self ratings are by the speaker"
            ext_a = [a for a in b["A"] if a[0].startswith("E")]
            assert ext_a and all(a[0][0] == b["speaker"] for a in b["A"] if not a[0].startswith("E"))
            doms = [a[3] for a in ext_a if a[3] is not None]
            assert b["vad"] == pytest.approx(
                (np.mean([a[1] for a in ext_a]), np.mean([a[2] for a in ext_a]), np.mean(doms)), abs=5e-5
            )


def test_summary_code_is_the_external_majority_else_xxx(corpus):
    root, _ = corpus
    codes = Counter()
    for name in demo.dialog_names(CFG):
        text = (root / f"Session{name[4]}" / "dialog" / "EmoEvaluation" / f"{name}.txt").read_text()
        for b in parse_blocks(text):
            votes = [words for r, words in b["C"] if r.startswith("E")]  # self ratings never count
            assert b["code"] == majority(votes), b
            codes[b["code"]] += 1
    assert codes["xxx"] > 0 and len(codes) >= 5


def test_default_corpus_exercises_every_odd_case_of_the_format():
    """The default corpus (planned only: no files) has each irregularity IEMOCAP.md lists."""
    cfg = demo.DemoConfig()
    texts = [demo.emo_evaluation_text(d) for d in demo.plan_corpus(cfg)]
    blocks = [b for t in texts for b in parse_blocks(t)]
    assert len(blocks) == 225
    c_lines = [words for b in blocks for _, words in b["C"]]
    assert any(len(w) > 1 for w in c_lines)  # Frustration; Other;
    assert any(not w for w in c_lines)  # ;
    assert any("Neutral state" in w for w in c_lines)
    assert any(a[3] is None for b in blocks for a in b["A"])  # no dom
    assert any("dom  " in t for t in texts)
    assert any(re.search(r"\t\([^)]+\)$", t, re.M) for t in texts)  # comments
    assert any(not r.startswith("E") for b in blocks for r, _ in b["C"])  # self ratings
    codes = Counter(b["code"] for b in blocks)
    assert codes["xxx"] > 0 and codes["fru"] > 0 and codes["exc"] > 0
    # the speaker letter differs from the dialog letter about half the time
    differs = sum(b["speaker"] != b["dialog"][5] for b in blocks) / len(blocks)
    assert 0.3 < differs < 0.7
    # the four classes are roughly balanced (hap with exc merged)
    kept = [c for c in codes.elements() if c in ("neu", "ang", "sad", "hap", "exc")]
    four = Counter("hap" if c == "exc" else c for c in kept)
    assert min(four.values()) > 0.5 * max(four.values()), four


# ----------------------------------------------------------------------------- audio


def test_utterance_wavs_are_16k_mono_pcm16_and_as_long_as_their_times(corpus):
    root, _ = corpus
    for d in demo.plan_corpus(CFG):
        ses = root / f"Session{d.session}"
        stereo, rate = sf.read(ses / "dialog" / "wav" / f"{d.name}.wav", dtype="int16")
        assert rate == 16000 and stereo.ndim == 2 and stereo.shape[1] == 2
        for u in d.utterances:
            path = ses / "sentences" / "wav" / d.name / f"{u.uid}.wav"
            info = sf.info(path)
            assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
            assert abs(info.frames / 16000 - (u.end - u.start)) <= 1 / 16000
            # the dialog wav holds it in the speaker's channel (0 = dialog-letter actor)
            x, _ = sf.read(path, dtype="int16")
            at = int(round(u.start * 16000))
            channel = 0 if u.speaker == d.letter else 1
            np.testing.assert_array_equal(stereo[at : at + len(x), channel], x)


def _pitch(x: np.ndarray, rate: int = 16000) -> float:
    """Median autocorrelation pitch over the louder 40 ms frames."""
    n = int(0.04 * rate)
    level = np.sqrt(np.mean(x**2))
    found = []
    for s in range(0, len(x) - n, n // 2):
        w = x[s : s + n] * np.hanning(n)
        if np.sqrt(np.mean(w**2)) < 0.3 * level:
            continue
        ac = np.fft.irfft(np.abs(np.fft.rfft(w, 2 * n)) ** 2)[:n]
        lo, hi = rate // 400, rate // 70
        found.append(rate / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(found))


def test_voice_pitch_gives_gender_and_energy_gives_arousal(corpus):
    root, _ = corpus
    pitch, rms, gender, emotion = [], [], [], []
    for d in demo.plan_corpus(CFG):
        for u in d.utterances:
            x, _ = sf.read(root / f"Session{d.session}" / "sentences" / "wav" / d.name / f"{u.uid}.wav")
            pitch.append(_pitch(x))
            rms.append(np.sqrt(np.mean(x**2)))
            gender.append(u.uid[-4])
            emotion.append(u.emotion)
    pitch, rms = np.array(pitch), np.array(rms)
    female = np.array(gender) == "F"
    assert female.any() and (~female).any()
    assert np.mean((pitch > 160) == female) >= 0.9  # one threshold separates the genders
    high = np.isin(emotion, ["ang", "hap", "exc"])
    neutral = np.array(emotion) == "neu"
    sad = np.array(emotion) == "sad"
    assert high.sum() >= 3 and neutral.sum() >= 3 and sad.sum() >= 2
    # aroused utterances are louder than neutral ones, which are louder than sad ones
    low = neutral | sad
    assert np.mean(rms[high][:, None] > rms[low][None, :]) >= 0.9
    assert rms[high].mean() > rms[neutral].mean() > rms[sad].mean()


# ----------------------------------------------------------------------------- video


def _frames(path: Path, indices) -> tuple[list[np.ndarray], float, int]:
    cap = cv2.VideoCapture(str(path))
    fps, count = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    out = []
    for i in indices:
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, frame = cap.read()
        assert ok, (path, i)
        out.append(frame)
    cap.release()
    return out, fps, count


def test_video_is_720x480_with_bars_and_covers_the_dialog(corpus):
    root, _ = corpus
    for d in demo.plan_corpus(CFG):
        path = root / f"Session{d.session}" / "dialog" / "avi" / "DivX" / f"{d.name}.avi"
        (frame,), fps, count = _frames(path, [0])
        assert frame.shape == (480, 720, 3)
        assert fps == pytest.approx(29.97, abs=0.01)
        assert count / fps >= d.utterances[-1].end
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        assert gray[:118].max() < 20 and gray[364:].max() < 20  # black bars
        assert gray[126:356, 360].max() < 20  # black gap between the views
        assert gray[126:356, 10:350].mean() > 40 and gray[126:356, 368:710].mean() > 40


def test_mocap_actor_is_left_and_speaker_shows_the_emotion(corpus):
    root, _ = corpus
    top = demo.CONTENT_ROWS[0]
    checked = Counter()
    for d in demo.plan_corpus(CFG):
        speakers = demo.plan_speakers(CFG, d.session)
        track = demo.face_track(d, speakers, CFG)
        views = demo.view_columns(d)
        assert views[d.letter] == demo.LEFT_COLS and views[d.other] == demo.RIGHT_COLS
        path = root / f"Session{d.session}" / "dialog" / "avi" / "DivX" / f"{d.name}.avi"
        mids = [int((u.start + u.end) / 2 * CFG.fps) for u in d.utterances]
        frames, _, _ = _frames(path, mids)
        for u, i, frame in zip(d.utterances, mids, frames):
            left = d.letter
            x, y = track[left][i]
            s = speakers[left].face_px
            x0 = demo.LEFT_COLS[0]
            crop = frame[top + y : top + y + s, x0 + x : x0 + x + s].astype(float)
            shown = demo.face_image(speakers[left], u.emotion, u.face_intensity) if u.speaker == left \
                else demo.face_image(speakers[left])
            other = speakers[d.other]
            wrong = cv2.resize(demo.face_image(other), (s, s)).astype(float)
            err = np.abs(crop - shown).mean()
            assert err < 12, (u.uid, err)  # the left view shows the dialog-letter actor ...
            assert np.abs(crop - wrong).mean() > 2 * err  # ... and not the other one
            checked[u.speaker == left] += 1
    assert checked[True] > 0 and checked[False] > 0


def test_face_cues_carry_valence_strongly_and_sadness_weakly():
    speaker = demo.plan_speakers(CFG, 1)["F"]
    neutral = demo.face_image(speaker).astype(float)

    def dist(emotion: str) -> float:
        return float(np.abs(demo.face_image(speaker, emotion, 1.0).astype(float) - neutral).mean())

    assert dist("neu") == 0
    assert dist("ang") > 3 * dist("sad") and dist("hap") > 2 * dist("sad") > 0
    assert np.abs(demo.face_image(speaker, "ang", 1.0).astype(float)
                  - demo.face_image(speaker, "hap", 1.0).astype(float)).mean() > 2 * dist("sad")


def test_cascade_detector_finds_the_faces(corpus):
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    cascade = Cascade(lbp_frontal_face_cascade_filename())
    root, _ = corpus
    top, bottom = demo.CONTENT_ROWS
    hits = total = 0
    for d in demo.plan_corpus(CFG)[::2]:
        speakers = demo.plan_speakers(CFG, d.session)
        track = demo.face_track(d, speakers, CFG)
        indices = np.linspace(0, len(track[d.letter]) - 1, 8).astype(int)
        path = root / f"Session{d.session}" / "dialog" / "avi" / "DivX" / f"{d.name}.avi"
        frames, _, _ = _frames(path, indices)
        for i, frame in zip(indices, frames):
            for letter, (x0, x1) in demo.view_columns(d).items():
                view = cv2.cvtColor(frame[top:bottom, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
                found = cascade.detect_multi_scale(
                    img=view, scale_factor=1.2, step_ratio=1, min_size=(60, 60), max_size=(220, 220)
                )
                x, y = track[letter][i]
                s = speakers[letter].face_px
                total += 1
                hits += any(  # a detection centred on the drawn face
                    abs(f["c"] + f["width"] / 2 - (x + s / 2)) < s / 4
                    and abs(f["r"] + f["height"] / 2 - (y + s / 2)) < s / 4
                    for f in found
                )
    assert hits / total > 0.8, f"{hits}/{total}"


# ----------------------------------------------------------------------------- determinism, atomicity, params

TINY = dataclasses.replace(CFG, sessions=(1,), improvised_per_session=2, scripted_per_session=0,
                           utterances_per_dialog=3)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = file_hashes(_written(tmp_path / "a", TINY))
    b = file_hashes(_written(tmp_path / "b", TINY))
    assert a == b and len(a) > 20
    parallel = file_hashes(_written(tmp_path / "p", dataclasses.replace(TINY, workers=2)))
    assert parallel == a
    c = file_hashes(_written(tmp_path / "c", dataclasses.replace(TINY, seed=TINY.seed + 1)))
    assert c != a


def test_more_dialogs_leave_existing_ones_unchanged():
    small = {d.name: d for d in demo.plan_corpus(TINY)}
    bigger = dataclasses.replace(TINY, improvised_per_session=3, scripted_per_session=1, sessions=(1, 2))
    more = {d.name: d for d in demo.plan_corpus(bigger)}
    assert all(more[name] == d for name, d in small.items())


def _written(parent: Path, cfg: demo.DemoConfig) -> Path:
    root = parent / "IEMOCAP_full_release"
    demo.write_demo_corpus(root, cfg)
    return root


def test_rewrite_replaces_the_tree_and_a_failed_run_keeps_the_old_one(tmp_path, monkeypatch):
    root = _written(tmp_path, TINY)
    (root / "stale.txt").write_text("from an older run")
    before = file_hashes(_written(tmp_path, TINY))
    assert "stale.txt" not in before
    names = []
    monkeypatch.setattr(demo.tree, "render_video", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        demo.write_demo_corpus(root, TINY, progress=names.append)
    assert file_hashes(root) == before  # the complete old tree is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IEMOCAP_full_release"]  # no half tree left


def test_progress_is_called_once_per_dialog(tmp_path):
    names = []
    demo.write_demo_corpus(tmp_path / "IEMOCAP_full_release", TINY, progress=names.append)
    assert names == demo.dialog_names(TINY)


def test_params_section_builds_and_bad_values_name_the_key():
    cfg = build(demo.DemoConfig, {"demo": {"seed": 3, "sessions": [2, 4], "face_cue": 0.5}}, "demo")
    assert cfg.sessions == (2, 4) and cfg.face_cue == 0.5 and cfg.seed == 3
    assert build(demo.DemoConfig, {"demo": {}}, "demo") == demo.DemoConfig()
    for bad, key in (
        ({"sessions": [6]}, "demo.sessions"),
        ({"audio_cue": 2.5}, "demo.audio_cue"),
        ({"improvised_per_session": 99}, "demo.improvised_per_session"),
        ({"min_seconds": 5.0, "max_seconds": 2.0}, "demo.min_seconds"),
        ({"utterance_per_dialog": 3}, "demo.utterance_per_dialog"),
    ):
        with pytest.raises(ParamsError, match=re.escape(key)):
            build(demo.DemoConfig, {"demo": bad}, "demo")
