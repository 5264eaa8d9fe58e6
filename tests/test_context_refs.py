import pytest

from corpus.windows import window_article
from synth.context_refs import outside_reference
from synth.distractors import Distractors, distinct_values
from synth.entities import Entity
from synth.entity_index import EntityIndex
from synth.rules_questions import clipped


@pytest.mark.parametrize(
    "text, question, found",
    [
        ("When did Hitler adopt this concept?", True, "this concept"),
        ("Where were these facilities built?", True, "these facilities"),
        ("Who first proposed such a weapon?", True, "such a weapon"),
        ("When did the Red Army then advance toward the Dnieper?", True, "then"),
        ("Where did the best known take place at the radio station in Gleiwitz?", True, "the best known"),
        ("How many prisoners did the Germans take in that encirclement alone?", True, "in that encirclement"),
        ("When did Hitler dismiss him?", True, "him"),
        ("How many ships did the fleet lose of its escorts?", True, "its"),
        ("Instead, it brought the United States into the war.", False, "Instead"),
        ("The answer was the Mk IX, which entered service in 1942.", False, "The answer"),
        ("They landed at Anzio in January 1944.", False, "They"),
        ("In January 1944 its troops landed at Anzio.", False, "its"),
        ("Two days later Britain and Poland signed a pact.", False, "Two days later"),
        ("How many American soldiers were captured there?", True, "there"),
    ],
)
def test_references_to_another_sentence_are_found(text, question, found):
    assert outside_reference(text, question=question) == found


def test_he_needs_a_person_before_it_when_people_are_known():
    text = "After the fall of France in June 1940, he ordered planning for an eastern campaign."
    assert outside_reference(text) is None  # "France" could be an antecedent to a text-only check
    assert outside_reference(text, people=()) == "he"
    named = "After the fall of France in June 1940, Hitler ordered planning, and he chose the date."
    hitler = (named.index("Hitler"), named.index("Hitler") + 6)
    assert outside_reference(named, people=(hitler,)) is None
    relief = "Paulus did not attempt a breakout to meet it, since Hitler had not authorized one."
    assert outside_reference(relief, people=((0, 6), (relief.index("Hitler"), relief.index("Hitler") + 6))) == "it"
    assert outside_reference(relief) is None  # a text-only check takes "Paulus" for a possible "it"


@pytest.mark.parametrize(
    "text, question",
    [
        ("Who spent two long periods in the United States that shaped his view of the country?", True),
        ("When did Yorktown finally roll over and sink?", True),
        ("Nimitz married Catherine Vance Freeman in 1913, and they had four children.", False),
        ("The Luftwaffe lost many of its bombers over England in August 1940.", False),
        ("In 1940 there were 8 million unemployed Americans.", False),
    ],
)
def test_self_contained_text_passes(text, question):
    assert outside_reference(text, question=question) is None


@pytest.mark.parametrize(
    "question, cut",
    [
        ("When did Enrico Fermi's team achieve the first controlled?", True),
        ("Where did the Soviet Union annex territory in what became?", True),
        ("When did the Germans attack the?", True),
        ("When was Saratoga torpedoed?", False),
        ("Who commanded the 6th Army?", False),
    ],
)
def test_a_question_cut_inside_a_phrase_is_clipped(question, cut):
    assert clipped(question) is cut


def windows(title, sentences):
    return list(window_article(title, [("", s) for s in sentences], 8, 4))


def test_a_true_alternative_is_no_distractor():
    corpus = [
        *windows("Battle of Britain", ["The Luftwaffe attacked Britain in the summer of 1940."]),
        *windows("Invasion of Yugoslavia", ["The Luftwaffe attacked Yugoslavia in April 1941."]),
        *windows("Greek trade", ["Greece exported tobacco and olives before the war began."]),
    ]
    index = EntityIndex.from_windows(corpus)
    distractors = Distractors(index, corpus)
    sentence = corpus[0]["sentences"][0]
    britain = next(e for e in index.entities(sentence) if e.text == "Britain")
    assert {"Yugoslavia", "Greece"} <= set(distractors.candidates("Battle of Britain", britain))
    kept = distractors.for_sentence("Battle of Britain", sentence, britain)
    assert "Greece" in kept and "Yugoslavia" not in kept


@pytest.mark.parametrize(
    "true, wrong, distinct",
    [
        ("Europe", "Western Europe", False),
        ("North Africa", "French North Africa", False),
        ("England", "Britain", False),
        ("Baltic", "Baltic Sea", False),
        ("Solomon Islands", "Gilbert Islands", True),
        ("Normandy", "Brittany", True),
    ],
)
def test_a_place_that_covers_the_true_one_is_no_distractor(true, wrong, distinct):
    assert distinct_values(Entity("place", true, 0, len(true), "region"), wrong) is distinct
