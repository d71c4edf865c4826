"""Utilities of n judged responses per instance, on hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.utility import majority_vote, mean_correct, pass_at_n, success_rate, utility

T, F = True, False
CORRECT = [[T, F, F, F], [F, F], [T]]
ANSWERS = [["a", "b", "b", "c"], ["x", "y"], ["z"]]


def test_success_rate_is_ecooptigens() -> None:
    # 1 - (1 - 1/4)^4 = 0.68359375; 1 - (1 - 0/2)^2 = 0; 1 - (1 - 1)^1 = 1
    assert success_rate(CORRECT) == pytest.approx((0.68359375 + 0 + 1) / 3)
    assert success_rate([[T, T]]) == 1.0 and success_rate([[F, F, F]]) == 0.0
    # with one response per instance it is plain accuracy
    assert success_rate([[T], [F], [F], [T]]) == 0.5


def test_pass_at_n_and_mean_correct() -> None:
    assert pass_at_n(CORRECT) == pytest.approx(2 / 3)
    assert mean_correct(CORRECT) == pytest.approx((0.25 + 0 + 1) / 3)


def test_majority_vote_counts_answers_first_wins_ties() -> None:
    # "b" wins instance 1 (wrong), the tie x/y goes to x (wrong), z is right
    assert majority_vote(CORRECT, ANSWERS) == pytest.approx(1 / 3)
    assert majority_vote([[F, T, T]], [["b", "a", "a"]]) == 1.0
    assert utility("majority_vote", CORRECT, ANSWERS) == majority_vote(CORRECT, ANSWERS)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="instance 1 has no responses"):
        success_rate([[T], []])
    with pytest.raises(ValueError, match="utility: got 'best'; expected one of success_rate"):
        utility("best", CORRECT, ANSWERS)
    with pytest.raises(ValueError, match="answers: expected one answer per judged response"):
        majority_vote(CORRECT, [["a"], ["x"], ["z"]])


def test_a_users_function_in_the_task_folder(tmp_path: Path) -> None:
    (tmp_path / "u.py").write_text(
        "def first(correct, answers):\n    return sum(c[0] for c in correct) / len(correct)\n"
        "def text(correct, answers):\n    return 'high'\n"
        "def huge(correct, answers):\n    return float('inf')\n"
        "import numpy\ndef numpy_value(correct, answers):\n    return numpy.float32(0.5)\n"
    )
    correct = [[True, False], [False, True], [True, True]]
    answers = [["a", "b"], ["c", "d"], ["e", "e"]]
    assert utility("u.py:first", correct, answers, tmp_path) == pytest.approx(2 / 3)
    assert utility("u.py:numpy_value", correct, answers, tmp_path) == 0.5
    for spec, message in [
        ("missing.py:first", "not found"),
        ("../u.py:first", "outside the task folder"),
        ("u.py:nothing", "has no function 'nothing'"),
        ("u.py:text", "returned 'high'; expected a finite number"),
        ("u.py:huge", "returned inf; expected a finite number"),
    ]:
        with pytest.raises(ValueError, match=message):
            utility(spec, correct, answers, tmp_path)
