"""Which characters an English training record may contain, and the script of any other.

Allowed (an allow-list, so a script nobody thought of is rejected, not waved through):
Latin letters with any diacritic (Basic Latin, Latin-1, Latin Extended A–E, IPA, Latin
Extended Additional: "Kraków", "Łódź", "Ōkinawa", "Nguyễn"), combining marks, and the Common
script's punctuation, digits, currency, letterlike and number forms, arrows, maths, symbols
and emoji. Python's unicodedata has no Script property, so the table below lists the Unicode
blocks (https://www.unicode.org/Public/UCD/latest/ucd/Blocks.txt); characters outside it are
named by block where we know the script, else by the first word of their Unicode name.

Not allowed, although some are "Common" in Unicode's script property: fullwidth forms
("，", "１９４３") and CJK symbols and punctuation ("。", "「」", "々", "〇"). The clean stage
NFKC-normalises the source articles, so these reach a record only from a helper model that
drifted into Chinese or Japanese, and they are the first sign of it.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

# (first, last, script or None = allowed), sorted, non-overlapping.
_BLOCKS: list[tuple[int, int, str | None]] = [
    (0x0009, 0x000A, None),
    (0x000D, 0x000D, None),
    (0x0020, 0x007E, None),
    (0x00A0, 0x036F, None),  # Latin-1, Latin Extended-A/B, IPA, spacing modifiers, combining marks
    (0x0370, 0x03FF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"),
    (0x0530, 0x058F, "Armenian"),
    (0x0590, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"),
    (0x0700, 0x074F, "Syriac"),
    (0x0750, 0x077F, "Arabic"),
    (0x0780, 0x07BF, "Thaana"),
    (0x0870, 0x08FF, "Arabic"),
    (0x0900, 0x097F, "Devanagari"),
    (0x0E00, 0x0E7F, "Thai"),
    (0x0E80, 0x0EFF, "Lao"),
    (0x0F00, 0x0FFF, "Tibetan"),
    (0x1000, 0x109F, "Myanmar"),
    (0x10A0, 0x10FF, "Georgian"),
    (0x1100, 0x11FF, "Hangul"),
    (0x1200, 0x139F, "Ethiopic"),
    (0x1780, 0x17FF, "Khmer"),
    (0x1800, 0x18AF, "Mongolian"),
    (0x1AB0, 0x1AFF, None),  # combining diacritical marks extended
    (0x1C80, 0x1C8F, "Cyrillic"),
    (0x1C90, 0x1CBF, "Georgian"),
    (0x1D00, 0x1EFF, None),  # phonetic extensions, combining supplement, Latin Extended Additional
    (0x1F00, 0x1FFF, "Greek"),
    (0x2000, 0x2BFF, None),  # punctuation, super/subscripts, currency, letterlike, number forms, arrows, maths, symbols
    (0x2C60, 0x2C7F, None),  # Latin Extended-C
    (0x2DE0, 0x2DFF, "Cyrillic"),
    (0x2E80, 0x2FDF, "Han"),  # CJK and Kangxi radicals
    (0x2FF0, 0x303F, "CJK_Symbols"),  # ideographic description, CJK symbols and punctuation
    (0x3040, 0x309F, "Hiragana"),
    (0x30A0, 0x30FF, "Katakana"),
    (0x3100, 0x312F, "Bopomofo"),
    (0x3130, 0x318F, "Hangul"),
    (0x3190, 0x319F, "CJK_Symbols"),
    (0x31A0, 0x31BF, "Bopomofo"),
    (0x31C0, 0x31EF, "Han"),
    (0x31F0, 0x31FF, "Katakana"),
    (0x3200, 0x33FF, "CJK_Symbols"),
    (0x3400, 0x4DBF, "Han"),
    (0x4DC0, 0x4DFF, None),  # Yijing hexagram symbols (Common)
    (0x4E00, 0x9FFF, "Han"),
    (0xA000, 0xA4CF, "Yi"),
    (0xA640, 0xA69F, "Cyrillic"),
    (0xA720, 0xA7FF, None),  # Latin Extended-D
    (0xA960, 0xA97F, "Hangul"),
    (0xAB30, 0xAB6F, None),  # Latin Extended-E
    (0xAC00, 0xD7FF, "Hangul"),
    (0xE000, 0xF8FF, "Private_Use"),
    (0xF900, 0xFAFF, "Han"),
    (0xFB00, 0xFB06, None),  # Latin ligatures (ﬁ)
    (0xFB1D, 0xFB4F, "Hebrew"),
    (0xFB50, 0xFDFF, "Arabic"),
    (0xFE00, 0xFE0F, None),
    (0xFE20, 0xFE2F, None),  # variation selectors, combining half marks
    (0xFE30, 0xFE6F, "CJK_Symbols"),
    (0xFE70, 0xFEFF, "Arabic"),
    (0xFF00, 0xFF64, "Fullwidth"),
    (0xFF65, 0xFF9F, "Katakana"),
    (0xFFA0, 0xFFDC, "Hangul"),
    (0xFFE0, 0xFFEF, "Fullwidth"),
    (0x1F000, 0x1FAFF, None),  # mahjong/domino/playing cards, enclosed alphanumerics, emoji
    (0x20000, 0x2FA1F, "Han"),  # extensions B–F and compatibility supplement
    (0x30000, 0x323AF, "Han"),  # extensions G–H
]
_STARTS = [first for first, _, _ in _BLOCKS]
# Any character outside the allowed blocks: one regex scan finds the first that needs a look-up,
# where a loop in Python would step over every "é" and "–" of a text.
_NOT_ALLOWED = re.compile(
    "[^"
    + "".join(f"{re.escape(chr(first))}-{re.escape(chr(last))}" for first, last, script in _BLOCKS if script is None)
    + "]"
)


def char_script(char: str) -> str | None:
    """None if `char` may appear in English text, else the name of its script or block."""
    code = ord(char)
    i = bisect.bisect_right(_STARTS, code) - 1
    if i >= 0 and code <= _BLOCKS[i][1]:
        return _BLOCKS[i][2]
    category = unicodedata.category(char)
    if category == "Cc":
        return "Control"
    if category == "Cn":
        return "Unassigned"
    name = unicodedata.name(char, "")
    if name.startswith("LATIN "):  # a Latin block not listed above (Latin Extended-F/G)
        return None
    if name.startswith("CJK "):  # an ideograph block newer than the table
        return "Han"
    return name.split(" ", 1)[0].title() if name else "Unknown"


def first_foreign_char(text: str) -> tuple[str, int, str] | None:
    """(script, position, character) of the first character English text may not hold."""
    if text.isascii() and text.isprintable():  # fast path: most records are plain ASCII
        return None
    found = _NOT_ALLOWED.search(text)
    if found is None:
        return None
    for position in range(found.start(), len(text)):
        char = text[position]
        if " " <= char <= "~":
            continue
        script = char_script(char)
        if script is not None:
            return script, position, char
    return None
