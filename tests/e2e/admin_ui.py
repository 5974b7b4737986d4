"""What a user does in the Django admin, as Playwright steps shared by the journeys."""

from __future__ import annotations


def messages_shown(page) -> str:
    """The text of the admin's message list (success, warning, error), or ``""``."""
    box = page.locator("ul.messagelist")
    return box.inner_text() if box.count() else ""


def errors_shown(page) -> str:
    """The form's error note and every field error on the page, or ``""``."""
    parts = page.locator(".errornote, ul.errorlist").all_inner_texts()
    return "\n".join(parts)


def run_action(page, *, url: str, rows: list[str], action: str) -> None:
    """On the changelist at ``url``, tick the rows whose text contains each of ``rows``,
    choose ``action`` and press Go."""
    page.goto(url)
    for text in rows:
        page.locator("#result_list tbody tr", has_text=text).locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    submit(page, "button[name=index]")


def choose_in_filter(page, field: str, label: str) -> None:
    """Move ``label`` to the chosen side of a ``filter_horizontal`` widget."""
    page.select_option(f"#id_{field}_from", label=label)
    page.click(f"#id_{field}_add")


def add_inline_row(page, prefix: str) -> int:
    """Click the inline's "Add another …" link; returns the index of the new row."""
    before = int(page.locator(f"#id_{prefix}-TOTAL_FORMS").input_value())
    page.locator(f"#{prefix}-group a.add-row").click()
    page.locator(f"[id^='id_{prefix}-{before}-']").first.wait_for(state="attached")
    return before


def submit(page, selector: str) -> None:
    """Click a submit button and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def save(page) -> None:
    """Press "Save" on a change form and wait for the next page."""
    submit(page, "[name=_save]")
