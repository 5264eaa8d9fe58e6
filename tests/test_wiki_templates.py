import pytest

from corpus.wiki_dump import wikitext_to_plain


@pytest.mark.parametrize(
    "wikitext, expected",
    [
        # values with their units; the converted figure is not needed for the fact
        (
            "Malta lies {{convert|93|km|mi}} south of Sicily and less than {{convert|290|km|mi|abbr=on}} from Italy.",
            "Malta lies 93 km south of Sicily and less than 290 km from Italy.",
        ),
        ("The guns ranged {{convert|10|to|15|mi|km}}.", "The guns ranged 10 to 15 mi."),
        ("The island covers {{cvt|21|sqmi}}.", "The island covers 21 sq mi."),
        ("The front ran {{convert|300|-|400|km|mi}}.", "The front ran 300–400 km."),
        # foreign terms with the language label Wikipedia shows
        (
            "Operation Barbarossa ({{lang-de|Unternehmen Barbarossa}}) began in 1941.",
            "Operation Barbarossa (German: Unternehmen Barbarossa) began in 1941.",
        ),
        ("The ({{langx|ja|kamikaze}}) attacks began.", "The (Japanese: kamikaze) attacks began."),
        ("The {{lang|de|Wehrmacht}} retreated.", "The Wehrmacht retreated."),
        # ships: name and designation
        ("{{USS|Enterprise|CV-6}} survived the war.", "USS Enterprise (CV-6) survived the war."),
        ("{{HMS|Hood|51}} blew up in May 1941.", "HMS Hood (51) blew up in May 1941."),
        ("{{ship|German battleship|Bismarck}} sank.", "German battleship Bismarck sank."),
        ("{{ship|HMS|Prince of Wales|53}} was sunk off Malaya.", "HMS Prince of Wales (53) was sunk off Malaya."),
        ("A {{sclass|Fletcher|destroyer|1}} escorted her.", "A Fletcher-class destroyer escorted her."),
        # links to other wikis: the English text
        ("He met {{ill|Hans Example|de|Hans Beispiel}} in Kiel.", "He met Hans Example in Kiel."),
        ("He met {{ill|Hans Example|de|lt=the admiral}} in Kiel.", "He met the admiral in Kiel."),
        # dates
        ("{{As of|2020|5}}, the wreck is protected.", "As of May 2020, the wreck is protected."),
        ("The site, {{as of|2019|lc=y}}, is a museum.", "The site, as of 2019, is a museum."),
        ("The landings began on {{start date|1944|6|6}}.", "The landings began on 6 June 1944."),
        ("He was born {{birth date|1890|10|14|mf=y}}.", "He was born October 14, 1890."),
        ("Hitler died on {{death date and age|1945|4|30|1889|4|20}}.", "Hitler died on 30 April 1945 (aged 56)."),
        ("The fort was built {{circa|1940}}.", "The fort was built c. 1940."),
        # text wrappers and punctuation templates
        ("It cost {{nowrap|£2 million}} in 1941.", "It cost £2 million in 1941."),
        ("The raid lasted {{frac|21|1|2}} hours.", "The raid lasted 21½ hours."),
        ("Kharkov{{snd}}the fourth battle{{snd}}ended.", "Kharkov – the fourth battle – ended."),
        (
            "{{nihongo|Operation Ten-Go|天号作戦|Ten-gō sakusen}} was the last sortie.",
            "Operation Ten-Go (Ten-gō sakusen) was the last sortie.",
        ),
        # templates nested in links, bold text and other templates are rendered too
        ("The '''{{USS|Arizona|BB-39}}''' sank.", "The USS Arizona (BB-39) sank."),
        ("They crossed [[Volga|the {{nowrap|Volga River}}]].", "They crossed the Volga River."),
        ("The [[Battle of Kursk|{{lang-ru|Kurskaya bitva}}]] battle.", "The Russian: Kurskaya bitva battle."),
    ],
)
def test_text_bearing_templates_keep_their_fact(wikitext, expected):
    assert wikitext_to_plain(wikitext) == expected


def test_a_quotation_is_a_paragraph_of_its_own_without_its_attribution():
    wikitext = "He said:\n{{quote|text=We shall fight on the beaches.|author=Winston Churchill}}\nThen he sat down."
    assert wikitext_to_plain(wikitext) == "He said:\n\nWe shall fight on the beaches.\n\nThen he sat down."
    assert wikitext_to_plain("{{blockquote|Never in the field of human conflict.}}") == (
        "Never in the field of human conflict."
    )


@pytest.mark.parametrize(
    "wikitext",
    [
        "{{Infobox military conflict|conflict=Battle of Kursk|date={{start date|1943|7|5}}|result=Soviet victory}}",
        "{{Campaignbox Eastern Front}}",
        "{{World War II|state=collapsed}}",
        "{{sfn|Glantz|1995|p=4}}",
        "{{cite book|last=Glantz|title=The Battle of Kursk|year=1999}}",
        "{{citation needed|date=May 2020}}",
        "{{Short description|Battle of World War II}}",
        "{{Use dmy dates|date=June 2020}}",
        "{{Main|Operation Citadel}}",
        "{{Reflist}}",
        "{{Coord|51|44|N|36|11|E}}",
        "{{efn|Soviet figures differ.}}",
        "{{Some template nobody has heard of|with|arguments}}",
    ],
)
def test_templates_that_are_not_prose_are_dropped(wikitext):
    assert wikitext_to_plain(f"The battle began.{wikitext} It ended.") == "The battle began. It ended."
