"""Markup out, prose in: wiki and HTML leftovers, Markdown, citation marks and odd characters.

The clean stage gets text from three kinds of source: MediaWiki plain-text extracts and
stripped dump pages (wiki leftovers: `[[links]]`, `'''bold'''`, `<ref>`), and Markdown or
web prose (`[text](url)`, `**bold**`, `![image](url)`). Every kind keeps the words a reader
sees (link text, emphasised text) and loses what a reader does not (URLs, images, footnotes).
"""

from __future__ import annotations

import re
import unicodedata

# Only the marks Wikipedia prints: [1] to [999], [a] to [zz] (lower case: "[I]" is an editor's
# insertion), [note 3], [nb 2], and the inline cleanup tags. A list in brackets ("[1, 2, 3]",
# "[1–3]"), a year ("[1939]") or "[sic]" is prose and stays.
CITATION = re.compile(
    r"\[\s*(?:\d{1,3}|[a-z]{1,2}|(?i:note|nb|n)\s*\d{1,3}|(?i:"
    r"(?:full\s+)?citation needed|clarification needed|verification needed|page needed|"
    r"better source needed|dubious(?:\s*[–-]\s*discuss)?|discuss|who\?|when\?|where\?|which\?|"
    r"why\?|by whom\?|according to whom\?|year needed|failed verification|original research\?))\s*\]"
    r"(?!\()"  # "[a](url)" is a Markdown link
)
REF_TAG = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.IGNORECASE | re.DOTALL)
HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
FILE_LINK = re.compile(r"\[\[(?:File|Image|Category|Media):[^\[\]]*(?:\[\[[^\]]*\]\][^\[\]]*)*\]\]", re.IGNORECASE)
PIPED_LINK = re.compile(r"\[\[[^\[\]|]*\|([^\[\]]*)\]\]")
PLAIN_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
EXTERNAL_LINK = re.compile(r"\[(?:https?:)?//\S+\s+([^\]]*)\]")
WIKI_EMPHASIS = re.compile(r"'{2,5}")

# A URL may hold one level of balanced parentheses (Wikipedia's ".../Dragoon_(operation)"),
# but a ")" that closes the prose around it is not part of it.
URL = r"https?://[^\s<>()\[\]]+(?:\([^\s<>()]*\)[^\s<>()\[\]]*)*"
BARE_URL = re.compile(URL + r"(?<![.,;:!?'\"])")
MD_TARGET = r"\(\s*(?:<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
MD_IMAGE = re.compile(r"!\[[^\]]*\]" + MD_TARGET)
MD_LINK = re.compile(r"\[([^\]\[]+)\]" + MD_TARGET)
MD_REFERENCE_LINK = re.compile(r"(?!" + CITATION.pattern + r")\[([^\]\[]+)\]\[[^\]\[]*\]")  # not "[1][2]"
MD_DEFINITION_LINE = re.compile(r"^\s*\[\^?[^\]]+\]:.*$", re.MULTILINE)  # [id]: url, [^1]: footnote
MD_FOOTNOTE_MARK = re.compile(r"\[\^[^\]\s]+\]")
MD_AUTOLINK = re.compile(r"<" + URL + r">")
MD_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
MD_EMPHASIS = re.compile(
    r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])|(?<!\w)_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)"
)
MD_STRIKE_OR_CODE = re.compile(r"(~~|`)([^`~\n]+)\1")
MD_BLOCKQUOTE = re.compile(r"^\s*>+ ?", re.MULTILINE)
MD_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.MULTILINE)

INVISIBLE = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad]")
# Compatibility forms that are only a different look of plain text: full-width letters,
# no-break and typographic spaces, math-styled letters. NFKC folds far more ("21½" becomes
# "211⁄2", "mc²" becomes "mc2", "H₂O" becomes "H2O"), so only these tags are folded
# (https://www.unicode.org/reports/tr44/#Character_Decomposition_Mappings).
FOLDED_DECOMPOSITIONS = ("<wide>", "<narrow>", "<noBreak>", "<font>")
LIGATURES = {chr(c) for c in range(0xFB00, 0xFB07)}  # ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ


def strip_wiki(text: str) -> str:
    text = HTML_COMMENT.sub("", text)
    text = REF_TAG.sub("", text)
    for _ in range(5):  # templates nest; peel them from the inside out
        text, count = TEMPLATE.subn("", text)
        if not count:
            break
    text = FILE_LINK.sub("", text)
    text = PIPED_LINK.sub(r"\1", text)
    text = PLAIN_LINK.sub(r"\1", text)
    return EXTERNAL_LINK.sub(r"\1", text)


def strip_markdown(text: str) -> str:
    text = MD_DEFINITION_LINE.sub("", text)
    text = MD_RULE.sub("", text)
    text = MD_IMAGE.sub("", text)
    text = MD_LINK.sub(r"\1", text)
    text = MD_REFERENCE_LINK.sub(r"\1", text)
    text = MD_FOOTNOTE_MARK.sub("", text)
    text = MD_AUTOLINK.sub("", text)
    text = MD_STRONG.sub(r"\2", text)
    text = MD_EMPHASIS.sub(lambda m: m.group(1) or m.group(2), text)
    text = MD_STRIKE_OR_CODE.sub(r"\2", text)
    return MD_BLOCKQUOTE.sub("", text)


def strip_markup(text: str) -> str:
    """Remove citation marks, wiki, HTML and Markdown leftovers from one block of text."""
    text = strip_markdown(strip_wiki(text))
    text = BARE_URL.sub("", text)
    text = HTML_TAG.sub("", text)
    text = WIKI_EMPHASIS.sub("", text)
    return CITATION.sub("", text)


def fold_character(char: str) -> str:
    decomposition = unicodedata.decomposition(char)
    if decomposition.startswith(FOLDED_DECOMPOSITIONS) or char in LIGATURES:
        return unicodedata.normalize("NFKC", char)
    if unicodedata.category(char) == "Zs":
        return " "
    return char


def normalise(text: str) -> str:
    """NFC with only the look-alike compatibility forms folded (full-width letters, no-break
    spaces, ligatures), no invisible or control characters, single spaces, no space before
    punctuation or empty brackets left behind by removed marks."""
    text = "".join(fold_character(c) for c in unicodedata.normalize("NFC", text))
    text = INVISIBLE.sub("", text)
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c)[0] != "C")
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" ?\(\s*(?:[Ss]ee(?: also)?)?\s*[,;]?\s*\)|\[\s*\]", "", text)  # "(see <url>)" emptied
    text = re.sub(r" +([.,;:!?%)])", r"\1", text)
    text = re.sub(r"\( +", "(", text)
    text = re.sub(r" {2,}", " ", text)
    return text.strip()
