"""Words that tell English from the Latin-script languages a helper LLM drifts into.

FOREIGN_WORDS: the most frequent function words (articles, copulas, auxiliaries, pronouns,
prepositions, conjunctions) of German, French, Spanish, Italian, Portuguese, Dutch and
Polish, pruned so they never fire on English prose about the war:
- no word that is also an English word: die, war, will, also, hat, in, an, on, is, was, had,
  to, as, no, he, so, me, son, per, come, over, under, at, met, door, pour, par, era, sin, ale,
  pod, tot, dove, para, a, i, o, e, y;
- no particle of names: de, da, di, do, dos, du, del, della, van, von, den, ten, ter, zu, al.
  "de" and "van" are the commonest words of several of these languages, but in English text
  they are names ("Charles de Gaulle"), so those languages are recognised by their other
  words. le, la, el, los, das, der count only where they cannot be part of a name (see
  quality/evidence.py, sentence_evidence).

ENGLISH_WORDS: English function words that none of those languages uses (not "in", "is",
"was", "a", "to", "as", "at", "will", "may": "May 1942" is a month).

ANSWER_WORDS: the one-word replies of a drifting model to a yes/no or true/false question
("Ja.", "Vrai.", "Falso.") and copulas ("ist", "est", "è"): one is enough when a sentence has
no English function word.
"""

from __future__ import annotations


def _table(spec: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """{"German": "und oder", ...} -> {"und": ("German",), ...}; a word can have several."""
    table: dict[str, tuple[str, ...]] = {}
    for language, words in spec.items():
        for word in words.split():
            table[word] = (*table.get(word, ()), language)
    return table


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# English evidence: frequent function words that none of the languages below uses.
ENGLISH_WORDS = _words(
    """the of and with which who whom whose what when where why how were been being his her hers
    their theirs they them it its that this these those from after before during not but has have
    having into onto against between did does than then would could should because there she we our
    us while until about for by or if him you your are can must only most more many some
    other such both each every through without within upon among across towards toward around yes
    true false led took became made isn't wasn't weren't didn't"""
)

# Lower-case particles of names ("von Manstein", "de Gaulle", "da Silva") and the articles that
# may follow one ("van der Waals", "de la Rocque", "von der Heydte").
NAME_PARTICLES = _words("von van de da di du del della dello dos do zu ten ter bin ibn al af av")
NAME_ARTICLES = _words("der den des la le les los las y e")

FOREIGN_WORDS = _table(
    {
        "German": """und oder aber nicht ist sind wurde wurden wird werden worden haben hatte hatten
            sich auch auf für mit dem des ein eine einen einem einer eines zum zur im vom beim bei
            nach durch über gegen während wie wenn dass daß weil ich wir er es diese dieser dieses
            jedoch zwischen doch noch schon sehr nur kein keine uns unter um aus bis seine seiner
            ihre ihr dann als das der sie""",
        "French": """le la les un une est sont était étaient été avait ont et dans avec sur mais
            ou où qui que ne il elle ils nous vous leur ces cette ce sa ses aux au des en""",
        "Spanish": """el la los las un una en es está están fue fueron eran con por pero sobre entre
            hasta desde muy más también cuando donde porque qué cómo quién se su sus lo que""",
        "Italian": """il lo la le gli un una delle dei degli nel nella nei alla alle dal dalla
            sono è erano fu furono non che con tra fra anche molto più quando perché questo
            questa si se""",
        "Portuguese": """os um uma é são foi foram eram não com pelo pela pelos pelas em na nos
            nas também muito quando onde porque ao aos à às que se""",
        "Dutch": """het een en zijn werd werden niet geen voor naar bij uit ook maar dat dit deze
            wat heeft hebben aan om te nog""",
        "Polish": """jest są był była było byli nie się na że oraz jak przez dla od po przy nad
            jego jej ich który która które został została zostały""",
    }
)

ANSWER_WORDS = _table(
    {
        "German": "ja nein stimmt richtig falsch wahr ist",
        "French": "oui non vrai faux est",
        "Spanish": "sí verdadero falso cierto correcto es está",
        "Italian": "sì vero falso è sono non",
        "Portuguese": "sim não verdade verdadeiro falso é",
        "Dutch": "ja nee waar onwaar klopt",
        "Polish": "tak nie prawda fałsz jest",
    }
)

# Elided articles and pronouns before an apostrophe: l'armée, c'est, qu'il, dell'Unione.
ELISIONS = _table(
    {
        "French": "l d c n qu s j m",
        "Italian": "l d dell all dall nell sull un",
    }
)

# Word endings that are inflection, never the citation form of a name: Polish accusative and
# instrumental "-ą"/"-ę" (Flotą, Polskę, są, mogę). Names keep these letters inside the word
# (Dąbrowski, Wałęsa, Częstochowa), so a word ending in one is Polish prose even when it is
# capitalised, as in a sentence made only of a verb and names ("Dowodził Flotą Pacyfiku.").
INFLECTIONS = {"ą": ("Polish",), "ę": ("Polish",)}
