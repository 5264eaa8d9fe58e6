import bz2
import dataclasses
import json
import re
import subprocess
import sys
from collections import Counter

import pytest

from common.params import load_section
from corpus.articles import DownloadError, DownloadParams, parse_sample_article, split_wiki_sections
from corpus.clean import CleanParams, clean_article
from corpus.mediawiki import fetch_titles
from corpus.sentences import split_sentences
from corpus.wiki_dump import read_dump, wikitext_to_plain
from corpus.windows import article_sentences
from stages import download
from tests.conftest import ROOT, write_params
from tests.mediawiki_server import MediaWikiState, start_server


def run_download(tmp_path, params, titles=None, sample_dir=None):
    titles_path = tmp_path / "titles.txt"
    titles_path.write_text("\n".join(titles or ["Battle of Stalingrad"]) + "\n")
    out = tmp_path / "out" / "articles.jsonl"
    code = download.main(
        [
            "--params",
            str(params),
            "--sample-dir",
            str(sample_dir or ROOT / "data/sample"),
            "--titles",
            str(titles_path),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(out),
            "--metrics",
            str(tmp_path / "metrics.json"),
        ]
    )
    return code, out


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- sample -----------------------------------------------------------------------------


def test_sample_source_ships_the_corpus_and_reruns_byte_identical(tmp_path, params_file):
    code, out = run_download(tmp_path, params_file())
    assert code == 0
    articles = records(out)
    assert len(articles) >= 25
    assert all(a["source"] == "sample" and a["sections"] for a in articles)
    first = out.read_bytes()
    assert run_download(tmp_path, params_file())[0] == 0
    assert out.read_bytes() == first


@pytest.mark.slow
def test_sample_corpus_is_big_enough_for_the_later_stages():
    for path in sorted((ROOT / "data/sample").glob("*.md")):
        article = parse_sample_article(path.read_text(), path.name)
        sentences = [s for sec in article["sections"] for p in sec["text"].split("\n\n") for s in split_sentences(p)]
        assert len(sentences) >= 40, f"{path.name}: only {len(sentences)} sentences"
        assert len(article["sections"]) >= 4, f"{path.name}: needs sections"


def test_a_malformed_sample_file_is_named_in_the_error(tmp_path, params_file, caplog):
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "broken.md").write_text("no title line here\n")
    code, _ = run_download(tmp_path, params_file(), sample_dir=sample)
    assert code == 2
    assert "broken.md: first line must be '# <title>'" in caplog.text


def test_an_unknown_source_is_a_clear_error(tmp_path, params_file, caplog):
    code, _ = run_download(tmp_path, params_file(download__source="ftp"))
    assert code == 2
    assert "download.source: 'ftp' is not one of sample, api, dump" in caplog.text


def test_split_wiki_sections_keeps_lead_and_levels():
    sections = split_wiki_sections("Lead text.\n\n== A ==\nBody A.\n=== A1 ===\nBody A1.\n== Empty ==\n")
    assert sections == [
        {"heading": "", "level": 1, "text": "Lead text."},
        {"heading": "A", "level": 2, "text": "Body A."},
        {"heading": "A1", "level": 3, "text": "Body A1."},
    ]


# --- api --------------------------------------------------------------------------------


@pytest.fixture
def mediawiki():
    servers = []

    def start(**kwargs):
        state = MediaWikiState(**kwargs)
        server, url = start_server(state)
        servers.append(server)
        return state, url

    yield start
    for server in servers:
        server.shutdown()


def api_params(tmp_path, url, **extra):
    overrides = {
        "download.source": "api",
        "download.api_url": url,
        "download.backoff_seconds": 0.01,
        "download.min_interval_seconds": 0.0,
        "download.timeout_seconds": 5.0,
    }
    overrides.update({f"download.{k}": v for k, v in extra.items()})
    return write_params(tmp_path, overrides)


def test_api_follows_redirects_continues_batches_and_reports_missing(tmp_path, mediawiki, caplog):
    state, url = mediawiki(fail_first=1)  # a 503 first, then success
    titles = ["Stalingrad", "battle of Midway", "No Such Battle", "Operation Barbarossa"]
    code, out = run_download(tmp_path, api_params(tmp_path, url), titles=titles)
    assert code == 0
    articles = records(out)
    assert [a["title"] for a in articles] == ["Battle of Stalingrad", "Battle of Midway", "Operation Barbarossa"]
    stalingrad = articles[0]
    assert stalingrad["requested_title"] == "Stalingrad"
    assert stalingrad["revision"] == 9000 and stalingrad["timestamp"] == "2026-01-01T00:00:00Z"
    assert [s["heading"] for s in stalingrad["sections"]] == ["", "Background", "References"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["missing_titles"] == ["No Such Battle"]
    assert "No Such Battle" in caplog.text
    assert all(ua.startswith("ww2lm/") for ua in state.user_agents)
    assert len(state.requests) == 1 + 3  # the 503, then three continued requests for one batch


def test_api_rerun_fetches_only_what_the_cache_lacks(tmp_path, mediawiki):
    state, url = mediawiki()
    params = api_params(tmp_path, url)
    assert run_download(tmp_path, params, titles=["Battle of Midway"])[0] == 0
    assert len(state.requests) == 1
    code, out = run_download(tmp_path, params, titles=["Battle of Midway", "Operation Barbarossa"])
    assert code == 0
    assert [r["titles"] for r in state.requests] == ["Battle of Midway", "Operation Barbarossa"]
    assert len(records(out)) == 2


def test_api_honours_retry_after_and_gives_up_with_a_clear_error(tmp_path, mediawiki):
    state, url = mediawiki(fail_first=2, retry_after="7")
    params = load_section(api_params(tmp_path, url), "download", DownloadParams)
    waits = []
    records_, missing = fetch_titles(["Battle of Midway"], params, tmp_path / "cache", sleep=waits.append)
    assert waits[:2] == [7.0, 7.0]
    assert len(records_) == 1 and missing == []

    state, url = mediawiki(fail_first=100)
    params = load_section(api_params(tmp_path, url, max_retries=2), "download", DownloadParams)
    with pytest.raises(DownloadError, match=r"gave up after 3 attempts \(HTTP 503\)"):
        fetch_titles(["Operation Barbarossa"], params, tmp_path / "cache2", sleep=lambda s: None)


def test_api_retries_a_refused_connection_then_fails_clearly(tmp_path, params_file, caplog):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    params = api_params(tmp_path, f"http://127.0.0.1:{port}/w/api.php", max_retries=1)
    code, _ = run_download(tmp_path, params, titles=["Battle of Midway"])
    assert code == 2
    assert "gave up after 2 attempts (ConnectError" in caplog.text


# --- dump -------------------------------------------------------------------------------

DUMP = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="en">
  <siteinfo><sitename>Wikipedia</sitename><dbname>enwiki</dbname><base>https://en.wikipedia.org/wiki/Main_Page</base>
    <generator>MediaWiki 1.41</generator><case>first-letter</case>
    <namespaces><namespace key="0" case="first-letter" /><namespace key="10" case="first-letter">Template</namespace></namespaces>
  </siteinfo>
{pages}
</mediawiki>
"""
PAGE = """  <page><title>{title}</title><ns>{ns}</ns><id>{id}</id>{redirect}
    <revision><id>{rev}</id><timestamp>2026-02-03T04:05:06Z</timestamp><contributor><username>X</username><id>1</id></contributor>
      <model>wikitext</model><format>text/x-wiki</format><text bytes="1" xml:space="preserve">{text}</text><sha1>abc</sha1></revision>
  </page>"""


def write_dump(path, pages, compress=False):
    body = "\n".join(
        PAGE.format(
            title=t, ns=ns, id=i + 1, rev=100 + i, text=text, redirect=f'<redirect title="{red}" />' if red else ""
        )
        for i, (t, ns, red, text) in enumerate(pages)
    )
    data = DUMP.format(pages=body).encode()
    path.write_bytes(bz2.compress(data) if compress else data)


STALINGRAD_WIKITEXT = (
    "{{Infobox military conflict|conflict=Battle of Stalingrad}}\n"
    "The '''Battle of Stalingrad''' was fought on the [[Volga|Volga River]].&lt;ref&gt;Glantz, p. 1&lt;/ref&gt;\n"
    "== Background ==\nThe [[6th Army (Wehrmacht)|6th Army]] attacked in 1942.{{citation needed}}\n"
    '{| class="wikitable"\n|-\n! Side !! Men\n|-\n| Axis || 1,000,000\n|}\n'
    "[[Category:Battles of World War II]]\n"
)


@pytest.mark.parametrize("compress", [False, True])
def test_dump_streams_filters_follows_redirects_and_strips_wikitext(tmp_path, compress):
    path = tmp_path / ("dump.xml.bz2" if compress else "dump.xml")
    write_dump(
        path,
        [
            ("Battle of Stalingrad", 0, None, STALINGRAD_WIKITEXT),  # target before its redirect
            ("Template:Infobox", 10, None, "template body"),
            ("Battle of Kursk", 0, None, "Not in the list."),
            ("Stalingrad", 0, "Battle of Stalingrad", "#REDIRECT [[Battle of Stalingrad]]"),
        ],
        compress=compress,
    )
    found, missing, warnings = read_dump(path, ["Stalingrad", "Battle of Midway"])
    assert missing == ["Battle of Midway"] and warnings == []
    assert len(found) == 1
    article = found[0]
    assert article["title"] == "Battle of Stalingrad" and article["requested_title"] == "Stalingrad"
    assert article["revision"] == 100
    text = " ".join(s["text"] for s in article["sections"])
    assert "was fought on the Volga River." in text
    assert "6th Army attacked in 1942." in text
    for leftover in ("{{", "[[", "Glantz", "wikitable", "Axis", "Category"):
        assert leftover not in text


def test_dump_source_through_main(tmp_path):
    path = tmp_path / "dump.xml"
    write_dump(path, [("Battle of Stalingrad", 0, None, STALINGRAD_WIKITEXT)])
    params = write_params(tmp_path, {"download.source": "dump", "download.dump_path": str(path)})
    code, out = run_download(tmp_path, params)
    assert code == 0
    assert records(out)[0]["source"] == "dump"


KURSK_WIKITEXT = "The '''Battle of Kursk''' began on {{start date|1943|7|5}}. " * 30


def test_a_truncated_dump_keeps_what_was_read_and_says_so(tmp_path, caplog):
    path = tmp_path / "dump.xml"
    write_dump(
        path, [("Battle of Stalingrad", 0, None, STALINGRAD_WIKITEXT), ("Battle of Kursk", 0, None, KURSK_WIKITEXT)]
    )
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"Battle of Kursk</title>") + 400])  # cut inside the second page
    params = write_params(tmp_path, {"download.source": "dump", "download.dump_path": str(path)})
    code, out = run_download(tmp_path, params, titles=["Battle of Stalingrad", "Battle of Kursk"])
    assert code == 0
    assert [r["title"] for r in records(out)] == ["Battle of Stalingrad"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["missing_titles"] == ["Battle of Kursk"]
    assert len(metrics["warnings"]) == 1 and "dump truncated after 1 pages" in metrics["warnings"][0]
    assert "dump truncated" in caplog.text


def test_a_truncated_multistream_bz2_dump_keeps_its_complete_streams(tmp_path):
    plain = tmp_path / "dump.xml"
    filler = [(f"Page {n}", 0, None, "Other text. " * 300) for n in range(60)]  # more than one read of the parser
    pages = [
        ("Battle of Stalingrad", 0, None, STALINGRAD_WIKITEXT),
        *filler,
        ("Battle of Kursk", 0, None, KURSK_WIKITEXT),
    ]
    write_dump(plain, pages)
    data = plain.read_bytes()
    split = data.index(b"  <page><title>Battle of Kursk")
    path = tmp_path / "dump.xml.bz2"  # like enwiki's multistream dumps: one bz2 stream per chunk of pages
    path.write_bytes(bz2.compress(data[:split]) + bz2.compress(data[split:])[:-40])
    found, missing, warnings = read_dump(path, ["Battle of Stalingrad", "Battle of Kursk"])
    assert [r["title"] for r in found] == ["Battle of Stalingrad"] and missing == ["Battle of Kursk"]
    assert "Compressed file ended" in warnings[0]


def test_a_dump_that_gives_no_page_is_a_clear_error(tmp_path, caplog):
    path = tmp_path / "dump.xml.bz2"
    write_dump(path, [("Battle of Stalingrad", 0, None, STALINGRAD_WIKITEXT)], compress=True)
    path.write_bytes(path.read_bytes()[:-40])
    params = write_params(tmp_path, {"download.source": "dump", "download.dump_path": str(path)})
    code, _ = run_download(tmp_path, params)
    assert code == 2
    assert "unreadable dump" in caplog.text


def test_dump_redirect_and_target_both_listed_are_both_found(tmp_path):
    path = tmp_path / "dump.xml"
    write_dump(
        path,
        [
            ("Stalingrad", 0, "Battle of Stalingrad", "#REDIRECT [[Battle of Stalingrad]]"),
            ("Battle of Stalingrad", 0, None, STALINGRAD_WIKITEXT),
        ],
    )
    found, missing, _ = read_dump(path, ["Stalingrad", "Battle of Stalingrad"])
    assert missing == []
    assert [(r["title"], r["requested_title"]) for r in found] == [
        ("Battle of Stalingrad", "Stalingrad"),
        ("Battle of Stalingrad", "Battle of Stalingrad"),
    ]


def test_dump_titles_match_as_mediawiki_normalises_them(tmp_path):
    path = tmp_path / "dump.xml"
    write_dump(
        path, [("Battle of Stalingrad", 0, None, STALINGRAD_WIKITEXT), ("Battle of Kursk", 0, None, KURSK_WIKITEXT)]
    )
    found, missing, _ = read_dump(path, ["battle_of_Stalingrad", "  Battle  of Kursk#Prelude"])
    assert missing == []
    assert [r["requested_title"] for r in found] == ["battle_of_Stalingrad", "  Battle  of Kursk#Prelude"]


def test_wikitext_headings_survive_as_section_markers():
    assert "== Background ==" in wikitext_to_plain("Lead.\n== Background ==\nBody.")


def test_a_sample_file_that_is_not_utf8_is_named(tmp_path, params_file, caplog):
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "latin1.md").write_bytes(
        b"# Battle of Kursk\n\nThe Soviet front held at Kursk in 1943.\n" + b"\xe9\xff\n"
    )
    code, _ = run_download(tmp_path, params_file(), sample_dir=sample)
    assert code == 2
    assert "latin1.md: not valid UTF-8 (byte 0xe9 at offset 59)" in caplog.text


# --- api replies that are not what the API promises --------------------------------------


def test_api_formatversion_1_reply_is_read(tmp_path, mediawiki):
    _, url = mediawiki(format_version=1)
    code, out = run_download(tmp_path, api_params(tmp_path, url), titles=["Stalingrad", "No Such Battle"])
    assert code == 0
    assert [a["title"] for a in records(out)] == ["Battle of Stalingrad"]
    assert json.loads((tmp_path / "metrics.json").read_text())["missing_titles"] == ["No Such Battle"]


def test_api_continue_that_never_advances_stops_with_an_error(tmp_path, mediawiki, caplog):
    state, url = mediawiki(stuck_continue=True)
    code, _ = run_download(tmp_path, api_params(tmp_path, url), titles=["Battle of Midway", "Operation Barbarossa"])
    assert code == 2
    assert '\'continue\' {"continue": "||revisions", "excontinue": 1} does not advance' in caplog.text
    assert len(state.requests) == 2


@pytest.mark.parametrize(
    "reply, message",
    [
        (b'["query", {"pages": []}]', "reply is a JSON list, not an object"),
        (b'{"error": "the wiki is closed"}', "API error unknown: the wiki is closed"),
        (b'{"error": {"code": "badvalue", "*": "Unrecognized value"}}', "API error badvalue: Unrecognized value"),
        (b'{"query": {"pages": [{"ns": 0, "extract": "text"}]}}', "a page without a title"),
        (b'{"query": {"pages": "none"}}', "'pages' is neither a list nor an object"),
        (b'{"query": {"redirects": [{"from": "A"}]}}', "'redirects' is not a list of {from, to} titles"),
        (b'{"query": {"pages": []}, "continue": "more"}', "'continue' \"more\" does not advance"),
        (b'{"query": "\xff\xfe"}', "gave up after 2 attempts (reply is not JSON in UTF-8"),
        (b"<html>maintenance</html>", "gave up after 2 attempts (reply is not JSON in UTF-8"),
    ],
)
def test_api_replies_of_the_wrong_shape_are_clear_errors(tmp_path, mediawiki, caplog, reply, message):
    _, url = mediawiki(raw_reply=reply)
    code, out = run_download(tmp_path, api_params(tmp_path, url, max_retries=1), titles=["Battle of Midway"])
    assert code == 2
    assert message in caplog.text
    assert "Traceback" not in caplog.text and not out.exists()


def test_download_run_as_a_module_reports_errors_without_a_traceback(tmp_path):
    params = write_params(tmp_path, {"download.source": "dump", "download.dump_path": str(tmp_path / "none.xml")})
    titles = tmp_path / "titles.txt"
    titles.write_text("Battle of Midway\n")
    command = [sys.executable, "-m", "stages.download", "--params", str(params), "--titles", str(titles)]
    command += [
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "a.jsonl"),
        "--metrics",
        str(tmp_path / "m.json"),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "none.xml: dump file not found (set download.dump_path)" in result.stderr
    assert "Traceback" not in result.stderr


def test_api_body_that_fails_to_decode_is_retried_then_a_clear_error(tmp_path, mediawiki, caplog):
    _, url = mediawiki(raw_reply=b"not gzip at all", raw_headers={"Content-Encoding": "gzip"})
    code, _ = run_download(tmp_path, api_params(tmp_path, url, max_retries=1), titles=["Battle of Midway"])
    assert code == 2
    assert "gave up after 2 attempts (DecodingError" in caplog.text


CORAL_SEA_WIKITEXT = """{{Short description|1942 naval battle of World War II}}
{{Use dmy dates|date=May 2020}}
{{Infobox military conflict
| conflict = Battle of the Coral Sea
| date     = {{start date|1942|5|4}} – {{end date|1942|5|8}}
| result   = Tactically inconclusive
}}
The '''Battle of the Coral Sea''', from {{start date|1942|5|4}} to 8 May 1942, was the first battle \
in which [[aircraft carrier]]s fought each other.&lt;ref&gt;{{cite book|last=Lundstrom|year=1984}}&lt;/ref&gt; \
The Japanese aimed at [[Port Moresby]] ({{lang-ja|Pōto Moresubī}}) in '''Operation MO'''.{{sfn|Willmott|1983|p=12}}

== Forces ==
The Americans sent {{USS|Lexington|CV-2}} and {{USS|Yorktown|CV-5}} under [[Frank Jack Fletcher]].
{{Campaignbox Pacific}}

== Aftermath ==
{{As of|2018}}, the wreck of ''Lexington'' lies at a depth of about {{convert|3000|m|ft}}.
"""


def test_dump_page_keeps_the_facts_its_templates_carry_through_clean(tmp_path):
    path = tmp_path / "dump.xml"
    write_dump(path, [("Battle of the Coral Sea", 0, None, CORAL_SEA_WIKITEXT)])
    (record,), missing, _ = read_dump(path, ["Battle of the Coral Sea"])
    params = dataclasses.replace(load_section(ROOT / "params.yaml", "clean", CleanParams), min_chars=40)
    cleaned, reason = clean_article(record, params, Counter())
    assert reason is None and missing == []
    assert [s for _, s in article_sentences(cleaned)] == [
        "The Battle of the Coral Sea, from 4 May 1942 to 8 May 1942, was the first battle in which aircraft "
        "carriers fought each other.",
        "The Japanese aimed at Port Moresby (Japanese: Pōto Moresubī) in Operation MO.",
        "The Americans sent USS Lexington (CV-2) and USS Yorktown (CV-5) under Frank Jack Fletcher.",
        "As of 2018, the wreck of Lexington lies at a depth of about 3000 m.",
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"<html><body>Not a dump.</body></html>", "not a MediaWiki XML dump"),
        (b"", "unreadable dump: no element found"),
        (
            DUMP.format(
                pages="<page><ns>0</ns><id>1</id><revision><id>2</id><text>Text.</text></revision></page>"
            ).encode(),
            "not a MediaWiki XML dump, or a malformed page in it (AttributeError",
        ),
    ],
)
def test_a_file_that_is_not_a_dump_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "dump.xml"
    path.write_bytes(content)
    with pytest.raises(DownloadError, match=re.escape(message)):
        read_dump(path, ["Battle of Midway"])
