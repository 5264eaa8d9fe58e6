import pytest

from corpus.markup import normalise, strip_markup


def clean(text: str) -> str:
    return normalise(strip_markup(text))


@pytest.mark.parametrize(
    "raw, expected",
    [
        # link text stays, the URL goes, and the ")" after a link is the prose's, not the URL's
        (
            "The landings ([Operation Dragoon](https://en.wikipedia.org/wiki/Operation_Dragoon)) began in August.",
            "The landings (Operation Dragoon) began in August.",
        ),
        (
            'The [Enigma machine](https://en.wikipedia.org/wiki/Enigma_(machine) "Enigma") was broken.',
            "The Enigma machine was broken.",
        ),
        ("See [the report][ref] for the losses.", "See the report for the losses."),
        ("The raid (https://example.org/raid_(1942)) failed.", "The raid failed."),
        ("The raid (see https://example.org/raid) failed.", "The raid failed."),
        ("Read https://example.org/a.html. Then stop.", "Read. Then stop."),
        ("Details at <https://example.org/x> were lost.", "Details at were lost."),
        # images go whole, alt text included
        (
            "![A Sherman tank in Normandy](img/sherman.jpg) The M4 Sherman was built in numbers.",
            "The M4 Sherman was built in numbers.",
        ),
        # emphasis keeps its words; a lone star or an underscore inside a word is not emphasis
        (
            "**Operation Overlord** was the *largest* seaborne invasion.",
            "Operation Overlord was the largest seaborne invasion.",
        ),
        ("__Fat Man__ and _Little Boy_ were `code` names.", "Fat Man and Little Boy were code names."),
        ("The file was SS_report_1943 and 5 * 3 = 15.", "The file was SS_report_1943 and 5 * 3 = 15."),
        # footnotes and quotations
        ("Churchill spoke[^1] on the radio.", "Churchill spoke on the radio."),
        ("[^1]: Hansard, 4 June 1940.", ""),
        ("> We shall never surrender.", "We shall never surrender."),
        ("---", ""),
    ],
)
def test_markdown_keeps_the_words_and_loses_the_markup(raw, expected):
    assert clean(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Paulus surrendered.[12] The army was gone.[a]", "Paulus surrendered. The army was gone."),
        ("It fell in 1943.[1][2][3]", "It fell in 1943."),
        ("It fell in 1943.[citation needed] More [clarification needed] text.", "It fell in 1943. More text."),
        ("The figure is disputed.[note 4][nb 2]", "The figure is disputed."),
        ("Losses were high.[Citation Needed]", "Losses were high."),
    ],
)
def test_citation_marks_are_removed(raw, expected):
    assert clean(raw) == expected


@pytest.mark.parametrize(
    "prose",
    [
        "The codes were numbered [1, 2, 3] in the order of use.",
        "Pages [1–3] of the order were lost.",
        "The diary was published in [1939] by the family.",
        'The signal read "retreat [sic] at once".',
        'He wrote: "[I] could not hold the bridge."',
    ],
)
def test_bracketed_prose_is_not_a_citation(prose):
    assert clean(prose) == prose


def test_normalisation_keeps_fractions_superscripts_and_subscripts():
    assert normalise("The raid lasted 21½ hours.") == "The raid lasted 21½ hours."
    assert normalise("Einstein's E = mc² letter.") == "Einstein's E = mc² letter."
    assert normalise("Heavy water (D₂O) went to Norway.") == "Heavy water (D₂O) went to Norway."


def test_normalisation_folds_look_alike_forms_and_whitespace():
    assert normalise("The\u00a0Soviet\u200b   army\tadvanced ,  fast .") == "The Soviet army advanced, fast."
    assert normalise("ＴＯＫＹＯ ﬁnal 1\u202f000 men\u2009here") == "TOKYO final 1 000 men here"
    assert normalise("Cafe\u0301") == "Café"  # combining accent composed (NFC)
