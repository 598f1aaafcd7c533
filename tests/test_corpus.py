"""The corpus parser on hand-written IEMOCAP-format text and trees, and on bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from avemotion import corpus
from avemotion.corpus import CorpusConfig, CorpusError
from iemocap_fixture import SES01F_IMPRO01, T, make_tree, write_wav


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "IEMOCAP_full_release")


def extract(root: Path, **kw):
    return corpus.extract(root, CorpusConfig(**kw))


def rows(result) -> dict[str, dict]:
    return {r["utterance_id"]: r for r in result.table.to_pylist()}


def test_names_are_parsed_by_pattern_not_position():
    for name, (session, letter, kind) in {
        "Ses01F_impro01": (1, "F", "impro"),
        "Ses03M_impro05a": (3, "M", "impro"),
        "Ses03M_impro08b": (3, "M", "impro"),
        "Ses05M_script01_1b": (5, "M", "script"),
        "Ses02F_script03_2": (2, "F", "script"),
    }.items():
        m = corpus.parse_dialog_name(name)
        assert (int(m["session"]), m["dialog_letter"], m["kind"]) == (session, letter, kind)
    m = corpus.UTTERANCE_RE.match("Ses05M_script01_1b_M012")
    assert (m["dialog"], m["speaker"], m["index"]) == ("Ses05M_script01_1b", "M", "012")
    m = corpus.UTTERANCE_RE.match("Ses03M_impro05a_F000")
    assert (m["dialog"], m["speaker"]) == ("Ses03M_impro05a", "F")
    with pytest.raises(CorpusError, match="not an IEMOCAP dialog name"):
        corpus.parse_dialog_name("Session1_impro")


def test_parse_emo_evaluation_block_contents(tmp_path: Path):
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text(SES01F_IMPRO01)
    parsed = corpus.parse_emo_evaluation(path)
    u = {x.utterance_id: x for x in parsed.utterances}
    assert list(u) == [
        "Ses01F_impro01_F000", "Ses01F_impro01_M001", "Ses01F_impro01_F002", "Ses01F_impro01_M003",
    ]
    f0 = u["Ses01F_impro01_F000"]
    assert (f0.start, f0.end, f0.summary_code) == (6.2901, 8.2357, "neu")
    assert (f0.valence, f0.activation, f0.dominance) == (2.5, 2.5, 2.5)
    assert [(r.rater, r.external) for r in f0.categorical] == [
        ("E2", True), ("E3", True), ("E4", True), ("F1", False),
    ]
    assert f0.categorical[3].comment == "curious"
    assert [(r.rater, r.valence, r.activation, r.dominance) for r in f0.dimensional] == [
        ("E3", 3, 2, 2), ("E4", 2, 3, 3), ("F1", 3, 2, 1),
    ]
    # the speaker letter, not the dialog letter, is the gender; it decides the view
    m1 = u["Ses01F_impro01_M001"]
    assert (m1.speaker, m1.dialog_letter, m1.view) == ("M", "F", "right")
    assert (f0.speaker, f0.view) == ("F", "left")
    # self ratings are kept apart from the external votes
    assert m1.external_votes == {"Sadness": 2, "Anger": 1}
    # multi-category rating = one vote per category; an empty rating gives none
    f2 = u["Ses01F_impro01_F002"]
    assert f2.external_votes == {"Anger": 2, "Frustration": 1}
    assert f2.categorical[2].categories == ()
    assert f2.categorical[3].categories == ("Frustration", "Other")
    assert f2.dimensional[0].dominance is None  # a few A- lines lack dom
    # 'Neutral state' is read as Neutral
    assert u["Ses01F_impro01_M003"].external_votes == {"Neutral": 1, "Happiness": 1, "Sadness": 1}
    assert all(x.problem is None for x in parsed.utterances)


def test_crlf_files_parse_the_same(tmp_path: Path):
    a, b = tmp_path / "Ses01F_impro01.txt", tmp_path / "b" / "Ses01F_impro01.txt"
    b.parent.mkdir()
    a.write_text(SES01F_IMPRO01)
    b.write_bytes(SES01F_IMPRO01.replace("\n", "\r\n").encode())
    pa_, pb = corpus.parse_emo_evaluation(a), corpus.parse_emo_evaluation(b)
    assert [u.external_votes for u in pa_.utterances] == [u.external_votes for u in pb.utterances]


def test_extract_tree_selects_improvised_and_skips_sidecars(tree: Path):
    result = extract(tree)
    r = rows(result)
    assert sorted(r) == sorted(
        [f"Ses01F_impro01_{s}" for s in ("F000", "M001", "F002", "M003")]
        + ["Ses03M_impro05a_F000", "Ses03M_impro05a_M001"]
    )
    assert result.rejects == []
    assert result.n_selected == 6
    # sidecars are not corpus files: skipped and not even counted, so that adding one
    # changes no output (the pipeline's dependency on the corpus ignores them too)
    assert not any("hidden" in k or "sidecar" in k for k in result.ignored)
    assert result.ignored["subfolder Categorical"] == 5
    assert result.ignored["scripted dialog (corpus.dialogs)"] == 1
    row = r["Ses03M_impro05a_F000"]
    assert row["session"] == 3 and row["improvised"] is True
    assert (row["gender"], row["dialog_letter"], row["view"]) == ("F", "M", "right")
    assert row["wav_path"] == "Session3/sentences/wav/Ses03M_impro05a/Ses03M_impro05a_F000.wav"
    assert row["video_path"] == "Session3/dialog/avi/DivX/Ses03M_impro05a.avi"
    assert row["n_samples"] == 32000 and row["sample_rate"] == 16000
    assert row["source"] == "Session3/dialog/EmoEvaluation/Ses03M_impro05a.txt:3"
    # rows sorted by id, paths relative: the file does not depend on where the corpus lives
    assert result.table["utterance_id"].to_pylist() == sorted(r)


def test_extract_dialog_selection(tree: Path):
    assert [u for u in rows(extract(tree, dialogs="scripted"))] == ["Ses03M_script01_1b_M000"]
    assert len(rows(extract(tree, dialogs="all"))) == 7
    assert set(rows(extract(tree, sessions=(3,), dialogs="all"))) == {
        "Ses03M_impro05a_F000", "Ses03M_impro05a_M001", "Ses03M_script01_1b_M000",
    }


def test_extract_is_location_independent(tmp_path: Path):
    a = extract(make_tree(tmp_path / "a" / "IEMOCAP_full_release"))
    b = extract(make_tree(tmp_path / "b" / "deeper" / "IEMOCAP_full_release"))
    assert a.table.equals(b.table)


# ------------------------------------------------------------------ bad input


def test_root_that_is_not_a_tree(tmp_path: Path):
    with pytest.raises(CorpusError, match="does not exist"):
        extract(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="not an IEMOCAP tree.*Session1"):
        extract(tmp_path / "empty")


def test_root_one_level_too_high_gets_a_hint(tmp_path: Path):
    make_tree(tmp_path / "IEMOCAP_full_release")
    with pytest.raises(CorpusError, match="Did you mean `make corpus ROOT=.*IEMOCAP_full_release`"):
        extract(tmp_path)


def test_missing_requested_session(tree: Path):
    shutil.rmtree(tree / "Session4")
    with pytest.raises(CorpusError, match="session 4.*Session4.*missing"):
        extract(tree)
    assert len(rows(extract(tree, sessions=(1, 2, 3, 5)))) == 6


def test_malformed_rating_line_rejects_the_utterance_with_file_and_line(tree: Path):
    p = tree / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    p.write_text(p.read_text().replace(f"C-E3:{T}Anger;{T}()\nC-M1", f"C-E3 Anger\nC-M1"))
    result = extract(tree)
    assert [(r["utterance_id"], r["reason"]) for r in result.rejects] == [
        ("Ses01F_impro01_M001", "malformed_line")
    ]
    assert "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt:15" in result.rejects[0]["detail"]
    assert result.n_selected == result.table.num_rows + len(result.rejects) == 6


def test_malformed_summary_line_rejects_or_errors(tree: Path):
    p = tree / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    text = p.read_text()
    p.write_text(text.replace("[10.0100 - 11.3925]", "[10.0100 -- 11.3925]"))
    result = extract(tree)
    assert [(r["utterance_id"], r["reason"]) for r in result.rejects] == [
        ("Ses01F_impro01_M001", "malformed_line")
    ]
    # a well-formed line with a foreign id: rejected
    p.write_text(text.replace(f"]{T}Ses01F_impro01_M001{T}", f"]{T}Ses01F_impro02_M001{T}"))
    assert [(r["utterance_id"], r["reason"]) for r in extract(tree).rejects] == [
        ("Ses01F_impro02_M001", "bad_utterance_id")
    ]
    # a block whose utterance cannot be identified is skipped and reported with file and
    # line, never a stopped stage
    p.write_text(text.replace(f"[10.0100 - 11.3925]{T}Ses01F_impro01_M001", f"[10.0100 -- 11.3925]{T}garbage"))
    result = extract(tree)
    assert result.rejects == [] and result.n_selected == 5
    notes = result.summary()["file_notes"]
    assert notes[0].startswith("Session1/dialog/EmoEvaluation/Ses01F_impro01.txt:12: summary line with no utterance id")
    assert all("outside any utterance block" in n for n in notes[1:]) and len(notes) == 1 + 7


def test_blank_line_inside_a_block_rejects_that_block_only(tree: Path):
    p = tree / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    p.write_text(p.read_text().replace("\nC-E2:\tNeutral;\t()\nC-E3:\tNeutral;", "\n\nC-E2:\tNeutral;\t()\nC-E3:\tNeutral;", 1))
    result = extract(tree)
    assert [(r["utterance_id"], r["reason"]) for r in result.rejects] == [("Ses01F_impro01_F000", "malformed_block")]
    assert "Ses01F_impro01.txt:5: blank line inside the block" in result.rejects[0]["detail"]
    assert result.table.num_rows == 5 and result.n_selected == 6


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.unlink(), "wav_missing"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00not a wav"), "wav_unreadable"),
        (lambda p: write_wav(p, 0.0), "wav_empty"),
        (lambda p: write_wav(p, 1.0, rate=44100), "wav_rate"),
        (lambda p: write_wav(p, 1.0, channels=2), "wav_channels"),
    ],
)
def test_bad_wavs_are_rejected_with_reason(tree: Path, damage, reason):
    wav = tree / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F002.wav"
    damage(wav)
    result = extract(tree)
    assert [(r["utterance_id"], r["stage"], r["reason"]) for r in result.rejects] == [
        ("Ses01F_impro01_F002", "extract", reason)
    ]
    detail = result.rejects[0]["detail"]
    assert detail.startswith("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F002.wav")
    assert str(tree) not in detail
    assert "Ses01F_impro01_F002" not in rows(result)
    assert result.n_selected == result.table.num_rows + len(result.rejects)


def _rewrite(path: Path, seconds: float | None = None, subtype: str = "PCM_16") -> None:
    """Rewrite a wav keeping its samples (or its first `seconds`) in another sample format."""
    import soundfile as sf

    x, rate = sf.read(str(path), dtype="float32")
    if seconds is not None:
        x = x[: int(round(seconds * rate))]
    sf.write(str(path), x, rate, subtype=subtype)


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_24", "PCM_U8"])
def test_wav_in_another_sample_format_is_rejected_by_extract(tree: Path, subtype):
    # the shard stage reads 16-bit PCM only: extract refuses the rest before faces pays for them
    wav = tree / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F002.wav"
    _rewrite(wav, subtype=subtype)
    result = extract(tree)
    assert [(r["utterance_id"], r["reason"]) for r in result.rejects] == [("Ses01F_impro01_F002", "wav_format")]
    assert subtype in result.rejects[0]["detail"] and "PCM_16" in result.rejects[0]["detail"]
    assert result.n_selected == result.table.num_rows + len(result.rejects)


def test_truncated_wav_is_rejected_naming_both_lengths(tree: Path):
    # F002 is labelled [12.0000 - 14.5000]: 2.5 s; an interrupted copy keeps its first third
    wav = tree / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F002.wav"
    _rewrite(wav, seconds=2.5 / 3)
    result = extract(tree)
    assert [(r["utterance_id"], r["reason"]) for r in result.rejects] == [("Ses01F_impro01_F002", "wav_truncated")]
    detail = result.rejects[0]["detail"]
    assert detail.startswith("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F002.wav")
    assert "0.833 s" in detail and "2.500 s" in detail
    assert "Ses01F_impro01_F002" not in rows(result)
    assert result.n_selected == result.table.num_rows + len(result.rejects)


def test_wav_a_little_shorter_than_its_label_range_is_kept(tree: Path):
    wav = tree / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F002.wav"
    _rewrite(wav, seconds=2.5 - 0.9 * corpus.wav_shortfall_tolerance(2.5))
    result = extract(tree)
    assert result.rejects == []
    assert rows(result)["Ses01F_impro01_F002"]["n_samples"] < 2.5 * 16000


def test_duplicate_ids_are_all_rejected(tree: Path):
    p = tree / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    text = p.read_text()
    first_block = text.split("\n\n")[1]
    p.write_text(text + "\n" + first_block + "\n")
    result = extract(tree)
    dups = [r for r in result.rejects if r["reason"] == "duplicate_id"]
    assert [r["utterance_id"] for r in dups] == ["Ses01F_impro01_F000"] * 2
    assert "Ses01F_impro01.txt:3" in dups[0]["detail"] and "appears 2 times" in dups[0]["detail"]
    assert result.n_selected == 7 == result.table.num_rows + len(result.rejects)


def test_a_stray_txt_in_emo_evaluation_is_a_file_reject(tree: Path):
    (tree / "Session2/dialog/EmoEvaluation/notes.txt").write_text("hello\n")
    (tree / "Session3/dialog/EmoEvaluation/Ses01F_impro09.txt").write_text(SES01F_IMPRO01)
    result = extract(tree)
    assert result.table.num_rows == 6 and result.rejects == []
    files = result.summary()["rejected_files"]
    assert [f["file"] for f in files] == [
        "Session2/dialog/EmoEvaluation/notes.txt", "Session3/dialog/EmoEvaluation/Ses01F_impro09.txt",
    ]
    assert "not an IEMOCAP dialog name" in files[0]["reason"] and "session 1 inside Session3" in files[1]["reason"]


# ------------------------------------------------------------------ encodings and variants


def test_latin1_comment_and_byte_order_mark_do_not_stop_extract(tree: Path):
    p = tree / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    text = p.read_text().replace("(curious)", "(curieuse, très)")
    p.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8").replace("très".encode(), "tr\xe8s\x85".encode("latin-1")))
    result = extract(tree)
    assert result.rejects == [] and result.table.num_rows == 6
    r = rows(result)["Ses01F_impro01_F000"]
    assert r["ratings"][3]["comment"] == "curieuse, tr\xe8s\x85"  # NEL read as a character, not a line break
    assert r["source"] == "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt:3"
    assert result.summary()["file_notes"] == [
        "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt: 1 line(s) not UTF-8, read as Latin-1"
    ]


def test_a_malformed_dimensional_line_keeps_the_utterance_and_is_recorded(tree: Path):
    p = tree / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    p.write_text(p.read_text().replace(f"A-E4:{T}val 2; act 3; dom  3;{T}(attitude)", f"A-E4:{T}val ?; act;{T}(attitude)"))
    result = extract(tree)
    assert result.rejects == []
    r = rows(result)["Ses01F_impro01_F000"]
    assert [d["rater"] for d in r["dimensions"]] == ["E3", "F1"]
    bad = f"A-E4:{T}val ?; act;{T}(attitude)"
    assert r["notes"] == [f"Session1/dialog/EmoEvaluation/Ses01F_impro01.txt:9: unreadable dimensional rating, not used: {bad!r}"]
    assert result.summary()["kept_with_notes"] == 1


@pytest.mark.parametrize(
    "line, categories, comment",
    [
        (f"C-E2 :{T}Neutral;{T}()", ("Neutral",), ""),  # space before the colon
        (f"C-E2:{T}Neutral;{T}curious", ("Neutral",), "curious"),  # comment without parentheses
        (f"C-E2:{T}Frustration;{T}Anger;{T}()", ("Frustration", "Anger"), ""),  # tab between categories
        (f"C-E2:  Frustration;   Anger;  (loud)", ("Frustration", "Anger"), "loud"),  # several spaces
        (f"C-E2:{T}Neutral state;{T}()", ("Neutral",), ""),
        (f"C-E2:{T}Neutral; Anger{T}()", ("Neutral", "Anger"), ""),  # last ';' missing
        (f"C-E2:{T};{T}()", (), ""),
        (f"C-E2:{T}Boredom;{T}()", ("Boredom",), ""),  # kept as written; labels never count it
    ],
)
def test_categorical_line_variants(tmp_path: Path, line, categories, comment):
    text = SES01F_IMPRO01.replace(f"C-E2:{T}Neutral;{T}()", line, 1)
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text(text)
    u = corpus.parse_emo_evaluation(path).utterances[0]
    assert u.problem is None
    assert (u.categorical[0].rater, u.categorical[0].categories, u.categorical[0].comment) == ("E2", categories, comment)


def test_votes_for_any_number_of_raters_one_per_rater_and_category():
    ratings = [("E1", True, ("Anger", "Anger")), ("E2", True, ("Anger",)), ("E3", True, ("Sadness", "Boredom")),
               ("E4", True, ("Sadness",)), ("E5", True, ("Sadness",)), ("F1", False, ("Anger",))]
    v = corpus.count_votes(ratings)
    assert v.votes == {"Anger": 2, "Sadness": 3} and v.unknown == {"Boredom": 1} and v.raters == 5
