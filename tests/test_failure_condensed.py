"""What the first call sees and how a candidate may answer: pytest's noise left out, an `assert call(...) == literal`
spelled out, and a one-edit candidate's `old` chosen from runs of the lines shown."""

from __future__ import annotations

from fastcode.context.gather import condense_failure

OUTPUT = """F
=================================== FAILURES ===================================
______________________________ test_every_window _______________________________

    def test_every_window():
>       assert moving_sum([1, 2, 3, 4], 2) == [3, 5, 7]
E       assert [3, 5] == [3, 5, 7]
E
E         Right contains one more item: 7
E         Use -v to get more diff

test_stats.py:5: AssertionError
=========================== short test summary info ============================
FAILED test_stats.py::test_every_window - assert [3, 5] == [3, 5, 7]
1 failed in 0.06s
"""


def test_the_result_and_the_expected_value_are_said_in_words() -> None:
    lines = condense_failure(OUTPUT).splitlines()
    shown = lines.index("E       assert [3, 5] == [3, 5, 7]")
    assert lines[shown + 1] == "E       moving_sum([1, 2, 3, 4], 2) returned [3, 5]; the test expects [3, 5, 7]"
    assert "E" not in lines and not any("Use -v" in line for line in lines)
    assert "E         Right contains one more item: 7" in lines  # pytest's own explanation stays


def test_the_expected_value_on_the_left_is_read_the_right_way_round() -> None:
    lines = condense_failure(">       assert [1] == f(2)\nE       assert [1] == [2]\n").splitlines()
    assert lines[-1] == "E       f(2) returned [2]; the test expects [1]"


def test_nothing_is_added_where_the_sides_are_not_a_call_and_a_literal() -> None:
    for source, shown in (
        ("assert a.b == 3", "assert 4 == 3"),  # no call
        ("assert f(x) == g(y)", "assert 1 == 2"),  # two calls: which one is expected?
        ("assert f(x) == 1 == y", "assert 2 == 1 == 3"),  # a chain
        ("assert f(x)", "assert False"),  # no comparison
    ):
        text = f">       {source}\nE       {shown}\n"
        assert condense_failure(text) == text.rstrip()


def test_a_candidates_old_is_chosen_from_runs_of_the_lines_shown(tmp_path) -> None:
    from fastcode.agent.edit_first import old_choices

    (tmp_path / "m.py").write_text("def f(x):\n\n    return x\n\n\ndef g():\n    return x\n")
    context = "### m.py (lines 1-3)\n```\n...\n```\n### tests/test_m.py (lines 1-2)\n```\n...\n```"
    choices = old_choices(tmp_path, context, ["m.py", "gone.py"])
    # runs of 1-3 shown lines, neither end blank; `    return x` alone is not unique in the file
    assert choices["m.py"] == ["def f(x):", "def f(x):\n\n    return x"]
    assert choices["gone.py"] == []  # cannot be read: any `old`
    assert "tests/test_m.py" not in choices  # only the files a candidate may edit
