"""A tiny IEMOCAP-format tree written by hand from IEMOCAP.md (not by the demo generator).

The EmoEvaluation text below is typed out in the corpus' exact format: header line,
blank-line-separated blocks, TAB separators, ``dom  2`` with two spaces, self ratings,
multi-category and empty ratings, ``Neutral state``, odd dialog names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

T = "\t"

# Session 1, improvised. F000: plain neutral. M001: speaker letter differs from the dialog
# letter (right view); self rating (C-M1) would flip the vote to Anger if counted.
# F002: multi-category rating (Frustration; Anger;) and an empty rating -> Anger 2 votes.
# M003: three different categories: a three-way tie (summary xxx).
SES01F_IMPRO01 = f"""% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]{T}Ses01F_impro01_F000{T}neu{T}[2.5000, 2.5000, 2.5000]
C-E2:{T}Neutral;{T}()
C-E3:{T}Neutral;{T}()
C-E4:{T}Neutral;{T}()
C-F1:{T}Neutral;{T}(curious)
A-E3:{T}val 3; act 2; dom  2;{T}()
A-E4:{T}val 2; act 3; dom  3;{T}(attitude)
A-F1:{T}val 3; act 2; dom  1;{T}()

[10.0100 - 11.3925]{T}Ses01F_impro01_M001{T}sad{T}[2.0000, 2.0000, 2.5000]
C-E1:{T}Sadness;{T}()
C-E2:{T}Sadness;{T}()
C-E3:{T}Anger;{T}()
C-M1:{T}Anger;{T}(he was angry)
C-M2:{T}Anger;{T}()
A-E1:{T}val 2; act 2; dom  3;{T}()
A-M1:{T}val 1; act 4; dom  4;{T}()

[12.0000 - 14.5000]{T}Ses01F_impro01_F002{T}ang{T}[1.5000, 4.0000, 4.0000]
C-E2:{T}Frustration; Anger;{T}(raised voice)
C-E3:{T}Anger;{T}()
C-E4:{T};{T}()
C-F2:{T}Frustration; Other;{T}(disbelief)
A-E2:{T}val 1; act 4;{T}()

[15.1000 - 17.0000]{T}Ses01F_impro01_M003{T}xxx{T}[3.0000, 3.0000, 3.0000]
C-E1:{T}Neutral state;{T}()
C-E2:{T}Happiness;{T}()
C-E3:{T}Sadness;{T}()
C-M1:{T};{T}()
A-E1:{T}val 3; act 3; dom  3;{T}()
"""

# Session 3 with odd names: Ses03M_impro05a (speaker F != dialog letter M) and a scripted one.
SES03M_IMPRO05A = f"""% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[1.0000 - 3.0000]{T}Ses03M_impro05a_F000{T}exc{T}[4.0000, 4.0000, 3.0000]
C-E1:{T}Excited;{T}()
C-E5:{T}Excited; Happiness;{T}()
C-E6:{T}Happiness;{T}()
C-F1:{T}Excited;{T}()
A-E1:{T}val 4; act 4; dom  3;{T}()

[3.5000 - 5.2500]{T}Ses03M_impro05a_M001{T}neu{T}[3.0000, 2.0000, 2.5000]
C-E1:{T}Neutral;{T}()
C-E5:{T}Neutral;{T}()
C-E6:{T}Frustration;{T}()
A-E1:{T}val 3; act 2; dom  2;{T}()
"""

SES03M_SCRIPT01_1B = f"""% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[0.5000 - 2.5000]{T}Ses03M_script01_1b_M000{T}fru{T}[2.0000, 3.5000, 3.5000]
C-E1:{T}Frustration;{T}()
C-E2:{T}Frustration;{T}()
C-E3:{T}Anger;{T}()
A-E1:{T}val 2; act 4; dom  4;{T}()
"""

LABEL_FILES = {
    1: {"Ses01F_impro01": SES01F_IMPRO01},
    3: {"Ses03M_impro05a": SES03M_IMPRO05A, "Ses03M_script01_1b": SES03M_SCRIPT01_1B},
}


def write_wav(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(int(round(seconds * rate)), 0)
    t = np.arange(n) / rate
    x = (0.3 * np.sin(2 * np.pi * 180 * t) * 32767).astype(np.int16)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    sf.write(str(path), x, rate, subtype="PCM_16")


def make_tree(root: Path, label_files=LABEL_FILES, sessions=(1, 2, 3, 4, 5)) -> Path:
    """Write the hand-made tree under `root` (= the IEMOCAP_full_release folder)."""
    import re

    (root / "Documentation").mkdir(parents=True, exist_ok=True)
    (root / "Documentation" / "README.txt").write_text("fixture\n")
    for s in sessions:
        emo = root / f"Session{s}" / "dialog" / "EmoEvaluation"
        emo.mkdir(parents=True, exist_ok=True)
        for sub in ("Categorical", "Attribute", "Self-evaluation"):
            (emo / sub).mkdir(exist_ok=True)
            (emo / sub / "Ses0X_impro01_e1_cat.txt").write_text("not a label file\n")
        for dialog, text in label_files.get(s, {}).items():
            (emo / f"{dialog}.txt").write_text(text)
            (emo / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07Mac OS X garbage")
            for m in re.finditer(r"\[(\S+) - (\S+)\]\t(\S+)\t", text):
                start, end, utt = float(m[1]), float(m[2]), m[3]
                write_wav(root / f"Session{s}" / "sentences" / "wav" / dialog / f"{utt}.wav", end - start)
    return root
