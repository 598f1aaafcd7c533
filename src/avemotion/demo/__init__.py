"""Demo corpus: a small generated tree in IEMOCAP_full_release's exact on-disk layout.

IEMOCAP is licensed, so the pipeline cannot ship it; this module writes a stand-in that
has the real layout and file formats (as described in IEMOCAP.md) and signals a network
can learn, so that every stage runs end to end on any machine and the model comparison
means something.

What a dialog holds:

- ``SessionN/dialog/EmoEvaluation/<dialog>.txt`` in the corpus' format: header line,
  blank-line-separated blocks, TAB separators, LF endings; three external raters
  (``C-E<n>``, three of E1..E6) per utterance, self ratings by the speaking actor
  (``C-F<n>``/``C-M<n>``), dimensional ``A-`` lines (``dom  2`` with two spaces, a few
  without ``dom``), multi-category and empty ratings, ``Neutral state``, free comments.
  Utterances are numbered per speaker (``_F000, _F001, ..``, ``_M000, ..``), in time
  order. The summary code is the category listed by at least two of the three external
  raters (``Neutral state`` counts as Neutral; an empty rating counts for nothing), else
  ``xxx`` (a split vote); two categories with two votes each are never drawn.
- ``SessionN/sentences/wav/<dialog>/<utterance>.wav``: 16 kHz mono PCM16, exactly
  ``round((end - start) * 16000)`` samples.
- ``SessionN/dialog/wav/<dialog>.wav``: stereo, channel 0 the actor named by the dialog
  letter, channel 1 the other one.
- ``SessionN/dialog/avi/DivX/<dialog>.avi``: 720x480 MPEG-4 (fourcc DIVX), two camera
  views side by side between black bars; the dialog-letter actor (the mocap wearer) in
  the LEFT view, the other in the RIGHT; each view shows its actor's face (a real face
  from scikit-image's LFW subset, upscaled and tinted) drifting slowly on a smooth path.
- ``SessionN/dialog/transcriptions/<dialog>.txt``, ignored ``EmoEvaluation/Categorical/``,
  ``Attribute/``, ``Self-evaluation/`` files, and a few macOS ``._<name>`` sidecars of
  garbage bytes beside real files, so a parser's skipping is exercised.

The signals. Each utterance has a true emotion that drives the raters' votes, the audio
and the face. The audio (a harmonic voice with formants, syllables and pauses) carries
mostly arousal: anger, happiness and excitement are high, fast and loud with a wide pitch
range, sadness low, slow and quiet, neutral in between, so anger and happiness sound
alike. The face carries mostly valence: a smile for happiness/excitement, lowered brows,
a tight mouth and a red flush for anger, only a faint frown for sadness, nothing for
neutral. So neither modality alone separates the four classes; both together do. Gender
comes from the voice (F0 about 200-240 Hz female, 100-130 Hz male, per speaker) and from
the face (one identity per speaker, warm tints for women and cool tints for men). The
listener's face stays neutral.

Everything is drawn from numpy Generators seeded by ``DemoConfig.seed`` and the item's
identity (session, dialog, utterance), never from global state or time: the same config
gives the same bytes, and asking for more dialogs leaves the existing ones unchanged.

Where each part lives:

- ``layout``: what is copied from IEMOCAP's files (frame geometry, category words,
  dialog names, the odd ones first).
- ``config``: `DemoConfig`, the params section ``demo``.
- ``plan``: speakers, dialogs, utterances, true emotions, ratings and dimensional
  ratings, each drawn from its own seeded generator; the emotions' tables (how often,
  how raters confuse them, their arousal and valence-arousal-dominance).
- ``text``: the EmoEvaluation file, the transcription and the ignored rating files.
- ``voice``: the synthetic voice and how it carries arousal and gender.
- ``face``: each speaker's face and the emotion's cue drawn on it.
- ``video``: the two-view dialog video and the faces' paths in it.
- ``tree``: every file of a dialog, the dialogs in parallel, the tree written atomically
  (`write_demo_corpus`).

Example (what the ``demo`` stage runs)::

    summary = write_demo_corpus(Path("data/demo/IEMOCAP_full_release"), DemoConfig())
    summary["utterances"]  # 225: 5 sessions x 3 dialogs x 15
"""

from .layout import (
    CATEGORY_WORDS,
    CONTENT_ROWS,
    FOURCC,
    FRAME_HEIGHT,
    FRAME_WIDTH,
    LEFT_COLS,
    ODD_IMPROVISED,
    ODD_SCRIPTED,
    RIGHT_COLS,
    SAMPLE_RATE,
    SCRIPTS,
    WORD_CODES,
    improvised_names,
    scripted_names,
)
from .config import (
    DemoConfig,
)
from .plan import (
    AROUSAL,
    Attribute,
    COMMENTS,
    CONFUSIONS,
    Dialog,
    EMOTION_WEIGHTS,
    FEMALE_FACES,
    MALE_FACES,
    Rating,
    SEED_AUDIO,
    SEED_DIALOG,
    SEED_SESSION,
    SEED_SIDECAR,
    SEED_SPEAKER,
    SEED_UTTERANCE,
    SEED_VIDEO,
    Speaker,
    Utterance,
    VAD_MEANS,
    WORDS,
    dialog_names,
    plan_corpus,
    plan_dialog,
    plan_speakers,
    seeded_rng,
    slot_index,
    summary_code,
)
from .text import (
    HEADER,
    README,
    emo_evaluation_text,
    ignored_files,
    transcription_text,
)
from .voice import (
    VOWELS,
    synth_voice,
    to_pcm16,
)
from .face import (
    FACE_CUES,
    face_image,
)
from .video import (
    face_track,
    n_frames,
    render_video,
    view_columns,
)
from .tree import (
    FOUR_CLASS,
    write_demo_corpus,
    write_dialog,
)

__all__ = [
    "AROUSAL",
    "Attribute",
    "CATEGORY_WORDS",
    "COMMENTS",
    "CONFUSIONS",
    "CONTENT_ROWS",
    "DemoConfig",
    "Dialog",
    "EMOTION_WEIGHTS",
    "FACE_CUES",
    "FEMALE_FACES",
    "FOURCC",
    "FOUR_CLASS",
    "FRAME_HEIGHT",
    "FRAME_WIDTH",
    "HEADER",
    "LEFT_COLS",
    "MALE_FACES",
    "ODD_IMPROVISED",
    "ODD_SCRIPTED",
    "README",
    "RIGHT_COLS",
    "Rating",
    "SAMPLE_RATE",
    "SCRIPTS",
    "SEED_AUDIO",
    "SEED_DIALOG",
    "SEED_SESSION",
    "SEED_SIDECAR",
    "SEED_SPEAKER",
    "SEED_UTTERANCE",
    "SEED_VIDEO",
    "Speaker",
    "Utterance",
    "VAD_MEANS",
    "VOWELS",
    "WORDS",
    "WORD_CODES",
    "dialog_names",
    "emo_evaluation_text",
    "face_image",
    "face_track",
    "ignored_files",
    "improvised_names",
    "n_frames",
    "plan_corpus",
    "plan_dialog",
    "plan_speakers",
    "render_video",
    "scripted_names",
    "seeded_rng",
    "slot_index",
    "summary_code",
    "synth_voice",
    "to_pcm16",
    "transcription_text",
    "view_columns",
    "write_demo_corpus",
    "write_dialog",
]
