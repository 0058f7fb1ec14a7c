"""Reader adapters: the only place pyserial, pyscard and libosdp are imported.

One module per reader family, registered below under its spec scheme (as esptool registers
its chips in ``targets/__init__.py``). Each provides ``SPEC_PARAMS`` and ``open_spec``
(``readers.spec``); each reads its wire on its own thread (``lifecycle``), feeds the codecs
(``readers.codecs``) and hands every ``CardRead`` to the sink; library errors become ours.
This package's ``__init__`` imports none of them: a family is loaded only when a spec names
it, so a machine without pyscard still runs its serial readers.
"""

__all__ = ["BACKENDS"]

#: scheme -> module implementing it (imported only when a spec names it).
BACKENDS: dict[str, str] = {
    "serial": "readers.adapters.serial_reader",
    "pcsc": "readers.adapters.pcsc_reader",
    "osdp": "readers.adapters.osdp.reader",
    # A recording plays through the serial adapter; its module sits with the recorder.
    "replay": "readers.record.replay",
    "sim": "readers.adapters.sim_reader",
}
