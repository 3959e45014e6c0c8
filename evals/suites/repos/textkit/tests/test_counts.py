from textkit import top_words, word_count, words


def test_words_are_lower_case_without_punctuation():
    assert words("Hello, world! It's here.") == ["hello", "world", "it's", "here"]


def test_word_count():
    assert word_count("one two  three") == 3
    assert word_count("") == 0


def test_top_words_most_frequent_first():
    assert top_words("a b a c a b", n=2) == [("a", 3), ("b", 2)]


def test_top_words_stopwords():
    assert top_words("the cat the hat the cat", n=1, stopwords=frozenset({"the"})) == [("cat", 2)]


def test_ties_are_alphabetical():
    assert top_words("pear apple pear apple fig", n=2) == [("apple", 2), ("pear", 2)]
    assert top_words("zeta beta alpha", n=3) == [("alpha", 1), ("beta", 1), ("zeta", 1)]
