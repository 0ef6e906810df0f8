"""The app's Streamlit configuration: loopback only, no usage statistics, a viewer's toolbar, headless,
for plain ``streamlit run app.py`` (.streamlit/config.toml) and for ``make run`` (its flags) alike."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from streamlit import config as streamlit_config

from pipeline.settings import PROJECT_ROOT

CONFIG = PROJECT_ROOT / ".streamlit" / "config.toml"
REQUIRED = {
    "server.address": "127.0.0.1",
    "server.headless": True,
    "browser.gatherUsageStats": False,
    "client.toolbarMode": "viewer",
}


def config_options() -> dict[str, Any]:
    """``section.option -> value`` of the project's config file."""
    parsed = tomllib.loads(CONFIG.read_text())
    return {f"{section}.{name}": value for section, options in parsed.items() for name, value in options.items()}


def make_run_flags() -> dict[str, str]:
    """``section.option -> value`` of the ``--section.option value`` flags in the Makefile's ``run`` recipe."""
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", (PROJECT_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe, "the Makefile has no `run` target"
    command = recipe.group(1).replace("\\\n", " ")
    return dict(re.findall(r"--([A-Za-z]+\.[A-Za-z]+)[ =](\S+)", command))


def as_flag(value: object) -> str:
    """How a TOML value is written as a command-line flag."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_plain_streamlit_run_binds_loopback_sends_no_statistics_and_shows_a_viewers_toolbar():
    options = config_options()
    assert {key: options.get(key) for key in REQUIRED} == REQUIRED


def test_every_option_in_the_file_exists_in_the_pinned_streamlit():
    """A misspelt option is ignored by Streamlit with a mere warning: the safety would silently be off."""
    known = streamlit_config.get_config_options()
    assert [key for key in config_options() if key not in known] == []


def test_make_run_passes_the_same_values_as_the_config_file():
    flags, options = make_run_flags(), config_options()
    assert set(REQUIRED) <= set(flags), f"make run should pass {sorted(REQUIRED)}; it passes {sorted(flags)}"
    differing = {key: (flag, options.get(key)) for key, flag in flags.items()
                 if key in options and flag != as_flag(options[key])}
    assert differing == {}
