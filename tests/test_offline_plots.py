"""Offline `dvc plots`: the shipped HTML template inlines vega, vega-lite and vega-embed (with
their licences), DVC fills it without adding CDN scripts, and the key-scores chart template
takes the rows the evaluate stage writes."""

import configparser
import json
import re

import pytest
from dvc_render.html import render_html
from dvc_render.vega import VegaRenderer

from evaluation.key_scores import KEY_SCORES, key_scores
from tests.conftest import ROOT
from tools import offline_plots
from tools.offline_plots import Library, build_page, read_package

PLOTS = ROOT / ".dvc/plots"
TEMPLATE = PLOTS / "offline.html"


def fake(name: str, script: str = "", version: str = "1.0.0") -> Library:
    code = script or f"window.{name.replace('-', '_')} = {{}};"
    return Library(name, version, "BSD-3-Clause", "Copyright (c) 2015 -- the authors", code)


def fakes(**scripts: str) -> list[Library]:
    return [fake(name, scripts.get(name.replace("-", "_"), "")) for name in offline_plots.LIBRARIES]


def test_the_page_inlines_the_libraries_in_order_with_their_licences():
    page = build_page(fakes(vega_embed='if (x) { s = "</script>"; }'))
    assert page.index("window.vega =") < page.index("window.vega_lite =") < page.index('if (x) { s = "<\\/script>"; }')
    assert "{plot_divs}" in page and "{refresh_tag}" in page
    assert "{scripts}" not in page  # DVC would put its CDN script tags there
    assert "<!-- vega-lite 1.0.0 (BSD-3-Clause)\nCopyright (c) 2015 - - the authors\n    -->" in page
    assert "<script src" not in page


def test_code_that_holds_a_dvc_placeholder_or_a_wrong_package_set_is_refused():
    with pytest.raises(ValueError, match=r"vega: its code contains \{plot_divs\}"):
        build_page(fakes(vega="var t = '{plot_divs}';"))
    with pytest.raises(ValueError, match="expected the packages vega, vega-lite, vega-embed in that order"):
        build_page(list(reversed(fakes())))


def test_main_builds_the_template_from_unpacked_packages_and_refuses_other_folders(tmp_path, capsys):
    folders = []
    for name in offline_plots.LIBRARIES:
        folder = tmp_path / name / "package"
        (folder / "build").mkdir(parents=True)
        (folder / "package.json").write_text(json.dumps({"name": name, "version": "9.9.9", "license": "BSD-3-Clause"}))
        (folder / "build" / f"{name}.min.js").write_text(f"/* {name} */")
        (folder / "LICENSE").write_text(f"{name} licence text")
        folders.append(str(folder))
    out = tmp_path / "plots"
    assert offline_plots.main([*folders, "--out", str(out)]) == 0
    page = (out / "offline.html").read_text()
    assert "/* vega */" in page and "/* vega-embed */" in page
    assert (out / "LICENSES/vega-lite.txt").read_text() == "vega-lite 9.9.9, BSD-3-Clause\n\nvega-lite licence text"
    assert offline_plots.main([str(tmp_path), *folders[1:], "--out", str(tmp_path / "other")]) == 2
    assert "not an unpacked vega npm package" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
    with pytest.raises(ValueError, match="package.json"):
        read_package(tmp_path)


def test_the_shipped_template_is_the_one_dvc_is_configured_with_and_has_the_pinned_libraries():
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc/config")
    assert (ROOT / ".dvc" / config["plots"]["html_template"]) == TEMPLATE
    page = TEMPLATE.read_text(encoding="utf-8")
    # the versions dvc-render's own page asks its CDN for, so its templates render as online
    pinned = dict(re.findall(r"npm/([a-z-]+)@([\d.]+)", VegaRenderer.SCRIPTS))
    assert pinned == {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}
    for name, version in pinned.items():
        assert f"<!-- {name} {version} (BSD-3-Clause)" in page
        assert (PLOTS / "LICENSES" / f"{name}.txt").read_text().startswith(f"{name} {version}, BSD-3-Clause")
    assert "<script src" not in page and "{scripts}" not in page


def test_dvc_fills_the_shipped_template_without_any_cdn_script(tmp_path):
    rows = key_scores({"splits": {"recall": {"pass_rate": 0.42, "baselines": {"chance": 0.425}}}})
    datapoints = [{**row, "rev": "workspace"} for row in rows]
    renderer = VegaRenderer(
        datapoints, "metrics/eval_scores.json", template="scores", template_dir=str(PLOTS), x="value", y="score"
    )
    out = render_html([renderer], tmp_path / "index.html", html_template=str(TEMPLATE))
    page = out.read_text(encoding="utf-8")
    assert "cdn.jsdelivr" not in page and "vegaEmbed('#" in page
    spec = renderer.get_filled_template()
    assert spec["data"]["values"] == datapoints
    assert spec["facet"]["column"]["sort"] == {"field": "rank", "op": "min"}


def test_key_scores_keep_their_order_and_skip_splits_not_measured():
    metrics = {
        "splits": {
            "unseen": {"pass_rate": 0.1, "baselines": {"chance": 0.46}},
            "recall": {"pass_rate": 0.42, "baselines": {"chance": 0.425}},
            "exam": {"ll_acc": 0.37, "ll_acc_norm": 0.41, "generated_acc": None, "baselines": {"chance": 0.25}},
        }
    }
    assert key_scores(metrics) == [
        {"score": "recall", "value": 0.42, "chance": 0.425, "rank": 0},
        {"score": "unseen", "value": 0.1, "chance": 0.46, "rank": 2},
        {"score": "exam ll", "value": 0.37, "chance": 0.25, "rank": 3},
        {"score": "exam norm", "value": 0.41, "chance": 0.25, "rank": 4},
    ]
    assert len({label for label, _, _ in KEY_SCORES}) == len(KEY_SCORES)
    assert key_scores({}) == []
