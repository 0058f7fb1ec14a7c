"""JOBS: a person's held jobs, to select and release, delete, or release with changes.

Only the rows in view are drawn, so a list of hundreds of jobs costs no more than a list of five.
Which rows are in view is the one piece of state of this screen (:class:`JobList`): scrolling is a
matter of the glass, not of the session, so the view carries the loaded jobs and the renderer
shows a window of them. The offset goes back to the top when a new person's list appears.
"""

from __future__ import annotations

from functools import partial

import pygame

from device_app.panel import icons
from device_app.panel.canvas import Canvas, Target
from device_app.panel.text import format_submitted
from device_app.panel.theme import (
    BAD,
    BG,
    CARD,
    COLOUR_CHIP,
    GREY_CHIP,
    HEADER,
    HEADER_BUTTON,
    HEADER_INK,
    HEADER_MUTED,
    INK,
    LINE,
    LINK_BUTTON,
    MUTED,
    ON_PRIMARY,
    PRIMARY,
    PRIMARY_BUTTON,
    SECONDARY_BUTTON,
    SELECTED_ROW,
    TONE_STRONG,
    TONE_TINT,
    WARN_FILL,
    WARN_MARK,
    Color,
)
from device_app.panel.widgets import button, countdown_band, header, tool_button, warning_mark
from device_app.view import Action, PanelView, Screen, Tone
from protocol.messages import JobSummary


class JobList:
    """Which jobs are in view: the first row shown, and how far a page and the list go."""

    def __init__(self) -> None:
        #: Index of the first job row shown. Clamped to the list on every draw.
        self.scroll = 0
        self.page_rows = 1
        self.max_scroll = 0
        self._owner: str | None = None

    def follow(self, view: PanelView) -> None:
        """Back to the top for a new person's list; called for every view drawn."""
        if view.screen is Screen.JOBS:
            if view.user_name != self._owner:
                self.scroll = 0
                self._owner = view.user_name
        elif view.screen in (Screen.IDLE, Screen.OFFLINE):
            # The session is over: the next list, even the same person's, starts at the top.
            self._owner = None

    def page(self, action: Action) -> bool:
        """Move a page for SCROLL_UP/SCROLL_DOWN. True if the list moved; False for any other
        action or at either end."""
        # A page keeps one row of the old window in view, so the eye has an anchor.
        step = max(1, self.page_rows - 1)
        if action is Action.SCROLL_DOWN:
            wanted = min(self.scroll + step, self.max_scroll)
        elif action is Action.SCROLL_UP:
            wanted = max(0, self.scroll - step)
        else:
            return False
        moved = wanted != self.scroll
        self.scroll = wanted
        return moved


#: The design width the one-row toolbar needs (Select all, Release all, Delete, Options and a
#: Release button with room for "Release selected (12)"); narrower glass takes two rows.
ONE_ROW_UNITS = 732


def draw(c: Canvas, view: PanelView, now: float, window: JobList) -> None:
    width = c.surface.get_width()
    narrow = width / c.scale < ONE_ROW_UNITS
    band = _draw_header(c, view, narrow)
    bar = _draw_toolbar(c, view, narrow)

    top = band.bottom
    if view.engine_problem:
        top = _draw_engine_banner(c, view.engine_problem, top)
    if view.message:
        top = _draw_result_banner(c, view.message, view.tone, top)
    area = pygame.Rect(0, top, width, bar.top - top)
    _draw_job_list(c, view, area, now, window, narrow)
    if view.countdown:
        countdown_band(c, view.countdown, area.bottom)


def _draw_header(c: Canvas, view: PanelView, narrow: bool) -> pygame.Rect:
    """The greeting, how many jobs, Refresh and Log out. Narrow glass puts the count under
    the greeting, where the two share the band's height instead of its width."""
    width = c.surface.get_width()
    pad = c.px(16)
    tr = c.tr
    # Refresh beside Log out: new jobs come by themselves, but a person who just sent one
    # wants a way to ask now.
    labels = (tr.gettext("Refresh"), tr.gettext("Log out"))
    refresh, logout = (pygame.Rect(0, 0, c.px(least), c.tap(52)) for least in
                       ((112, 124) if narrow else (120, 150)))
    # The buttons grow to what their words need ("Aktualisieren"), within a third (narrow)
    # or a quarter of the width each; the greeting is cut first.
    for rect, label in zip((refresh, logout), labels, strict=True):
        need = c.font(28 if narrow else 30, bold=True).size(label)[0] + 2 * c.px(12)
        rect.width = min(max(rect.width, need), width // (3 if narrow else 4))
    count = len(view.jobs)
    if view.total_jobs > count:
        # Only when the person has more than the list holds: always several, never "1 jobs".
        summary = tr.gettext("{count} of {total} jobs", count=count, total=view.total_jobs)
    else:
        summary = tr.ngettext("{n} job", "{n} jobs", count)
    greeting = (tr.gettext("Hello, {name}", name=view.user_name) if view.user_name
                else tr.gettext("Hello"))
    reserve = logout.width + refresh.width + 2 * pad
    if narrow:
        band = header(c, "", height=88)
        left = c.px(20)
        room = max(0, width - reserve - pad - left)
        size = c.fitting_size(greeting, (34, 30, 26), room, bold=True)
        title_h = c.font(size, bold=True).get_linesize()
        status_h = c.font(28).get_linesize()
        top = band.centery - (title_h + status_h) // 2
        c.text(greeting, size, HEADER_INK, max_width=room, role="title", bg=HEADER,
               topleft=(left, top))
        c.text(summary, c.fitting_size(summary, (28, 24, 21), room), HEADER_MUTED,
               max_width=room, role="status", bg=HEADER, topleft=(left, top + title_h))
    else:
        band = header(c, greeting, summary, reserve=reserve)
    logout.midright = (width - pad, band.centery)
    refresh.midright = (logout.left - pad, band.centery)
    button(c, refresh, labels[0], Action.REFRESH, HEADER_BUTTON)
    button(c, logout, labels[1], Action.LOGOUT, HEADER_BUTTON)
    return band


def _draw_toolbar(c: Canvas, view: PanelView, narrow: bool) -> pygame.Rect:
    """Select all, Release all, Delete, Options and Release selected across the foot; on
    narrow glass in two rows, the two Release buttons together in the lower one, nearest the
    thumb. Returns the bar."""
    width, height = c.surface.get_size()
    pad = c.px(16)
    gap = c.px(10)
    button_h = c.tap(64)
    rows = 2 if narrow else 1
    bar_height = rows * button_h + (rows - 1) * gap + 2 * c.px(12)
    bar = pygame.Rect(0, height - bar_height, width, bar_height)
    pygame.draw.rect(c.surface, CARD, bar)
    pygame.draw.line(c.surface, LINE, bar.topleft, bar.topright, max(1, c.px(2)))
    count = len(view.jobs)
    has_jobs = count > 0
    chosen = bool(view.selected)
    tr = c.tr
    # Fixed places, whatever is selected: a button that moved when a row was ticked would
    # catch the finger that was heading for its old place. Delete and Options are icon
    # buttons so that "Release selected (12)" keeps room for its whole label.
    delete = pygame.Rect(0, 0, c.px(84), button_h)
    options = pygame.Rect(0, 0, c.px(92) if view.can_change else 0, button_h)
    tools = delete.width + (options.width + gap if view.can_change else 0)
    if narrow:
        upper = bar.top + c.px(12)
        lower = upper + button_h + gap
        select_all = pygame.Rect(pad, upper, width - 2 * pad - gap - tools, button_h)
        delete.topleft = (select_all.right + gap, upper)
        options.topleft = (delete.right + gap, upper)
        share = width - 2 * pad - gap
        release_all = pygame.Rect(pad, lower, share * 2 // 5, button_h)
        release = pygame.Rect(release_all.right + gap, lower, 0, button_h)
    else:
        # Wider for longer words ("Alle auswählen"), up to 40 units each: Release selected
        # still keeps 200 units or more at 800 px.
        select_all = pygame.Rect(pad, 0, _label_width(
            c, (tr.gettext("Select all"), tr.gettext("Deselect all")), 132, 172), button_h)
        release_all = pygame.Rect(select_all.right + gap, 0, _label_width(
            c, (tr.gettext("Release all"),), 152, 192), button_h)
        delete.left = release_all.right + gap
        options.left = delete.right + gap
        release = pygame.Rect((options if view.can_change else delete).right + gap, 0, 0,
                              button_h)
        for rect in (select_all, release_all, delete, options, release):
            rect.centery = bar.centery
    release.width = width - pad - release.left
    button(c, select_all,
           tr.gettext("Deselect all") if view.all_selected else tr.gettext("Select all"),
           Action.SELECT_ALL, SECONDARY_BUTTON, has_jobs, size=32)
    button(c, release_all, tr.gettext("Release all"), Action.RELEASE_ALL, SECONDARY_BUTTON,
           has_jobs, size=32)
    tool_button(c, delete, tr.gettext("Delete"), Action.DELETE, partial(icons.trash, c), chosen,
                BAD)
    if view.can_change:
        tool_button(c, options, tr.gettext("Options"), Action.OPTIONS,
                    partial(icons.sliders, c), chosen, INK)
    button(c, release, tr.gettext("Release selected ({count})", count=len(view.selected)),
           Action.RELEASE, PRIMARY_BUTTON, chosen, size=32)
    return bar


def _label_width(c: Canvas, labels: tuple[str, ...], least: int, most: int) -> int:
    """A toolbar button's width in pixels: ``least`` design units, more for the longest of
    ``labels`` to be set at 85% of the toolbar's size (a fixed width shrank German labels to
    60%), at most ``most``. Both of a toggling button's labels count: it must not move."""
    need = max(c.font(27, bold=True).size(label)[0] for label in labels) + 2 * c.px(12)
    return min(max(c.px(least), need), c.px(most))


def _draw_result_banner(c: Canvas, message: str, tone: Tone, top: int) -> int:
    """What just happened ("2 printed"), in its tone's colour, across the top of the list;
    returns the y below it. A tap on it dismisses it; it also fades by itself. A line too
    long for the glass takes two: "..., it is still held" is the part that must not be cut."""
    width = c.surface.get_width()
    pad = c.px(16)
    stripe_w = c.px(8)
    close_w = c.px(44)
    room = max(0, width - stripe_w - close_w - 4 * pad)
    size = 32
    line_h = c.font(size).get_linesize()
    two = c.font(size).size(message)[0] > room
    banner = pygame.Rect(0, top, width, max(c.tap(52), 2 * line_h + c.px(12)) if two
                         else c.tap(52))
    pygame.draw.rect(c.surface, TONE_TINT[tone], banner)
    stripe = pygame.Rect(0, top, stripe_w, banner.height)
    pygame.draw.rect(c.surface, TONE_STRONG[tone], stripe)
    close = pygame.Rect(0, 0, close_w, close_w)
    close.midright = (width - pad, banner.centery)
    icons.cross(c, close.inflate(-c.px(16), -c.px(16)), INK)
    if two:
        c.lines(message, size, INK, 0, banner.centery - line_h, room, 2,
                left=stripe.right + pad)
    else:
        c.text(message, size, INK, max_width=room, midleft=(stripe.right + pad, banner.centery))
    c.targets.append(Target(pygame.Rect(banner), Action.DISMISS))
    return banner.bottom


def _draw_engine_banner(c: Canvas, problem: str, top: int) -> int:
    """Why the printer can't print, across the top of the list; returns the y below it.
    The release buttons stay: a tap on them gets the same reason, which beats a button
    that is mysteriously grey."""
    width = c.surface.get_width()
    banner = pygame.Rect(0, top, width, c.px(52))
    pygame.draw.rect(c.surface, WARN_FILL, banner)
    pygame.draw.line(c.surface, WARN_MARK, banner.bottomleft, banner.bottomright,
                     max(1, c.px(2)))
    mark = warning_mark(c, pygame.Rect(c.px(16), 0, c.px(36), c.px(32)),
                        banner.centery, WARN_MARK)
    c.text(problem, 32, INK, max_width=width - mark.right - c.px(32),
           midleft=(mark.right + c.px(14), banner.centery))
    return banner.bottom


def _draw_job_list(c: Canvas, view: PanelView, area: pygame.Rect, now: float,
                   window: JobList, narrow: bool) -> None:
    jobs = view.jobs
    # "Load more" is the row after the last job: it is found where the list runs out, and
    # scrolls with it instead of taking room from every page.
    items = len(jobs) + (1 if view.can_load_more else 0)
    row_h = c.tap(64)
    rows = max(1, area.height // row_h)
    window.page_rows = rows
    window.max_scroll = max(0, items - rows)
    window.scroll = min(max(window.scroll, 0), window.max_scroll)
    if not items:
        _draw_empty(c, view.empty_reasons, area)
        return
    rows_area = pygame.Rect(area)
    if items > rows:
        rail = pygame.Rect(0, area.top, c.tap(96), area.height)
        rail.right = area.right
        rows_area.width -= rail.width
        _draw_scroll_rail(c, rail, len(jobs), rows, window)
    for i in range(window.scroll, min(items, window.scroll + rows)):
        row = pygame.Rect(rows_area.left, rows_area.top + (i - window.scroll) * row_h,
                          rows_area.width, row_h)
        if i < len(jobs):
            _draw_job_row(c, row, jobs[i], jobs[i].job_id in view.selected, now, narrow)
        else:
            _draw_more_row(c, row, len(jobs), view.total_jobs)


def _draw_empty(c: Canvas, reasons: tuple[str, ...], area: pygame.Rect) -> None:
    """An empty list, and why it is empty when the cloud or the device knows."""
    room = area.width - c.px(48)
    title_h = c.font(56).get_linesize()
    body = reasons or (c.tr.gettext("Jobs you send to secure print wait here for you."),)
    # The block is centred as a whole: the title, then a line or two per reason.
    lines_h = c.font(34).get_linesize() * 2 * len(body)
    top = area.top + max(c.px(8), (area.height - title_h - c.px(16) - lines_h) // 2)
    title = c.tr.gettext("No jobs waiting")
    c.text(title, c.fitting_size(title, (56, 48, 40), room), INK, max_width=room,
           midtop=(area.centerx, top))
    y = top + title_h + c.px(16)
    for line in body:
        y = c.lines(line, 34, INK if reasons else MUTED, area.centerx, y, room, 2)


def _draw_more_row(c: Canvas, row: pygame.Rect, shown: int, total: int) -> None:
    pygame.draw.rect(c.surface, BG, row)
    pad = c.px(16)
    more = pygame.Rect(0, 0, c.px(200), c.tap(52))
    more.midright = (row.right - pad, row.centery)
    c.text(c.tr.gettext("Showing {shown} of {total}", shown=shown, total=total), 32, MUTED,
           max_width=max(0, more.left - row.left - 2 * pad),
           midleft=(row.left + pad, row.centery))
    button(c, more, c.tr.gettext("Load more"), Action.LOAD_MORE, LINK_BUTTON, size=32)


def _draw_scroll_rail(c: Canvas, rail: pygame.Rect, total: int, rows: int,
                      window: JobList) -> None:
    pygame.draw.line(c.surface, LINE, rail.topleft, rail.bottomleft, max(1, c.px(2)))
    inset = c.px(8)
    up = pygame.Rect(rail.left + inset, rail.top + inset, rail.width - 2 * inset,
                     c.tap(96))
    down = pygame.Rect(up)
    down.bottom = rail.bottom - inset
    for rect, action, enabled, direction in (
        (up, Action.SCROLL_UP, window.scroll > 0, -1),
        (down, Action.SCROLL_DOWN, window.scroll < window.max_scroll, 1),
    ):
        ink = button(c, rect, "", action, SECONDARY_BUTTON, enabled)
        half = c.px(16)
        tip = (rect.centerx, rect.centery + direction * half)
        base_y = rect.centery - direction * half
        pygame.draw.polygon(c.surface, ink,
                            [tip, (rect.centerx - half - c.px(4), base_y),
                             (rect.centerx + half + c.px(4), base_y)])
    middle = (up.bottom + down.top) // 2
    # The "Load more" row has no number: the count is of jobs.
    last = min(total, window.scroll + rows)
    c.text(f"{min(window.scroll + 1, last)}\u2013{last}", 28, INK, max_width=rail.width - 4,
           midbottom=(rail.centerx, middle))
    c.text(c.tr.gettext("of {total}", total=total), 28, MUTED, max_width=rail.width - 4,
           midtop=(rail.centerx, middle + c.px(2)))


#: (name, details) design sizes for a row's two lines, largest first: the first pair whose
#: lines fit the row's height one above the other is used (Noto's lines are taller than
#: pygame's built-in font's, and a second line must not spill into the next row).
ROW_SIZES = ((38, 30), (38, 28), (36, 28), (34, 26), (32, 24))


def _row_sizes(c: Canvas, height: int) -> tuple[int, int, int]:
    """The name's and the details' sizes for a row ``height`` tall, and the top of the pair."""
    for name_size, detail_size in ROW_SIZES:
        total = c.font(name_size).get_height() + c.font(detail_size).get_height()
        if total <= height - 2 * c.px(1):
            break
    return name_size, detail_size, max(0, (height - total) // 2)


def _draw_job_row(c: Canvas, row: pygame.Rect, job: JobSummary, selected: bool,
                  now: float, narrow: bool) -> None:
    # The row's ground is known: its texts need not sample it (a list redraws often).
    ground = SELECTED_ROW if selected else CARD
    pygame.draw.rect(c.surface, ground, row)
    pygame.draw.line(c.surface, LINE, row.bottomleft, row.bottomright, max(1, c.px(1)))
    pad = c.px(16)

    box = pygame.Rect(0, 0, c.px(36), c.px(36))
    box.midleft = (row.left + pad + c.px(4), row.centery)
    if selected:
        pygame.draw.rect(c.surface, PRIMARY, box, border_radius=c.px(6))
        icons.check(c, box, ON_PRIMARY)
    else:
        pygame.draw.rect(c.surface, CARD, box, border_radius=c.px(6))
        pygame.draw.rect(c.surface, MUTED, box, width=max(2, c.px(3)),
                         border_radius=c.px(6))

    right_edge = row.right - pad
    right_width = c.px(112 if narrow else 150)
    left = box.right + pad
    text_width = max(0, right_edge - right_width - pad - left)
    name_size, detail_size, inset = _row_sizes(c, row.height)
    top_line = row.top + inset
    second_line = top_line + c.font(name_size).get_height()

    c.text(job.name or c.tr.gettext("(untitled)"), name_size, INK, max_width=text_width, bg=ground,
           topleft=(left, top_line))
    _draw_job_details(c, job, left, second_line, text_width, detail_size, ground)
    # The time sits on the name's line and the source on the details'.
    c.text(format_submitted(job.submitted_at, now, c.tr), detail_size + 4, INK,
           max_width=right_width, bg=ground, topright=(right_edge, top_line))
    if job.source:
        c.text(job.source, detail_size - 2, MUTED, max_width=right_width, bg=ground,
               topright=(right_edge, second_line))
    c.targets.append(Target(pygame.Rect(row), Action.SELECT, job.job_id))


def _draw_job_details(c: Canvas, job: JobSummary, left: int, top: int, width: int,
                      size: int, ground: Color) -> None:
    """"12 pages · 3 copies · [chip] Colour · 2-sided", cut where the column ends."""
    # Extra copies are drawn in full ink: 50 copies of the wrong thing is the costly mistake.
    # They come second, before what narrow glass would cut first.
    tr = c.tr
    copies = (tr.ngettext("{n} copy", "{n} copies", job.copies), None,
              INK if job.copies > 1 else MUTED)
    parts: list[tuple[str, tuple[Color, ...] | None, Color]] = [
        (tr.ngettext("{n} page", "{n} pages", job.pages), None, MUTED),
        (tr.gettext("Colour") if job.color else tr.gettext("B&W"),
         COLOUR_CHIP if job.color else GREY_CHIP, MUTED),
        (tr.gettext("2-sided") if job.duplex else tr.gettext("1-sided"), None, MUTED),
    ]
    parts.insert(1 if job.copies > 1 else 3, copies)
    font = c.font(size)
    line_h = font.get_height()
    limit = left + width
    x = left
    dot = " \u00b7 "
    stripe = c.px(6)
    for i, (label, chip, color) in enumerate(parts):
        # A part is drawn whole or not at all: "1…" of "1 部", a trailing " · " or a chip
        # with no word after it says less than nothing.
        least = font.size((dot if i else "") + label)[0]
        if chip is not None:
            least += stripe * len(chip) + c.px(6)
        if x + least > limit:
            break
        if i:
            x = c.text(dot, size, MUTED, max_width=limit - x, bg=ground,
                       topleft=(x, top)).right
        if chip is not None:
            chip_h = c.px(14)
            chip_top = top + (line_h - chip_h) // 2
            for j, shade in enumerate(chip):
                pygame.draw.rect(c.surface, shade,
                                 pygame.Rect(x + j * stripe, chip_top, stripe, chip_h))
            x += stripe * len(chip) + c.px(6)
        x = c.text(label, size, color, max_width=limit - x, bg=ground,
                   topleft=(x, top)).right
