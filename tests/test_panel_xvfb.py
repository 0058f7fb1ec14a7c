"""The panel full screen on a real X display, as a copier with no window manager runs it.

A private Xvfb at each panel size; the panel opened through window.py (SDL's x11 driver,
``set_mode((0, 0), FULLSCREEN)``) in a subprocess; the X root window grabbed with ``xwd``, apart
from anything the panel says about itself. The grab must be the panel's own frame over the
whole display: not blank, not an 800x480 window in a corner of a larger screen, the idle
prompt whole and inside the glass.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pygame
import pytest

from device_app.panel.theme import BG, INK

pytestmark = pytest.mark.integration

SIZES = [(800, 480), (1024, 600), (1280, 800), (1920, 1080), (480, 800), (600, 1024),
         (800, 1280)]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    # Missing X tools fail by name, never skip: scripts/setup.sh installs them.
    assert path is not None, f"{name} not found: install the Debian package {package}"
    return path


@contextmanager
def xvfb(size: tuple[int, int]) -> Iterator[str]:
    """A private X server of ``size``; yields its DISPLAY. Xvfb picks a free display number
    and writes it to a pipe once it accepts clients (-displayfd): that is the signal to go.
    ``-noreset``: by default an X server resets whenever its last client leaves, and a client
    that connects during the reset is refused. Polling with xwininfo (one client at a time)
    while the panel starts made exactly that race: "x11 not available" from SDL in one CI run;
    two pollers on a default Xvfb saw 163 refused connects in 20 s, with -noreset none."""
    read, write = os.pipe()
    proc = subprocess.Popen(
        [_tool("Xvfb", "xvfb"), "-displayfd", str(write), "-screen", "0",
         f"{size[0]}x{size[1]}x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        assert number.isdigit(), f"Xvfb did not start: {proc.stderr.read() if proc.stderr else ''}"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def read_xwd(path: Path) -> pygame.Surface:
    """An xwd dump (ZPixmap, 24/32 bits) as a surface."""
    data = path.read_bytes()
    header = struct.unpack(">25I", data[:100])
    header_size, width, height = header[0], header[4], header[5]
    byte_order, bits, stride = header[7], header[11], header[12]
    red_mask, ncolors = header[14], header[19]
    assert bits == 32 and red_mask == 0xFF0000, header
    start = header_size + ncolors * 12
    rows = b"".join(data[start + y * stride: start + y * stride + width * 4]
                    for y in range(height))
    # LSBFirst (0) stores each pixel as B, G, R, pad.
    fmt = "BGRA" if byte_order == 0 else "ARGB"
    return pygame.image.frombuffer(rows, (width, height), fmt).copy()


def grab(display: str, out: Path) -> pygame.Surface:
    subprocess.run([_tool("xwd", "x11-apps"), "-root", "-silent", "-display", display,
                    "-out", str(out)], check=True, timeout=30)
    return read_xwd(out)


def _reap(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Wait for ``proc``, which was asked to end; killed if it has not within ``timeout`` (the
    TimeoutExpired still fails the test), so no panel outlives its X server."""
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_panel_fills_a_real_display_full_screen(size: tuple[int, int],
                                                    tmp_path: Path) -> None:
    ready, stop = tmp_path / "frame.ready", tmp_path / "stop"
    with xvfb(size) as display:
        env = {**os.environ, "DISPLAY": display, "SDL_VIDEODRIVER": "x11",
               "SDL_AUDIODRIVER": "dummy"}
        panel = subprocess.Popen(
            [sys.executable, "-m", "device_app.panel.demo", "--window", "--fullscreen",
             "--screen", "idle", "--ready", str(ready), "--stop", str(stop)],
            env=env, cwd=Path(__file__).resolve().parents[1],  # the checkout under test
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():
                assert panel.poll() is None, panel.stderr.read() if panel.stderr else ""
                assert time.monotonic() < deadline, "the panel drew no frame in 30 s"
                time.sleep(0.05)
            # The frame is flipped before it is saved; one more frame time for X to show it.
            time.sleep(0.2)
            shot = grab(display, tmp_path / "root.xwd")
        finally:
            stop.touch()
            _reap(panel)
        assert panel.returncode == 0, panel.stderr.read() if panel.stderr else ""

    drawn = json.loads(ready.with_suffix(".json").read_text(encoding="utf-8"))
    own = pygame.image.load(ready.with_suffix(".png"))
    assert shot.get_size() == size
    # The renderer was given the whole display, not a design-sized window.
    assert tuple(drawn["size"]) == size and own.get_size() == size

    # Not blank: a drawn panel has many colours (antialiased text, the badge, the header).
    colours = {tuple(shot.get_at((x, y)))[:3] for x in range(0, size[0], 7)
               for y in range(0, size[1], 7)}
    assert len(colours) > 20, len(colours)

    # Not cropped: the X server shows the panel's own frame over the whole display. A window
    # of 800x480 in a corner would leave the rest black (Xvfb's root) and differ here.
    same = sum(shot.get_at((x, y))[:3] == own.get_at((x, y))[:3]
               for x in range(0, size[0], 5) for y in range(0, size[1], 5))
    total = len(range(0, size[0], 5)) * len(range(0, size[1], 5))
    assert same / total > 0.99, f"only {same} of {total} sampled pixels match the panel's frame"
    assert shot.get_at((size[0] - 2, size[1] - 2))[:3] == BG, "the far corner is background"

    # The prompt is whole, inside the glass, and there in the grab: dark ink in its box.
    [prompt] = [n for n in drawn["tree"]
                if n["kind"] == "TextNode" and n["source"] == "Tap your badge"]
    assert prompt["text"] == "Tap your badge"
    x, y, w, h = prompt["rect"]
    assert 0 <= x and x + w <= size[0] and 0 <= y and y + h <= size[1]
    ink = sum(shot.get_at((px, py))[:3] == INK for px in range(x, x + w, 2)
              for py in range(y, y + h, 2))
    assert ink > 20, "the prompt's ink is in the X grab"
    # The layout spans the display: the header's clock sits near its right edge.
    right = max(n["rect"][0] + n["rect"][2] for n in drawn["tree"])
    assert right > size[0] * 0.9


def _window_geometry(display: str, title: str) -> str | None:
    """``WxH`` of the top-level window called ``title`` on ``display``, or None yet."""
    out = subprocess.run([_tool("xwininfo", "x11-utils"), "-root", "-tree", "-display", display],
                         capture_output=True, text=True, timeout=30).stdout
    for line in out.splitlines():
        if f'"{title}"' in line:
            # 0x200008 "dev-1": ("mfd" "mfd")  400x640+440+192  +440+192
            return line.split(")")[-1].split()[0].split("+")[0]
    return None


@pytest.mark.parametrize(("ui", "expected"), [
    ('size = "640x400"', "640x400"),
    ('size = "640x400"\norientation = "portrait"', "400x640"),
], ids=["size", "portrait"])
def test_mfd_device_opens_its_window_as_the_ui_table_says(ui: str, expected: str,
                                                         tmp_path: Path) -> None:
    """``mfd device --config`` with ``[ui] fullscreen = false``: a window of ``[ui] size``, its
    sides in ``orientation``'s order, on a display larger than both (it used to be 800x480
    whatever the table said). Nothing listens on the broker's port: the panel comes up anyway
    and says so."""
    (tmp_path / "device.toml").write_text(
        '[device]\nid = "dev-ui"\n[broker]\nurl = "mqtt://127.0.0.1:9"\n'
        f'[engine]\nkind = "emulator"\n[ui]\nfullscreen = false\n{ui}\n', encoding="utf-8")
    credentials = tmp_path / "credentials"
    credentials.write_text(json.dumps({"username": "dev-ui", "password": "not-a-secret"}),
                           encoding="utf-8")
    credentials.chmod(0o600)
    with xvfb((1280, 1024)) as display:
        env = {**os.environ, "DISPLAY": display, "SDL_VIDEODRIVER": "x11",
               "SDL_AUDIODRIVER": "dummy"}
        device = subprocess.Popen(
            [sys.executable, "-m", "mfdkit", "device", "--config", str(tmp_path / "device.toml")],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while (geometry := _window_geometry(display, "dev-ui")) is None:
                assert device.poll() is None, device.stderr.read() if device.stderr else ""
                assert time.monotonic() < deadline, "mfd device opened no window in 30 s"
                time.sleep(0.1)
        finally:
            device.terminate()  # SIGTERM: what a service manager sends
            _reap(device)
    assert geometry == expected
    # A panel with a screen treats SIGTERM as an interrupt (130), and unwinds cleanly.
    errors = device.stderr.read().decode() if device.stderr else ""
    assert device.returncode in (0, 130) and "Traceback" not in errors, errors
