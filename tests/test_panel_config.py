"""``[ui]`` of device.toml: the panel's size, scale, orientation, density and language, validated
with the offending key named and written back by to_toml; and what the panel makes of them."""

from __future__ import annotations

import time
import tomllib

import pygame
import pytest
from panel_helpers import headless_pygame  # noqa: F401 (autouse: pygame headless)

from device_app.config import DeviceConfig, EngineConfig, UiConfig, parse_config, to_toml
from device_app.panel import PanelRenderer
from device_app.panel.canvas import min_target_px, panel_scale
from device_app.panel.window import window_size
from protocol.errors import ConfigError
from tests.test_panel_layout import NOW, VIEWS

BASE = {"device": {"id": "dev-1"}, "engine": {"kind": "emulator"}}


def ui(**table: object) -> UiConfig:
    return parse_config({**BASE, "ui": table}).ui


def test_defaults_are_the_7_inch_panel_scaled_automatically() -> None:
    cfg = parse_config(BASE)
    assert cfg.ui == UiConfig(size=(800, 480), scale=None, orientation="auto", dpi=None,
                              language="")
    assert cfg.fullscreen is True


def test_every_ui_key_is_read() -> None:
    got = ui(size="1280x800", scale=1.5, orientation="portrait", dpi=149, language="pt-BR",
             fullscreen=False)
    assert got == UiConfig((1280, 800), 1.5, "portrait", 149.0, "pt-BR")
    assert ui(scale=2).scale == 2.0, "an integer is a number too"
    assert ui(language="ja").language == "ja"


@pytest.mark.parametrize(("table", "key"), [
    ({"size": "1280"}, "ui.size"),
    ({"size": "1280x800x3"}, "ui.size"),
    ({"size": 1280}, "ui.size"),
    ({"size": "100x800"}, "ui.size"),
    ({"scale": "big"}, "ui.scale"),
    ({"scale": True}, "ui.scale"),
    ({"scale": 0}, "ui.scale"),
    ({"scale": 20}, "ui.scale"),
    ({"orientation": "sideways"}, "ui.orientation"),
    ({"dpi": 10}, "ui.dpi"),
    ({"dpi": "149"}, "ui.dpi"),
    ({"language": "Deutsch!"}, "ui.language"),
    ({"language": 7}, "ui.language"),
    ({"colour": "blue"}, "colour"),
])
def test_a_bad_ui_value_names_its_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, "ui": table})
    assert key in str(err.value)


def test_to_toml_writes_the_ui_back() -> None:
    cfg = DeviceConfig("dev-1", engine=EngineConfig("emulator"), fullscreen=False,
                       ui=UiConfig((1024, 600), 1.25, "landscape", 170.0, "de"))
    text = to_toml(cfg)
    assert tomllib.loads(text)["ui"] == {"fullscreen": False, "size": "1024x600",
                                         "orientation": "landscape", "scale": 1.25,
                                         "dpi": 170.0, "language": "de"}
    assert parse_config(tomllib.loads(text)).ui == cfg.ui
    # Automatic scale and unknown density are left out (TOML has no null) and read back so.
    plain = DeviceConfig("dev-1", engine=EngineConfig("emulator"))
    assert parse_config(tomllib.loads(to_toml(plain))).ui == UiConfig()


def test_orientation_orders_the_window_size() -> None:
    assert window_size(UiConfig((800, 480), orientation="portrait")) == (480, 800)
    assert window_size(UiConfig((480, 800), orientation="landscape")) == (800, 480)
    assert window_size(UiConfig((480, 800))) == (480, 800)


def test_scale_follows_density_and_never_outgrows_the_glass() -> None:
    assert panel_scale((800, 480)) == 1.0
    assert panel_scale((1280, 800)) == pytest.approx(800 / 480)
    assert panel_scale((480, 800)) == 1.0, "portrait: 480 design units across"
    assert panel_scale((1000, 1000)) == pytest.approx(1000 / 640), "square: 640x640"
    assert panel_scale((1920, 1080), dpi=141) == pytest.approx(141 / 135)
    assert panel_scale((800, 480), dpi=270) == 1.0, "capped where the design fits"
    assert panel_scale((1920, 1080), scale=1.5) == 1.5
    assert min_target_px(None) == 48 and min_target_px(254) == 90


def test_the_renderer_takes_the_settings() -> None:
    renderer = PanelRenderer((1280, 800), scale=1.2, orientation="portrait", dpi=149,
                             language="ja")
    canvas = renderer.canvas
    assert (canvas.scale, canvas.portrait, canvas.dpi, canvas.language) == (1.2, True, 149,
                                                                             "ja")
    assert canvas.min_target == 53


def test_a_frame_at_1280x800_is_cheap() -> None:
    """The tree and the font chain must not make a frame dear: p99 well under 8 ms."""
    renderer = PanelRenderer((1280, 800), dpi=149)
    view = VIEWS["jobs-200"]
    for _ in range(5):
        renderer.draw(view, NOW)
    times = []
    for _ in range(200):
        # CPU time of this process: other tests on a shared machine must not make a frame
        # look slow by taking the core away from it.
        start = time.process_time()
        renderer.draw(view, NOW)
        times.append(time.process_time() - start)
    times.sort()
    assert times[197] < 0.008, f"p99 {times[197] * 1000:.1f} ms"


def test_the_shots_script_writes_every_screen_at_each_size(tmp_path: object) -> None:
    from pathlib import Path

    from device_app.panel.demo import main

    out = Path(str(tmp_path))
    assert main(["--shots", str(out), "--size", "480x800", "--size", "1280x800",
                 "--language", "de"]) == 0
    for size in ((480, 800), (1280, 800)):
        shots = sorted((out / f"{size[0]}x{size[1]}").glob("panel-*.png"))
        assert len(shots) == 14
        assert all(pygame.image.load(p).get_size() == size for p in shots)
