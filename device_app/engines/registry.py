"""Where an engine kind becomes an engine: the one table from ``engine.kind`` to an opener.

The config names the kind (device_app/config.py checks it against its schema); this module is
the only place that turns it into a :class:`~device_app.ports.PrintEngine`. There is no default
and no fallback: a kind nobody registered is a ConfigError naming the key, because a copier that
quietly fell back to anything else would print nowhere while the cloud marks jobs printed.

The production kinds are registered here: ``ipp`` (engines/ipp/) and ``socket``
(engines/socket.py), each module imported only when its kind is opened. The emulated engine is
not production code and device_app never imports it: the programs that offer it for a bench
(``mfd device``, the simulator, tests) register ``emulator`` themselves, through
``firmware_stubs.mfd_controller.register_emulator``. A program that did not is told so.
"""

from __future__ import annotations

from collections.abc import Callable

from device_app.config import ENGINE_KINDS, EngineConfig
from device_app.ports import PrintEngine
from protocol.errors import ConfigError

#: Opens the engine a config section names; raises ConfigError (or EngineError) if it cannot.
Opener = Callable[[EngineConfig], PrintEngine]


def _open_ipp(engine: EngineConfig) -> PrintEngine:
    from device_app.engines.ipp.engine import IppEngine

    return IppEngine(engine.uri)


def _open_socket(engine: EngineConfig) -> PrintEngine:
    from device_app.engines.socket import EngineClient

    return EngineClient(engine.uri)


_OPENERS: dict[str, Opener] = {"ipp": _open_ipp, "socket": _open_socket}


def register(kind: str, opener: Opener) -> None:
    """Make ``engine.kind = kind`` open with ``opener`` in this process (again: replaces it).
    Only kinds the config schema accepts: any other could never be chosen."""
    if kind not in ENGINE_KINDS:
        raise ValueError(f"engine kind {kind!r} is not one the config accepts "
                         f"({', '.join(ENGINE_KINDS)})")
    _OPENERS[kind] = opener


def registered() -> tuple[str, ...]:
    """The kinds this process can open, sorted."""
    return tuple(sorted(_OPENERS))


def open_engine(engine: EngineConfig) -> PrintEngine:
    """The engine ``engine`` names. ConfigError for a kind that is missing, not a kind, or not
    available in this program (the emulator outside ``mfd device`` and the simulator)."""
    opener = _OPENERS.get(engine.kind)
    if opener is not None:
        return opener(engine)
    if engine.kind in ENGINE_KINDS:
        raise ConfigError(f"config key 'engine.kind': {engine.kind!r} is not available in this "
                          f"program (it opens {', '.join(registered())}); the emulated engine "
                          "is offered by `mfd device` and the simulator")
    # Never a silent fallback: a copier on the emulator prints nothing.
    raise ConfigError("config key 'engine.kind' is required (one of "
                      + ", ".join(ENGINE_KINDS) + ")")
