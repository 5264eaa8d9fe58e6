"""Rendering the text-bearing wikitext templates of a dump page; every other template goes.

A dump page is wikitext, and much of a sentence can sit inside a template: a distance
({{convert|1300|mi|km}}), a foreign name ({{lang-de|Unternehmen Barbarossa}}), a ship
({{USS|Enterprise|CV-6}}), a date ({{start date|1944|6|6}}). Deleting those templates
deletes the fact and leaves "less than from Italy". Here each one is rendered to the plain
text Wikipedia shows (its value and unit, the foreign term, the name and designation, the
quoted text, the date); infoboxes, navboxes, citations and anything unknown render to
nothing. Template names follow https://en.wikipedia.org/wiki/Help:Template and the
documentation page of each template.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable

from mwparserfromhell.nodes import Template, Text
from mwparserfromhell.wikicode import Wikicode

LANGUAGES = {
    "de": "German",
    "fr": "French",
    "it": "Italian",
    "ja": "Japanese",
    "ru": "Russian",
    "pl": "Polish",
    "nl": "Dutch",
    "es": "Spanish",
    "el": "Greek",
    "fi": "Finnish",
    "hu": "Hungarian",
    "ro": "Romanian",
    "cs": "Czech",
    "sr": "Serbian",
    "hr": "Croatian",
    "uk": "Ukrainian",
    "zh": "Chinese",
    "ko": "Korean",
    "no": "Norwegian",
    "da": "Danish",
    "la": "Latin",
    "he": "Hebrew",
    "yi": "Yiddish",
    "tl": "Tagalog",
}
# {{convert}} unit codes whose code is not how the unit is written in prose.
UNIT_NAMES = {"sqmi": "sq mi", "sqkm": "km²", "km2": "km²", "m2": "m²", "sqft": "sq ft", "ft2": "sq ft", "kph": "km/h"}
# {{convert|10|-|15|km}}: words that join the two values of a range.
RANGE_WORDS = {"-": "–", "–": "–", "to": " to ", "and": " and ", "or": " or ", "x": " × ", "by": " by ", "+/-": " ± "}
# Ship prefix templates ({{HMS|Hood|51}}): the template name is the prefix.
SHIP_PREFIXES = {
    "USS",
    "HMS",
    "SMS",
    "HMAS",
    "HMCS",
    "HMNZS",
    "HNLMS",
    "HNoMS",
    "HDMS",
    "HSwMS",
    "USCGC",
    "USNS",
    "USAT",
    "SS",
    "MV",
    "RMS",
    "ORP",
    "INS",
    "HMIS",
    "ARA",
    "HMT",
    "NMS",
}
# Wrappers that only change how their first argument looks.
WRAPPERS = {"nowrap", "nobr", "nobreak", "small", "smaller", "big", "larger", "sic", "em", "strong", "abbr", "lang"}
WRAPPERS |= {
    "noitalic",
    "not a typo",
    "proper name",
    "math",
    "mvar",
    "var",
    "nowrap begin",
    "tooltip",
    "sc",
    "smallcaps",
}
FRACTIONS = {("1", "2"): "½", ("1", "4"): "¼", ("3", "4"): "¾", ("1", "3"): "⅓", ("2", "3"): "⅔", ("1", "8"): "⅛"}
DASHES = {"ndash": "–", "mdash": "—", "snd": " – ", "spaced ndash": " – ", "nbsp": " ", "'": "'", "`": "'"}


def _positional(template: Template) -> list[str]:
    """Plain text of the unnamed arguments, in order."""
    return [plain_text(p.value).strip() for p in template.params if not p.showkey]


def _named(template: Template, name: str, default: str = "") -> str:
    return plain_text(template.get(name).value).strip() if template.has(name) else default


def _first(template: Template) -> str:
    args = _positional(template)
    return args[-1] if str(template.name).strip().lower() == "lang" and args else (args[0] if args else "")


def _convert(template: Template) -> str:
    """{{convert|1300|mi|km}} -> "1300 mi"; {{convert|10|to|15|km}} -> "10 to 15 km"."""
    args = _positional(template)
    if not args:
        return ""
    value, i = args[0], 1
    while i + 1 < len(args) and args[i] in RANGE_WORDS:
        value += RANGE_WORDS[args[i]] + args[i + 1]
        i += 2
    unit = args[i] if i < len(args) else ""
    return f"{value} {UNIT_NAMES.get(unit, unit)}".strip()


def _lang_prefixed(template: Template, code: str) -> str:
    """{{lang-de|Blitzkrieg}} -> "German: Blitzkrieg", as Wikipedia labels it."""
    term = _first(template)
    language = LANGUAGES.get(code.lower())
    return f"{language}: {term}" if language and term else term


def _langx(template: Template) -> str:
    args = _positional(template)
    return f"{LANGUAGES[args[0].lower()]}: {args[1]}" if len(args) > 1 and args[0].lower() in LANGUAGES else ""


def _ship_prefixed(template: Template, prefix: str) -> str:
    """{{USS|Enterprise|CV-6}} -> "USS Enterprise (CV-6)"."""
    args = _positional(template)
    if not args:
        return ""
    return f"{prefix} {args[0]}" + (f" ({args[1]})" if len(args) > 1 and args[1] else "")


def _ship(template: Template) -> str:
    """{{ship|HMS|Dreadnought|1906}} -> "HMS Dreadnought (1906)"."""
    args = _positional(template)
    if len(args) < 2:
        return " ".join(args)
    return f"{args[0]} {args[1]}" + (f" ({args[2]})" if len(args) > 2 and args[2] else "")


def _ship_class(template: Template) -> str:
    """{{sclass|Fletcher|destroyer}} -> "Fletcher-class destroyer"."""
    args = _positional(template)
    return f"{args[0]}-class {args[1]}" if len(args) > 1 else (args[0] if args else "")


def _ill(template: Template) -> str:
    """{{ill|Hans Example|de|Hans Beispiel}}: the English link text (or its lt= label)."""
    return _named(template, "lt") or _first(template)


def _date(year: str, month: str = "", day: str = "", month_first: bool = False) -> str:
    if not month.isdigit() or not 1 <= int(month) <= 12:
        return year
    name = calendar.month_name[int(month)]
    if not day.isdigit():
        return f"{name} {year}"
    return f"{name} {int(day)}, {year}" if month_first else f"{int(day)} {name} {year}"


def _start_date(template: Template) -> str:
    """{{start date|1944|6|6}} -> "6 June 1944" ({{... |mf=y}} -> "June 6, 1944")."""
    args = _positional(template)
    month_first = _named(template, "mf").lower() in ("y", "yes") or _named(template, "df").lower() in ("n", "no")
    return _date(*args[:3], month_first=month_first) if args else ""


def _death_date_and_age(template: Template) -> str:
    """{{death date and age|1945|4|30|1889|4|20}} -> "30 April 1945 (aged 56)"."""
    args = _positional(template)
    if len(args) < 4 or not all(a.isdigit() for a in args[:6]):
        return _start_date(template)
    died = tuple(int(a) for a in args[:3])
    born = tuple(int(a) for a in (args[3:6] + ["1", "1"])[:3])
    age = died[0] - born[0] - ((died[1], died[2]) < (born[1], born[2]))
    return f"{_start_date(template)} (aged {age})"


def _as_of(template: Template) -> str:
    """{{as of|2020|5}} -> "As of May 2020" (lc=y -> "as of")."""
    args = _positional(template)
    lead = "as of" if _named(template, "lc").lower() in ("y", "yes") else "As of"
    return f"{lead} {_date(*args[:3])}" if args else ""


def _circa(template: Template) -> str:
    return f"c. {_first(template)}".strip()


def _quote(template: Template) -> str:
    """A block quotation is a paragraph of its own; its attribution is not prose."""
    text = _named(template, "text") or _named(template, "quote") or _first(template)
    return f"\n\n{text}\n\n" if text else ""


def _fraction(template: Template) -> str:
    """{{frac|21|1|2}} -> "21½"; {{frac|3|16}} -> "3/16"."""
    args = _positional(template)
    whole, (num, den) = (args[0], args[1:3]) if len(args) >= 3 else ("", (args + ["", ""])[:2])
    if not den:
        return f"1/{num}" if num else ""
    return whole + FRACTIONS.get((num, den), f"{' ' if whole else ''}{num}/{den}")


def _nihongo(template: Template) -> str:
    """{{nihongo|Operation Ten-Go|天号作戦|Ten-gō sakusen}} -> "Operation Ten-Go (Ten-gō sakusen)"."""
    args = _positional(template) + ["", "", ""]
    english, romaji = args[0], args[2]
    return f"{english} ({romaji})" if english and romaji else english or romaji or args[1]


RENDERERS: dict[str, Callable[[Template], str]] = {
    "convert": _convert,
    "cvt": _convert,
    "langx": _langx,
    "ship": _ship,
    "sclass": _ship_class,
    "sclass2": _ship_class,
    "ill": _ill,
    "interlanguage link": _ill,
    "start date": _start_date,
    "end date": _start_date,
    "birth date": _start_date,
    "death date": _start_date,
    "start date and age": _start_date,
    "birth date and age": _start_date,  # the age of a living person changes daily: the date alone
    "death date and age": _death_date_and_age,
    "dts": _start_date,
    "as of": _as_of,
    "circa": _circa,
    "c.": _circa,
    "quote": _quote,
    "blockquote": _quote,
    "cquote": _quote,
    "quote box": _quote,
    "frac": _fraction,
    "fraction": _fraction,
    "nihongo": _nihongo,
    **{name: _first for name in WRAPPERS},
}


def render_template(template: Template) -> str:
    """The plain text a template shows in the article, or "" for one that is not prose."""
    name = str(template.name).strip().replace("_", " ")
    key = name[:1].lower() + name[1:]  # template names are case-insensitive in the first letter only
    if key in DASHES:
        return DASHES[key]
    if key.lower().startswith("lang-"):
        return _lang_prefixed(template, key[5:])
    if name in SHIP_PREFIXES:
        return _ship_prefixed(template, name)
    renderer = RENDERERS.get(key.lower())
    return renderer(template) if renderer else ""


def render_templates(code: Wikicode) -> None:
    """Replace every outermost template of `code` by its text, in place (nested ones are
    rendered inside their parent's arguments)."""
    outermost = [
        t
        for t in code.filter_templates(recursive=True)
        if not any(isinstance(a, Template) for a in code.get_ancestors(t))
    ]
    for template in outermost:  # listed first: replacing a parent detaches its children
        code.replace(template, Text(render_template(template)))


def plain_text(code: Wikicode) -> str:
    """A template argument as plain text: its own templates rendered, links to their text."""
    render_templates(code)
    return code.strip_code(normalize=True, collapse=True)
