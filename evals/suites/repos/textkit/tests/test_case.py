from textkit import title_case


def test_minor_words_stay_lower_case():
    assert title_case("the lord of the rings") == "The Lord of the Rings"


def test_first_word_is_capitalised_even_if_minor():
    assert title_case("of mice and men") == "Of Mice and Men"


def test_shouting_is_calmed():
    assert title_case("WAR AND PEACE") == "War and Peace"


def test_last_word_is_capitalised_even_if_minor():
    assert title_case("what are you looking for") == "What Are You Looking For"
    assert title_case("a room to live in") == "A Room to Live In"
