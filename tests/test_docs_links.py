"""README.md and the pages under docs/ link only to files and #anchors that exist.

`mkdocs build --strict` (CI) checks the pages under docs/, but README.md lies outside the site, so
its links would rot unseen; this test checks the README and the pages alike without MkDocs. An
anchor must match a heading of the target file, and every heading must get the same anchor under
GitHub's rule and MkDocs' (Python-Markdown's toc), so that a link works in both places.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_LINK_TEXT = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced and indented code blocks (indented: 4 spaces after a blank line)."""
    lines, in_fence, previous_blank, in_indented = [], False, True, False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        indented = line.startswith("    ") or line.startswith("\t")
        in_indented = indented and (previous_blank or in_indented)
        previous_blank = not line.strip()
        if not in_indented:
            lines.append(line)
    return lines


def heading_text(raw: str) -> str:
    """A heading's text as rendered: code spans keep their content, links their text."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), raw)
    text = INLINE_LINK_TEXT.sub(lambda m: m.group(1), text)
    return re.sub(r"<[^>]+>", "", text).replace("**", "").replace("*", "")


def github_slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, each space one hyphen."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def mkdocs_slug(text: str) -> str:
    """Python-Markdown toc's default slugify, as MkDocs uses it."""
    value = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def headings(path: Path) -> list[str]:
    return [heading_text(m.group(2)) for line in prose_lines(path.read_text()) if (m := HEADING.match(line))]


def anchors(path: Path) -> set[str]:
    return {github_slug(text) for text in headings(path)}


def broken_links(path: Path) -> list[str]:
    """Each relative link of ``path`` whose file or #anchor does not exist, as 'target: why'."""
    problems = []
    for line in prose_lines(path.read_text()):
        for target in LINK.findall(CODE_SPAN.sub("", line)):
            if SCHEME.match(target) or target.startswith("/"):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                problems.append(f"{target}: no file {linked}")
            elif anchor and linked.suffix != ".md":
                problems.append(f"{target}: an anchor into a file that is not markdown")
            elif anchor and anchor not in anchors(linked):
                problems.append(f"{target}: no heading of {linked.name} has the anchor #{anchor}")
    return problems


def test_slug_rules_match_the_renderers():
    assert github_slug("VAE (model=vae)") == mkdocs_slug("VAE (model=vae)") == "vae-modelvae"
    assert github_slug("The VAE-GAN's step") == "the-vae-gans-step"
    # where the two rules part: GitHub keeps one hyphen per space and non-ASCII letters
    assert (github_slug("BiGAN / ALI"), mkdocs_slug("BiGAN / ALI")) == ("bigan--ali", "bigan-ali")
    assert (github_slug("γ sweep"), mkdocs_slug("γ sweep")) == ("γ-sweep", "sweep")
    assert heading_text("`vaegan-eval` and [docs](x.md)") == "vaegan-eval and docs"


def test_broken_links_are_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[fine](other.md#a-section) [here](#page) [web](https://example.org/x)\n"
        "[gone](missing.md) [no anchor](other.md#b-section) [self](#nowhere)\n\n"
        "    [in code](missing-too.md)\n\n`[in a span](missing-three.md)`\n"
    )
    assert [problem.split(":")[0] for problem in broken_links(page)] == [
        "missing.md",
        "other.md#b-section",
        "#nowhere",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_and_anchors_resolve(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_each_heading_has_one_anchor_on_github_and_in_mkdocs(page):
    texts = headings(page)
    differ = [(t, github_slug(t), mkdocs_slug(t)) for t in texts if github_slug(t) != mkdocs_slug(t)]
    assert differ == []
    slugs = [github_slug(t) for t in texts]
    assert sorted({s for s in slugs if slugs.count(s) > 1}) == []
