"""The shipped TinyTopic files are exactly what the generator makes."""

from __future__ import annotations

import json

from hpo.tinytopic import generate

from .helpers import ROOT


def test_shipped_data_equals_a_fresh_generation() -> None:
    records, corpus = generate()
    shipped = (ROOT / "data/tinytopic.jsonl").read_text()
    assert shipped == "".join(json.dumps(r) + "\n" for r in records)
    assert (ROOT / "data/tinytopic_corpus.txt").read_text() == "\n".join(corpus) + "\n"
    labels = [r["output"] for r in records]
    assert {labels.count(label) for label in set(labels)} == {400}, "balanced: chance is 0.25"
    evaluation_sentences = {r["instruction"].removeprefix("Text: ").removesuffix("\nTopic:") for r in records}
    assert not evaluation_sentences & set(corpus), "no task sentence in the pretraining corpus"
