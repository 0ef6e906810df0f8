"""Nothing typed or stored is rendered as HTML (docs/operations.md, "Safety"): no ``unsafe_allow_html``
and no HTML-rendering call anywhere in the app's source (app.py, pages/, ui/)."""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline.settings import PROJECT_ROOT

# Streamlit's ways to put raw HTML on a page: st.html, components.html / components.v1.html.
HTML_CALLS = {"html"}


def app_sources() -> list[Path]:
    return [PROJECT_ROOT / "app.py", *sorted((PROJECT_ROOT / "pages").rglob("*.py")),
            *sorted((PROJECT_ROOT / "ui").rglob("*.py"))]


def html_sinks(source: str) -> list[str]:
    """Every place in ``source`` that could render HTML: the flag anywhere in the text (a comment or a
    ``**{"unsafe_allow_html": True}`` included), and calls of an attribute named ``html``."""
    found = [f"line {n}: unsafe_allow_html" for n, line in enumerate(source.splitlines(), 1) if "unsafe_allow_html" in line]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in HTML_CALLS:
            found.append(f"line {node.lineno}: .{node.func.attr}(...)")
    return found


def test_the_check_finds_each_way_to_render_html():
    bad = ('st.markdown(text, unsafe_allow_html=True)\nst.write(x, **{"unsafe_allow_html": True})\n'
           "st.html(raw)\ncomponents.v1.html(raw)\n")
    assert html_sinks(bad) == ["line 1: unsafe_allow_html", "line 2: unsafe_allow_html", "line 3: .html(...)",
                               "line 4: .html(...)"]
    assert html_sinks("st.markdown(plain(text))\n") == []


def test_no_app_source_renders_html():
    sources = app_sources()
    assert {PROJECT_ROOT / "app.py", PROJECT_ROOT / "pages" / "simulator.py", PROJECT_ROOT / "ui" / "format.py"} <= set(sources)
    found = {str(p.relative_to(PROJECT_ROOT)): sinks for p in sources if (sinks := html_sinks(p.read_text()))}
    assert not found, f"HTML could reach the page: {found}; show text through st.markdown(plain(...)) or st.text instead"
