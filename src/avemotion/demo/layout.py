"""What the demo copies from IEMOCAP's files: frame geometry, category words, dialog names."""

# Properties of IEMOCAP's files (IEMOCAP.md), not tunable: the pipeline checks them.

SAMPLE_RATE = 16000
FRAME_WIDTH, FRAME_HEIGHT = 720, 480
#: rows [top, bottom) holding picture between the black bars
CONTENT_ROWS = (122, 360)
#: columns [left, right) of the two camera views
LEFT_COLS = (7, 354)
RIGHT_COLS = (365, 714)
FOURCC = "DIVX"

#: summary codes and the category word each stands for in ``C-`` lines
CATEGORY_WORDS = {
    "neu": "Neutral",
    "fru": "Frustration",
    "ang": "Anger",
    "sad": "Sadness",
    "hap": "Happiness",
    "exc": "Excited",
    "sur": "Surprise",
    "fea": "Fear",
    "dis": "Disgust",
    "oth": "Other",
}
WORD_CODES = {word: code for code, word in CATEGORY_WORDS.items()} | {"Neutral state": "neu"}

#: dialog names that break fixed-position slicing; they come first in their session's
#: list so that even a small demo contains them
ODD_IMPROVISED = {3: ("Ses03M_impro05a", "Ses03M_impro05b", "Ses03M_impro08a", "Ses03M_impro08b")}
ODD_SCRIPTED = {5: ("Ses05M_script01_1b",)}
SCRIPTS = ((1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 1), (3, 2))


def improvised_names(session: int) -> list[str]:
    """Improvised dialog names of a session, odd ones (``Ses03M_impro05a``) first."""
    odd = ODD_IMPROVISED.get(session, ())
    regular = [f"Ses0{session}{letter}_impro{n:02d}" for n in range(1, 9) for letter in "FM"]
    regular = [n for n in regular if not any(o.startswith(n) for o in odd)]
    return [*odd, *regular]


def scripted_names(session: int) -> list[str]:
    """Scripted dialog names of a session, odd ones (``Ses05M_script01_1b``) first."""
    regular = [f"Ses0{session}{letter}_script{a:02d}_{b}" for a, b in SCRIPTS for letter in "FM"]
    return [*ODD_SCRIPTED.get(session, ()), *regular]
