"""The pipeline itself: JupyterLab runs a notebook, renders an ipywidget, and the widget answers clicks."""

import pytest

pytestmark = pytest.mark.browser

CELLS = [
    "print('hello from ' + 'the kernel')",
    (
        "import ipywidgets as w\n"
        "button = w.Button(description='Press me')\n"
        "button.add_class('smoke-button')\n"
        "def pressed(b):\n"
        "    b.description = 'Pressed'\n"
        "button.on_click(pressed)\n"
        "button"
    ),
]


def test_notebook_runs_and_widget_round_trips(lab, page):
    from playwright.sync_api import expect  # here: `-m 'not browser'` runs without playwright

    filename = lab.write_notebook("smoke", CELLS)

    lab.open_and_run(page, filename)
    lab.wait_cells_ran(page, len(CELLS))

    expect(page.locator(".jp-OutputArea-output", has_text="hello from the kernel")).to_be_visible()
    button = page.locator("button.smoke-button")
    expect(button).to_have_text("Press me")
    button.click()
    # The kernel's on_click handler changed the trait; the view shows it.
    expect(button).to_have_text("Pressed")
