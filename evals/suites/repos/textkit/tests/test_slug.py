from textkit import slugify


def test_accents_and_punctuation():
    assert slugify("Crème Brûlée!", sep="-") == "creme-brulee"


def test_custom_separator():
    assert slugify("Hello,   World", sep="_") == "hello_world"


def test_no_separator_at_the_ends():
    assert slugify("  --Hello--  ", sep="-") == "hello"


def test_max_length_cuts_without_trailing_separator():
    assert slugify("hello big world", sep="-", max_length=6) == "hello"


def test_only_punctuation_gives_empty_slug():
    assert slugify("!!!", sep="-") == ""


def test_default_separator_is_hyphen():
    assert slugify("Hello World") == "hello-world"
    assert slugify("Release notes 2.0") == "release-notes-2-0"
