"""Majority vote, tie-breaks and the class map."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from avemotion import corpus, labels
from avemotion.config import ParamsError, build
from avemotion.labels import LabelsConfig, vote
from iemocap_fixture import make_tree


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("c") / "IEMOCAP_full_release")
    return corpus.extract(root, corpus.CorpusConfig(dialogs="all")).table


def by_id(result):
    return {r["utterance_id"]: r for r in result.table.to_pylist()}


def test_hand_written_tree_votes(utterances):
    result = labels.label_utterances(utterances, LabelsConfig(ties="drop"))
    r = by_id(result)
    assert r["Ses01F_impro01_F000"]["emotion"] == "neu"
    # self ratings (two C-M Anger lines) would make Anger 3 vs Sadness 2 if counted
    assert r["Ses01F_impro01_M001"]["emotion"] == "sad"
    assert r["Ses01F_impro01_M001"]["votes"] == "Sadness:2;Anger:1"
    # 'Frustration; Anger;' is two votes: Anger wins 2 to 1
    assert r["Ses01F_impro01_F002"]["emotion"] == "ang"
    # Excited:2 vs Happiness:2 counted as written -> a tie, although both map to hap
    assert r["Ses03M_impro05a_F000"]["tie"] is True
    assert r["Ses03M_impro05a_F000"]["reason"] == "tie"
    # three-way tie dropped in drop mode
    assert r["Ses01F_impro01_M003"]["reason"] == "tie"
    assert r["Ses01F_impro01_M003"]["tied"] == ["Happiness", "Neutral", "Sadness"]
    # Frustration wins but is not one of the classes
    assert r["Ses03M_script01_1b_M000"]["emotion"] is None
    assert r["Ses03M_script01_1b_M000"]["reason"] == "unmapped_category"
    assert r["Ses03M_script01_1b_M000"]["category"] == "Frustration"
    rejected = {x["utterance_id"]: x["reason"] for x in result.rejects}
    assert rejected == {
        "Ses03M_impro05a_F000": "tie",
        "Ses01F_impro01_M003": "tie",
        "Ses03M_script01_1b_M000": "unmapped_category",
    }
    assert all(x["stage"] == "label" for x in result.rejects)
    # votes are checked against the summary code: the Excited/Happiness tie (code exc) is
    # the one disagreement in this tree
    assert [u for u, x in r.items() if not x["agrees_with_summary"]] == ["Ses03M_impro05a_F000"]
    assert result.summary()["disagree_with_summary_code"] == 1


def test_random_ties_pick_one_of_the_tied_and_are_seeded(utterances):
    a = by_id(labels.label_utterances(utterances, LabelsConfig(seed=1)))
    b = by_id(labels.label_utterances(utterances, LabelsConfig(seed=1)))
    assert a == b
    m3 = a["Ses01F_impro01_M003"]
    assert m3["tie"] and m3["category"] in m3["tied"] and m3["reason"] is None
    assert m3["emotion"] == {"Happiness": "hap", "Neutral": "neu", "Sadness": "sad"}[m3["category"]]
    # in random mode the tie between Excited and Happiness keeps the utterance
    assert a["Ses03M_impro05a_F000"]["emotion"] == "hap"


def test_tie_break_is_order_independent_and_covers_all_options():
    cfg = LabelsConfig(seed=7)
    votes = Counter({"Neutral": 1, "Anger": 1, "Sadness": 1})
    reordered = Counter({"Sadness": 1, "Anger": 1, "Neutral": 1})
    picks = Counter()
    for i in range(300):
        utt = f"Ses01F_impro01_F{i:03d}"
        first = vote(utt, votes, cfg)
        assert first.category == vote(utt, reordered, cfg).category
        assert first.category in {"Neutral", "Anger", "Sadness"}
        picks[first.category] += 1
    # a fair pick: every tied category is chosen regularly
    assert min(picks.values()) > 60
    # a different seed changes some picks
    other = [vote(f"Ses01F_impro01_F{i:03d}", votes, LabelsConfig(seed=8)).category for i in range(50)]
    assert other != [vote(f"Ses01F_impro01_F{i:03d}", votes, cfg).category for i in range(50)]


def test_label_table_does_not_depend_on_row_order(utterances):
    shuffled = utterances.take(list(reversed(range(utterances.num_rows))))
    cfg = LabelsConfig()
    assert labels.label_utterances(shuffled, cfg).table.equals(labels.label_utterances(utterances, cfg).table)


def test_no_votes_is_dropped_with_reason():
    lab = vote("Ses01F_impro01_F000", Counter(), LabelsConfig())
    assert (lab.emotion, lab.reason) == (None, "no_votes")


def test_consensus_matches_summary_code_rule():
    assert labels.consensus(Counter({"Neutral": 2, "Anger": 1})) == "Neutral"
    assert labels.consensus(Counter({"Neutral": 1, "Anger": 1, "Sadness": 1})) is None
    assert labels.consensus(Counter({"Anger": 2, "Frustration": 2})) is None
    assert labels.agrees_with_summary(Counter({"Neutral": 3}), "neu")
    assert labels.agrees_with_summary(Counter({"Neutral": 1, "Anger": 1, "Sadness": 1}), "xxx")
    assert not labels.agrees_with_summary(Counter({"Neutral": 3}), "ang")


def test_custom_category_map_and_class_order():
    cfg = build(LabelsConfig, {"labels": {"categories": {"Neutral": "neu", "Anger": "ang", "Frustration": "ang"}}}, "labels")
    assert cfg.classes == ("ang", "neu")
    assert vote("Ses01F_impro01_F000", Counter({"Frustration": 2, "Neutral": 1}), cfg).emotion == "ang"


def test_bad_labels_params_name_the_key():
    with pytest.raises(ParamsError, match="labels.ties.*'random', 'drop'"):
        build(LabelsConfig, {"labels": {"ties": "coin"}}, "labels")
    with pytest.raises(ParamsError, match="unknown key.*labels.seeds"):
        build(LabelsConfig, {"labels": {"seeds": 1}}, "labels")
    with pytest.raises(ParamsError, match="labels.seed.*integer"):
        build(LabelsConfig, {"labels": {"seed": "x"}}, "labels")


def test_unknown_words_are_counted_by_word_and_named_never_votes(tmp_path):
    from iemocap_fixture import SES01F_IMPRO01, T

    text = (SES01F_IMPRO01
            .replace(f"C-E2:{T}Happiness;{T}()", f"C-E2:{T}Boredom;{T}()")  # M003: Neutral, Boredom, Sadness
            .replace(f"C-E2:{T}Neutral;{T}()", f"C-E2:{T}Neutral; Neutral;{T}()"))  # one vote, not two
    # a fourth external rater on M001: Sadness 3, Anger 1
    text = text.replace(f"C-E3:{T}Anger;{T}()\nC-M1", f"C-E3:{T}Anger;{T}()\nC-E5:{T}Sadness;{T}()\nC-M1")
    root = make_tree(tmp_path / "IEMOCAP_full_release", label_files={1: {"Ses01F_impro01": text}})
    table = corpus.extract(root, corpus.CorpusConfig()).table
    result = labels.label_utterances(table, LabelsConfig(ties="drop"))
    r = by_id(result)
    assert r["Ses01F_impro01_F000"]["votes"] == "Neutral:3"
    assert r["Ses01F_impro01_M003"]["votes"] == "Neutral:1;Sadness:1"  # Boredom is no vote
    assert r["Ses01F_impro01_M003"]["unknown_words"] == ["Boredom"]
    detail = {x["utterance_id"]: x["detail"] for x in result.rejects}["Ses01F_impro01_M003"]
    assert "outside the known categories: Boredom" in detail
    assert r["Ses01F_impro01_M001"]["raters"] == 4 and r["Ses01F_impro01_M001"]["emotion"] == "sad"
    s = result.summary()
    assert s["unknown_category_words"] == {"Boredom": 1}
    assert s["four_or_more_raters"] == {"utterances": 1, "disagree_with_summary_code": 0}
