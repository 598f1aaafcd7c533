"""Frame reading by index, views, and the alignment of frames with audio time steps."""

from __future__ import annotations

import pytest

from avemotion import video
from avemotion.config import ParamsError, build
from video_fixture import (
    frame_number,
    truncate,
    write_empty_clip,
    write_numbered_clip,
    write_numbered_clip_with_b_frames,
    zero_middle,
)


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    return write_numbered_clip(tmp_path_factory.mktemp("video") / "numbered.avi", n_frames=300)


def test_steps_cover_the_first_seconds_of_audio():
    assert video.n_steps_total(6.0, 25.0) == 150
    assert video.n_steps_total(3.0, 5.0) == 15
    # 2.0 s of audio is exactly 50 steps at 25 fps (no float round-up to 51)
    assert video.n_steps_valid(32000, 16000, 6.0, 25.0) == 50
    assert video.n_steps_valid(32001, 16000, 6.0, 25.0) == 51  # a partial step counts
    assert video.n_steps_valid(10 * 16000, 16000, 6.0, 25.0) == 150  # cropped to T


def test_step_frame_is_the_frame_at_the_step_centre():
    # 25 steps/s on 30 frames/s: step centres 10.02, 10.06, 10.10, 10.14 s
    assert video.step_frames(10.0, 4, 25.0, 30.0).tolist() == [300, 301, 303, 304]
    # equal rates: one frame per step, no frame skipped or repeated
    assert video.step_frames(2.0, 5, 30.0, 30.0).tolist() == [60, 61, 62, 63, 64]
    # fewer steps than frames: every 6th frame at 5 fps on 30
    assert video.step_frames(0.0, 3, 5.0, 30.0).tolist() == [3, 9, 15]


def test_views_split_the_frame_in_halves():
    assert video.view_columns(720, "left") == (0, 360)
    assert video.view_columns(720, "right") == (360, 720)
    with pytest.raises(ValueError, match="'left' or 'right'"):
        video.view_columns(720, "middle")


def test_video_config_rejects_nonpositive_fps():
    assert build(video.VideoConfig, {"video": {"fps": 25}}, "video").fps == 25.0
    with pytest.raises(ParamsError, match="video.fps"):
        build(video.VideoConfig, {"video": {"fps": 0}}, "video")


def test_reader_returns_exact_frames_in_any_pattern_of_jumps(numbered):
    with video.FrameReader(numbered) as reader:
        assert reader.info.fps == pytest.approx(30.0)
        assert reader.info.frame_count == 300
        assert (reader.info.width, reader.info.height) == (720, 480)
        # forward steps, a long jump (seek), a repeated frame, a jump back (seek)
        for indices in ([0, 1, 2, 5], [250, 251, 251, 299], [10, 12], [137]):
            frames = reader.read(indices)
            assert [frame_number(f) for f in frames] == indices


def test_reader_index_outside_the_video_is_a_bug_not_a_reject(numbered):
    with video.FrameReader(numbered) as reader, pytest.raises(IndexError):
        reader.read([300])


def test_missing_garbage_and_empty_videos_are_named_errors(tmp_path):
    with pytest.raises(video.VideoError) as e:
        video.FrameReader(tmp_path / "nope.avi", shown="Session1/dialog/avi/DivX/nope.avi")
    assert e.value.reason == "video_missing" and "Session1/dialog/avi/DivX/nope.avi" in e.value.detail
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video" * 100)
    with pytest.raises(video.VideoError) as e:
        video.FrameReader(garbage)
    assert e.value.reason == "video_unreadable"
    with pytest.raises(video.VideoError) as e:
        video.FrameReader(write_empty_clip(tmp_path / "empty.avi"))
    assert e.value.reason == "video_unreadable" and "no frames" in e.value.detail


def test_truncated_video_fails_only_past_the_cut(numbered, tmp_path):
    cut = truncate(numbered, tmp_path / "cut.avi", 0.5)
    with video.FrameReader(cut) as reader:
        assert [frame_number(f) for f in reader.read([10, 11])] == [10, 11]
        with pytest.raises(video.VideoError) as e:
            reader.read([280, 281])
        assert e.value.reason == "video_decode" and "truncated" in e.value.detail
        # the reader recovers for frames before the cut
        assert [frame_number(f) for f in reader.read([20])] == [20]


def test_reader_can_keep_one_view_only(numbered):
    with video.FrameReader(numbered) as reader:
        full = reader.read([40, 41])
        right = reader.read([40, 41], columns=video.view_columns(720, "right"))
    assert [f.shape for f in right] == [(480, 360, 3)] * 2
    assert all((r == f[:, 360:]).all() for r, f in zip(right, full))


# ----------------------------------------------------------------------------- seek check


@pytest.fixture(scope="module")
def b_frames(tmp_path_factory):
    av = pytest.importorskip("av")
    path = write_numbered_clip_with_b_frames(tmp_path_factory.mktemp("bframes") / "Ses01F_impro01.avi")
    with av.open(str(path)) as c:
        kinds = {str(f.pict_type).rsplit(".", 1)[-1] for f in c.decode(video=0)}
    assert "B" in kinds or "3" in kinds, kinds  # the file really has B-frames
    return path


_REAL_CAPTURE = video.cv2.VideoCapture


class OffByTwo:
    """A cv2.VideoCapture whose seeks land two frames late, as a bad index can make them."""

    def __init__(self, path, *args):
        self._cap = _REAL_CAPTURE(path, *args)

    def set(self, prop, value):
        import cv2

        if prop == cv2.CAP_PROP_POS_FRAMES:
            value += 2
        return self._cap.set(prop, value)

    def __getattr__(self, name):
        return getattr(self._cap, name)


def test_seeks_in_a_file_with_b_frames_are_checked_against_forward_decoding(b_frames):
    assert video.seek_is_exact(b_frames, [150, 151, 153])
    with video.FrameReader(b_frames) as r:  # seeks across long gaps and back
        assert [frame_number(f) for f in r.read([200, 201, 203])] == [200, 201, 203]
        assert [frame_number(f) for f in r.read([10, 12, 290])] == [10, 12, 290]


def test_an_inexact_seek_is_caught_and_the_video_decoded_forward(b_frames, monkeypatch):
    from avemotion import faces

    monkeypatch.setattr(video.cv2, "VideoCapture", OffByTwo)
    with video.FrameReader(b_frames) as r:  # what went unnoticed: wrong frames, no error
        assert [frame_number(f) for f in r.read([200, 201])] == [202, 203]
    assert not video.seek_is_exact(b_frames, [200, 201])
    jobs = [
        faces.FaceJob(f"Ses01F_impro01_F00{i}", 1, "Ses01F_impro01", "F", "left", start, start + 1.0,
                      b_frames.name, 10, dialog_letter="F")
        for i, start in enumerate((6.7, 1.0, 8.0))
    ]
    checked, forward = faces.check_seeks(jobs, b_frames.parent, fps=10.0)
    assert forward == [b_frames.name] and not any(j.seek for j in checked)
    assert faces.chunk_jobs(checked) == [checked]  # one pass over the video
    with video.FrameReader(b_frames, seek=False) as r:
        assert [frame_number(f) for f in r.read([200, 201, 290])] == [200, 201, 290]
        assert [frame_number(f) for f in r.read([5, 150])] == [5, 150]  # back: reopened, not seeked


def test_zeros_in_the_middle_give_a_corrupt_reject_never_a_wrong_frame(numbered, tmp_path):
    bad = zero_middle(numbered, tmp_path / "zeros.avi", 0.2)
    corrupt, good = [], 0
    with video.FrameReader(bad, shown="zeros.avi") as reader:
        # utterance-sized reads in order, as the faces stage makes them: each one either
        # gives exactly the frames asked for or fails naming the damaged frame
        for first in range(0, 300, 20):
            wanted = list(range(first, first + 20, 3))
            try:
                frames = reader.read(wanted)
            except video.VideoError as exc:
                assert exc.reason in ("video_corrupt", "video_decode"), exc.detail
                if exc.reason == "video_corrupt":
                    corrupt.append(exc.detail)
                continue
            assert [frame_number(f) for f in frames] == wanted
            good += 1
    assert corrupt, "the damage was not reported"
    assert good >= 5  # what lies before the damage is read as usual
    assert corrupt[0].startswith("zeros.avi: the decoder reported damaged data at frame ")
    assert "marker does not match" in corrupt[0] or "mpeg4" in corrupt[0]
    assert "0x" not in corrupt[0]  # no memory address: the same message on every run


def test_an_intact_video_reports_no_damage(numbered, capfd):
    with video.FrameReader(numbered) as reader:
        frames = reader.read(list(range(0, 300, 7)))
    assert [frame_number(f) for f in frames] == list(range(0, 300, 7))
    assert capfd.readouterr().err == ""  # standard error is given back as it was
