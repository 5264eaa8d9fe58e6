"""offline_plots: build the HTML template that lets `dvc plots show` render without internet.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so offline it is blank.
This writes .dvc/plots/offline.html, a page template with the three libraries inlined
(`.dvc/config` names it as `plots.html_template`), and their licence files beside it in
.dvc/plots/LICENSES/. All three are BSD-3-Clause (University of Washington Interactive Data
Lab); their bundles also carry d3 (ISC) and small MIT/ISC helpers, whose notices stay inside
the minified files. The versions are the ones DVC's own page asks for (dvc_render/vega.py),
so DVC's templates render exactly as they would online.

Rebuild (or upgrade) from the npm packages:

    npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2
    for f in vega-*.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
    python -m tools.offline_plots vega-5.20.2/package vega-lite-5.2.0/package vega-embed-6.18.2/package
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from common.files import atomic_write

# the page's order matters: vega-lite needs vega, vega-embed needs both
LIBRARIES = ("vega", "vega-lite", "vega-embed")
# the placeholders dvc_render fills in (dvc_render/html.py); `{scripts}` is left out on
# purpose: it would add DVC's CDN <script> tags back
PLOTS_PLACEHOLDER = "{plot_divs}"
REFRESH_PLACEHOLDER = "{refresh_tag}"
DVC_PLACEHOLDERS = (PLOTS_PLACEHOLDER, REFRESH_PLACEHOLDER, "{scripts}")

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- Built by `python -m tools.offline_plots`: {names}, inlined so the page needs no network. -->
{scripts}
    <style>
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


@dataclass(frozen=True)
class Library:
    name: str
    version: str
    licence_id: str
    licence_text: str
    script: str  # the minified UMD bundle (build/<name>.min.js)


def read_package(folder: Path) -> Library:
    """An unpacked npm package (the `package/` folder of its tarball)."""
    try:
        meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
        name = meta["name"]
        script = (folder / "build" / f"{name}.min.js").read_text(encoding="utf-8")
        licence = (folder / "LICENSE").read_text(encoding="utf-8")
        return Library(name, meta["version"], meta["license"], licence, script)
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{folder}: not an unpacked vega npm package ({exc})") from exc


def script_block(library: Library) -> str:
    for placeholder in DVC_PLACEHOLDERS:
        if placeholder in library.script:  # dvc_render would replace it inside the code
            raise ValueError(f"{library.name}: its code contains {placeholder}, which DVC would overwrite")
    # "</script" inside the code would end the inline block early; "<\/" means the same in JS
    code = library.script.replace("</script", "<\\/script")
    # "--" may not appear inside an HTML comment
    notice = library.licence_text.strip().replace("--", "- -")
    header = f"{library.name} {library.version} ({library.licence_id})"
    return f"    <!-- {header}\n{notice}\n    -->\n    <script>\n{code}\n    </script>"


def build_page(libraries: list[Library]) -> str:
    names = [library.name for library in libraries]
    if names != list(LIBRARIES):
        raise ValueError(f"expected the packages {', '.join(LIBRARIES)} in that order, got {', '.join(names)}")
    names_text = ", ".join(f"{library.name} {library.version}" for library in libraries)
    scripts = "\n".join(script_block(library) for library in libraries)
    page = PAGE.replace("{names}", names_text)
    # the scripts go in last, so nothing in their code is taken for a placeholder of ours
    return page.replace("{scripts}", scripts, 1)


def write_template(libraries: list[Library], out_dir: Path) -> Path:
    page_path = out_dir / "offline.html"
    with atomic_write(page_path) as handle:
        handle.write(build_page(libraries))
    for library in libraries:
        with atomic_write(out_dir / "LICENSES" / f"{library.name}.txt") as handle:
            handle.write(f"{library.name} {library.version}, {library.licence_id}\n\n{library.licence_text}")
    return page_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packages", type=Path, nargs=3, help="the unpacked vega, vega-lite and vega-embed packages")
    parser.add_argument("--out", type=Path, default=Path(".dvc/plots"), help="where offline.html and LICENSES/ go")
    args = parser.parse_args(argv)
    try:
        page = write_template([read_package(folder) for folder in args.packages], args.out)
    except ValueError as exc:
        print(f"offline_plots: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {page} ({page.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
