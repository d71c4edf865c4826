"""TinyTopic: the default task, generated deterministically so the project needs no download.

Each example is a short synthetic sentence mixing words of four topics (sports, food, weather, music); the label
is the topic most of its content words belong to (two or three words of the label topic, one or two distractors).
The pretraining corpus holds other such sentences, half of them followed by what they were about in plain prose,
so the tiny base model knows the topics but not the task's `Text: … / Topic:` format. LoRA has to adapt it within
a small step budget: a learning rate too low leaves the score near chance, one too high diverges, which is what
makes the hyperparameters matter. Chance is 0.25.

`python -m hpo.tinytopic` rewrites `data/tinytopic.jsonl` (task records) and `data/tinytopic_corpus.txt`
(pretraining corpus); a test checks that the shipped files equal a fresh generation.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

TOPICS: dict[str, list[str]] = {
    "sports": "ball goal team coach match race player stadium tennis soccer runner referee league trophy "
    "sprint medal helmet racket".split(),
    "food": "bread soup cheese apple kitchen chef pasta salad spice butter recipe oven rice honey pie "
    "cookie garlic noodle".split(),
    "weather": "rain storm cloud wind snow sunshine fog thunder frost breeze forecast heat drizzle hail "
    "rainbow lightning mist gust".split(),
    "music": "song guitar piano drum melody singer band concert violin chorus rhythm album tune "
    "orchestra trumpet lyric choir flute".split(),
}
FILLERS = "the a my our this that old new big small quiet loud early late strange lovely".split()
LINKS = "with near after before and beside under over without".split()
VERBS = "was seemed felt looked became stayed".split()
ENDINGS = ["today", "yesterday", "tonight", "again", "at last", "this morning"]


def sentence(rng: random.Random, label: str) -> str:
    """A sentence whose majority topic is `label`."""
    others = [t for t in TOPICS if t != label]
    n_label = rng.choice([2, 2, 3])
    n_other = rng.choice([1, 1, 2]) if n_label == 3 else 1
    words = [rng.choice(TOPICS[label]) for _ in range(n_label)]
    words += [rng.choice(TOPICS[rng.choice(others)]) for _ in range(n_other)]
    rng.shuffle(words)
    parts = []
    for i, w in enumerate(words):
        parts.append(f"{rng.choice(FILLERS)} {w}")
        if i < len(words) - 1:
            parts.append(rng.choice(LINKS))
    parts.append(f"{rng.choice(VERBS)} {rng.choice(FILLERS[8:])} {rng.choice(ENDINGS)}")
    return " ".join(parts)


def generate(n_examples: int = 1600, n_corpus: int = 6000, seed: int = 1234) -> tuple[list[dict], list[str]]:
    """Generates the task records and the pretraining corpus.

    Args:
        n_examples: labelled records (the data stage splits them into train, validation and evaluation).
        n_corpus: unlabelled sentences for pretraining the tiny base model.
        seed: generator seed; the shipped files use the default.

    Returns:
        Records `{instruction, output, choices}` and corpus lines.
    """
    rng = random.Random(seed)
    labels = list(TOPICS)
    choices = [f" {t}" for t in labels]
    records: list[dict] = []
    seen: set[str] = set()
    while len(records) < n_examples:
        label = labels[len(records) % len(labels)]
        text = sentence(rng, label)
        if text in seen:
            continue
        seen.add(text)
        records.append({"instruction": f"Text: {text}\nTopic:", "output": f" {label}", "choices": choices})
    corpus: list[str] = []
    while len(corpus) < n_corpus:
        label = rng.choice(labels)
        text = sentence(rng, label)
        if text in seen:  # the pretraining corpus never contains a task sentence
            continue
        # Half the corpus says what the sentence is about, in prose rather than the task's "Text:/Topic:" format:
        # the base model learns the topics, and LoRA has to adapt it to the task's format.
        corpus.append(f"{text} , so it was all about {label}" if rng.random() < 0.5 else text)
    # Topic names appear in plain prose so their embeddings mean something before LoRA maps sentences to them.
    for label, words in TOPICS.items():
        for w in words:
            corpus.append(f"a {w} is part of {label}")
    rng.shuffle(corpus)
    return records, corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("data"))
    args = parser.parse_args()
    records, corpus = generate()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "tinytopic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (args.out_dir / "tinytopic_corpus.txt").write_text("\n".join(corpus) + "\n")


if __name__ == "__main__":
    main()
