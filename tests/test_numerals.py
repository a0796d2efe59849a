import pytest

from knowledge.numerals import article_label, cn_to_int, int_to_cn


@pytest.mark.parametrize("n", [1, 9, 10, 11, 20, 21, 99, 100, 101, 103, 110, 119, 1000, 1010])
def test_round_trip(n):
    assert cn_to_int(int_to_cn(n)) == n


def test_statute_forms():
    assert article_label(21) == "第二十一条"
    assert article_label(103) == "第一百零三条"
    assert cn_to_int("２１") == 21
    assert cn_to_int("条") is None
