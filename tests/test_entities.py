import pytest

from synth.entities import (
    KnownPeople,
    find_dates,
    find_entities,
    find_numbers,
    find_operations,
    find_people,
    find_places,
    find_proper_names,
    find_units,
    find_years,
    name_of,
    number_value,
    surnames,
)
from synth.entity_index import EntityIndex
from synth.gazetteer import load_gazetteer


def spans(entities):
    return [(e.kind, e.text, e.detail) for e in entities]


def test_every_span_points_at_its_text():
    sentence = "On 22 June 1941 Field Marshal Fedor von Bock's Army Group Center crossed the Bug near Brest with 3 million men."
    for entity in find_entities(sentence):
        assert sentence[entity.start : entity.end] == entity.text


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("On 22 June 1941 about 3 million Axis soldiers crossed the border.", [("22 June 1941", "day")]),
        ("The pocket closed in Jan. 1943.", [("Jan. 1943", "month")]),
        ("The attack came on Dec. 7, 1941, at dawn.", [("Dec. 7, 1941", "day")]),
        ("They landed on 7 December 1941 and again in 1944.", [("7 December 1941", "day"), ("1944", "year")]),
        ("Midway was fought from 4 to 7 June 1942.", [("4 to 7 June 1942", "range")]),
        ("It lasted from December 1941 to August 1945.", [("December 1941 to August 1945", "range")]),
        ("The raid began on 4 June at dawn.", [("4 June", "day_noyear")]),
        ("He led 1,944 men and 1800 horses in the 1930s.", []),  # counts and decades are no dates
    ],
)
def test_find_dates(sentence, expected):
    assert [(e.text, e.detail) for e in find_dates(sentence)] == expected


def test_find_years_inside_dates():
    assert [e.text for e in find_years("Fought from December 1941 to August 1945, and on 2 May 1945.")] == [
        "1941",
        "1945",
        "1945",
    ]


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("On 22 June 1941 about 3 million Axis soldiers crossed the border.", [("3 million", "Axis soldiers")]),
        ("The Japanese lost four carriers at Midway in June 1942.", [("four", "carriers")]),
        (
            "Germany lost roughly 300,000 men and 1.5 million tons of shipping.",
            [("300,000", "men"), ("1.5 million", "tons")],
        ),
        ("Task Force 16 launched at 4:30 a.m. with Bf 109 escorts.", []),  # names and times are not counts
        ("Its 85 mm gun fired, and one of the two crews escaped.", [("85", ""), ("two", "crews")]),  # 85: a measure
    ],
)
def test_find_numbers(sentence, expected):
    assert [(e.text, e.detail) for e in find_numbers(sentence)] == expected


def test_number_values():
    assert number_value("1.5 million") == 1_500_000
    assert number_value("300,000") == 300_000
    assert number_value("Four") == 4


@pytest.mark.parametrize(
    "sentence, person",
    [
        ("Lt. Gen. Vasily Chuikov's 62nd Army held the city.", "Lt. Gen. Vasily Chuikov"),
        ("Gen. Friedrich Paulus surrendered.", "Gen. Friedrich Paulus"),
        ("Field Marshal Erwin Rommel arrived.", "Field Marshal Erwin Rommel"),
        ("Adm. Chester W. Nimitz took command.", "Adm. Chester W. Nimitz"),
        ("President Franklin D. Roosevelt spoke.", "President Franklin D. Roosevelt"),
        ("Field Marshal Gerd von Rundstedt agreed.", "Field Marshal Gerd von Rundstedt"),
        ("Air Chief Marshal Sir Hugh Dowding refused.", "Air Chief Marshal Sir Hugh Dowding"),
        ("Lt. Gen. Simon Bolivar Buckner Jr. was killed.", "Lt. Gen. Simon Bolivar Buckner Jr."),
        ("It was led by Foreign Minister Col. Józef Beck, who refused.", "Col. Józef Beck"),
        ("Marshal Edward Rydz-Śmigły fled.", "Marshal Edward Rydz-Śmigły"),
        ("A patrol led by 1st Lt. Harold G. Schrier reached the summit.", "1st Lt. Harold G. Schrier"),
    ],
)
def test_ranked_people(sentence, person):
    assert [e.text for e in find_people(sentence)] == [person]


@pytest.mark.parametrize("sentence", ["The General Staff met.", "He was promoted to the rank of Marshal Admiral."])
def test_rank_words_without_a_name_are_no_people(sentence):
    assert find_people(sentence) == []


def test_bare_names_need_a_known_person():
    known = KnownPeople(frozenset({"Paulus", "Short", "Marshall"}), common_words=frozenset({"short"}))
    assert [e.text for e in find_people("Later Paulus surrendered.")] == []
    assert spans(find_people("Later Paulus surrendered.", known=known)) == [("person", "Paulus", "bare")]
    assert find_people("Short of fuel, the tanks stopped.", known=known) == []  # a common word opening a sentence
    assert find_people("They reached the Marshall Islands.", known=known) == []  # part of a longer name


def test_names_and_surnames():
    assert name_of("Lt. Gen. Vasily Chuikov") == "Vasily Chuikov"
    assert surnames("Gerd von Rundstedt") == ["von Rundstedt", "Rundstedt"]
    assert surnames("Simon Bolivar Buckner Jr.") == ["Buckner"]


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("The Japanese lost four carriers at Midway in June 1942.", [("Midway", "island")]),
        ("The 6th Army reached the Volga near Stalingrad.", [("Volga", "river_the"), ("Stalingrad", "city")]),
        (
            "They sailed to the Netherlands and Midway Atoll.",
            [("Netherlands", "country_the"), ("Midway Atoll", "island")],
        ),
        ("The Battle of Midway and the Siege of Leningrad ended.", []),  # inside event names
        ("The Leningrad Front and Don Cossacks attacked.", []),  # part of a unit name; rivers need "the"
        ("In France, troops moved.", [("France", "country")]),
    ],
)
def test_find_places(sentence, expected):
    assert [(e.text, e.detail) for e in find_places(sentence)] == expected


def test_units_and_operations():
    sentence = (
        "The 101st Airborne Division, XXX Corps and Task Force 16 joined Operation Market Garden and Army Group Center."
    )
    assert [(e.text, e.detail) for e in find_units(sentence)] == [
        ("101st Airborne Division", "division"),
        ("XXX Corps", "corps"),
        ("Task Force 16", "task force"),
        ("Army Group Center", "army group"),
    ]
    assert [e.text for e in find_operations(sentence)] == ["Operation Market Garden"]


def test_find_entities_on_the_example_sentences():
    assert spans(find_entities("On 22 June 1941 about 3 million Axis soldiers crossed the border.")) == [
        ("date", "22 June 1941", "day"),
        ("number", "3 million", "Axis soldiers"),
    ]
    assert spans(find_entities("Lt. Gen. Vasily Chuikov's 62nd Army held the city.")) == [
        ("person", "Lt. Gen. Vasily Chuikov", "ranked"),
        ("unit", "62nd Army", "army"),
    ]
    assert spans(find_entities("The Japanese lost four carriers at Midway in June 1942.")) == [
        ("number", "four", "carriers"),
        ("place", "Midway", "island"),
        ("date", "June 1942", "month"),
    ]


def test_gazetteer_is_large_and_unambiguous():
    gazetteer = load_gazetteer()  # a name in two groups raises on load
    assert len(gazetteer.places) >= 250
    assert {"country", "city", "river_the", "sea_the", "island", "beach"} <= set(gazetteer.places.values())
    assert "Lt. Gen." in gazetteer.ranks


WINDOWS = [
    {"sentences": ["Gen. Friedrich Paulus commanded the 6th Army.", "Paulus surrendered on 31 January 1943."]},
    {"sentences": ["Field Marshal Erwin Rommel attacked at Gazala.", "Later Rommel fell back to El Alamein."]},
]


def test_entity_index_learns_bare_names_and_lists_values_in_order():
    index = EntityIndex.from_windows(WINDOWS)
    assert {"Paulus", "Friedrich Paulus", "Rommel"} <= index.known.names
    assert ("person", "Paulus", "bare") in spans(index.entities("Paulus surrendered on 31 January 1943."))
    assert index.values("person", "ranked") == ("Field Marshal Erwin Rommel", "Gen. Friedrich Paulus")
    assert index.values("person") == ("Field Marshal Erwin Rommel", "Gen. Friedrich Paulus", "Paulus", "Rommel")
    assert index.values("date") == ("31 January 1943",)
    assert EntityIndex.from_windows(list(reversed(WINDOWS))).values("person") == index.values("person")


NAME_SENTENCES = [
    "In January 1942 Roosevelt created the War Production Board under Donald M. Nelson to direct raw materials.",
    "On 19 February 1942 Roosevelt signed Executive Order 9066, which allowed the military to exclude people.",
    "Their son, Chester W. Nimitz Jr., became a decorated submarine commander.",
    "The force left Hitokappu Bay in the Kuril Islands on 26 November 1941.",
    "On 15 September the Germans met No. 303 Squadron over London.",
    "Maj. Gen. Alexander M. Patch of the U.S. Army took command, and the American troops landed in May.",
]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    list(
        zip(
            NAME_SENTENCES,
            [
                ["War Production Board", "Donald M. Nelson"],
                ["Executive Order 9066"],
                ["Chester W. Nimitz Jr."],
                ["Hitokappu Bay"],
                ["No. 303 Squadron"],
                ["U.S. Army"],
            ],
            strict=True,
        )
    ),
)
def test_find_proper_names_takes_the_names_other_kinds_miss(sentence, expected):
    index = EntityIndex(NAME_SENTENCES)
    names = find_proper_names(sentence, index.is_proper, index.gazetteer.demonyms, index.entities(sentence))
    assert [n.text for n in names] == expected
    assert all(sentence[n.start : n.end] == n.text and n.kind == "name" for n in names)
