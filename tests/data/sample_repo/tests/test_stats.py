import pytest

from mathutils.stats import mean, moving_sum


def test_moving_sum_covers_every_window():
    assert moving_sum([1, 2, 3, 4], 2) == [3, 5, 7]


def test_moving_sum_whole_list():
    assert moving_sum([1, 2, 3], 3) == [6]


def test_mean():
    assert mean([1, 2, 3]) == 2


def test_mean_empty():
    with pytest.raises(ValueError):
        mean([])
