"""The IEMOCAP tree on disk: walking it, parsing EmoEvaluation files, checking wavs.

Layout (see IEMOCAP.md)::

    IEMOCAP_full_release/
      Session1/ ... Session5/
        dialog/EmoEvaluation/<dialog>.txt       labels, one block per utterance
        dialog/avi/DivX/<dialog>.avi            both actors side by side
        sentences/wav/<dialog>/<utterance>.wav  16 kHz mono, one per utterance

Facts this module relies on, and why:

- Names are parsed with regular expressions, never by character index: five dialog
  names (``Ses03M_impro05a``, ``Ses05M_script01_1b``, ...) break fixed positions.
- The speaker's gender is the letter of the utterance suffix (``..._F000``). The letter
  after ``Ses0N`` names the actor wearing motion-capture markers, who sits in the LEFT
  camera view; so the speaker is in the left view when the two letters agree.
- ``C-E<n>`` lines are the external annotators; ``C-F<n>``/``C-M<n>`` are the speaking
  actor rating themself and are kept apart (labels count only external votes).
- Only ``EmoEvaluation/*.txt`` at the top level are label files; the subfolders
  ``Categorical/``, ``Attribute/``, ``Self-evaluation/`` and macOS ``._*`` sidecars are
  ignored (and counted, so nothing disappears unexplained).

Where each part lives:

- ``config``: `CorpusConfig` (params section ``corpus``) and `CorpusError`.
- ``emo_evaluation``: names, the EmoEvaluation file format, ratings and external votes.
- ``tree``: the corpus root, the selected label files, the paths of wavs and videos.
- ``wav``: the header check of an utterance wav.
- ``table``: `extract`: the utterances table and its rejects.

Example::

    >>> cfg = CorpusConfig(sessions=(1, 2, 3, 4, 5), dialogs="improvised")
    >>> result = extract("data/corpus", cfg)   # doctest: +SKIP
    >>> result.table.num_rows, len(result.rejects)  # doctest: +SKIP
"""

from .config import (
    CorpusConfig,
    CorpusError,
)
from .emo_evaluation import (
    CATEGORICAL_RE,
    CATEGORY_ALIASES,
    DIALOG_RE,
    DIMENSIONAL_RE,
    KNOWN_CATEGORIES,
    ParsedFile,
    Rating,
    SUMMARY_CODES,
    SUMMARY_RE,
    UTTERANCE_RE,
    Utterance,
    Votes,
    canonical_category,
    count_votes,
    parse_categories,
    parse_dialog_name,
    parse_emo_evaluation,
    read_text,
    split_categorical,
)
from .tree import (
    CorpusFiles,
    IGNORED_SUBFOLDERS,
    check_root,
    find_label_files,
    video_relpath,
    wav_relpath,
)
from .wav import (
    SAMPLE_RATE,
    WAV_SHORT_TOLERANCE_FRACTION,
    WAV_SHORT_TOLERANCE_S,
    WAV_SUBTYPE,
    WavInfo,
    check_wav,
    wav_shortfall_tolerance,
)
from .table import (
    DIMENSION_STRUCT,
    ExtractResult,
    RATING_STRUCT,
    UTTERANCE_SCHEMA,
    extract,
    iter_utterances,
)

__all__ = [
    "CATEGORICAL_RE",
    "CATEGORY_ALIASES",
    "CorpusConfig",
    "CorpusError",
    "CorpusFiles",
    "DIALOG_RE",
    "DIMENSIONAL_RE",
    "DIMENSION_STRUCT",
    "ExtractResult",
    "IGNORED_SUBFOLDERS",
    "KNOWN_CATEGORIES",
    "ParsedFile",
    "RATING_STRUCT",
    "Rating",
    "SAMPLE_RATE",
    "SUMMARY_CODES",
    "SUMMARY_RE",
    "UTTERANCE_RE",
    "UTTERANCE_SCHEMA",
    "Utterance",
    "Votes",
    "WAV_SHORT_TOLERANCE_FRACTION",
    "WAV_SHORT_TOLERANCE_S",
    "WAV_SUBTYPE",
    "WavInfo",
    "canonical_category",
    "check_root",
    "check_wav",
    "count_votes",
    "extract",
    "find_label_files",
    "iter_utterances",
    "parse_categories",
    "parse_dialog_name",
    "parse_emo_evaluation",
    "read_text",
    "split_categorical",
    "video_relpath",
    "wav_relpath",
    "wav_shortfall_tolerance",
]
