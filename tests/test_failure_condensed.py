"""The failure the first call sees: pytest's noise left out, and an `assert call(...) == literal` spelled out."""

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
