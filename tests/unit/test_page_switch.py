"""The guard against a late fragment rerun of the page being left (ui/page_switch.py); the browser test
``test_switching_pages_while_trades_flow_never_leaves_a_page_blank`` checks it in Chromium."""

import inspect

from streamlit.runtime.app_session import AppSession

from ui import page_switch
from ui.page_switch import SWITCH_WINDOW_S, is_stray


def test_a_fragment_of_another_page_is_stray_just_after_a_switch():
    assert is_stray(("market", 100.0), "simulator", now=100.2)


def test_a_fragment_of_the_page_asked_for_is_never_stray():
    assert not is_stray(("market", 100.0), "market", now=100.2)


def test_nothing_is_stray_once_the_switch_window_passed_or_when_a_page_is_unknown():
    assert not is_stray(("market", 100.0), "simulator", now=100.0 + SWITCH_WINDOW_S)
    assert not is_stray(None, "simulator", now=100.0)  # a first load names its page by URL only
    assert not is_stray(("market", 100.0), "", now=100.1)


def test_install_wraps_request_rerun_once_and_keeps_its_shape():
    original = AppSession.request_rerun
    try:
        assert list(inspect.signature(original).parameters) == ["self", "client_state"]
        page_switch.install()
        wrapped = AppSession.request_rerun
        page_switch.install()
        assert AppSession.request_rerun is wrapped is not original
        assert wrapped.__wrapped__ is original
    finally:
        AppSession.request_rerun = original


def test_the_app_says_up_front_that_its_pages_come_from_navigation(monkeypatch):
    from streamlit.runtime.pages_manager import PagesManager

    monkeypatch.setattr(PagesManager, "uses_pages_directory", None)  # a fresh process
    page_switch.navigation_only()
    assert PagesManager.uses_pages_directory is False  # never guessed from the pages/ directory again
