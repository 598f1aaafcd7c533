"""Fixed-length int16 audio: crop, pad, true length, and refusal of wrong files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from avemotion import audio
from avemotion.config import ParamsError, build

SR = 16000


def wav(path, n, rate=SR, channels=1, subtype="PCM_16"):
    rng = np.random.default_rng(n)
    x = rng.integers(-20000, 20000, size=(n, channels) if channels > 1 else n).astype(np.int16)
    sf.write(str(path), x, rate, subtype=subtype)
    return x


def test_longer_utterance_is_cropped_to_its_first_seconds(tmp_path):
    x = wav(tmp_path / "long.wav", 8 * SR)
    y, n = audio.load_fixed(tmp_path / "long.wav", seconds=6.0)
    assert y.dtype == np.int16 and y.shape == (96000,)
    assert n == 96000
    np.testing.assert_array_equal(y, x[:96000])


def test_shorter_utterance_is_zero_padded_and_keeps_its_true_length(tmp_path):
    x = wav(tmp_path / "short.wav", 12345)
    y, n = audio.load_fixed(tmp_path / "short.wav", seconds=6.0)
    assert y.shape == (96000,) and n == 12345
    np.testing.assert_array_equal(y[:12345], x)
    assert not y[12345:].any()


def test_exact_length_and_other_fixed_lengths(tmp_path):
    x = wav(tmp_path / "exact.wav", 3 * SR)
    y, n = audio.load_fixed(tmp_path / "exact.wav", seconds=3.0)
    assert n == 3 * SR
    np.testing.assert_array_equal(y, x)
    assert audio.AudioConfig(seconds=3.0).samples() == 48000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rate=44100), "44100 Hz, expected 16000 Hz"),
        (dict(rate=8000), "8000 Hz, expected 16000 Hz"),
        (dict(channels=2), "2 channels, expected mono"),
        (dict(subtype="FLOAT"), "FLOAT, expected PCM_16"),
    ],
)
def test_wrong_wavs_are_refused_with_the_file_named(tmp_path, kwargs, message):
    path = tmp_path / "Ses01F_impro01_F000.wav"
    wav(path, 1000, **kwargs)
    with pytest.raises(audio.AudioFormatError, match=message) as e:
        audio.load_fixed(path, seconds=6.0)
    assert "Ses01F_impro01_F000.wav" in str(e.value)
    assert isinstance(e.value, ValueError)  # the shard stage turns ValueErrors into rejects


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        audio.load_fixed(tmp_path / "nope.wav", seconds=6.0)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF1234WAVE")
    with pytest.raises(audio.AudioFormatError, match="bad.wav"):
        audio.load_fixed(bad, seconds=6.0)


def test_fix_length_is_pure():
    y, n = audio.fix_length(np.arange(5, dtype=np.int16), 3)
    assert y.tolist() == [0, 1, 2] and n == 3
    y, n = audio.fix_length(np.arange(2, dtype=np.int16), 4)
    assert y.tolist() == [0, 1, 0, 0] and n == 2


def test_audio_config_checks_seconds():
    assert build(audio.AudioConfig, {"audio": {"seconds": 6}}, "audio").seconds == 6.0
    with pytest.raises(ParamsError, match="audio.seconds"):
        build(audio.AudioConfig, {"audio": {"seconds": -1}}, "audio")
