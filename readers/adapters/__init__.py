"""Reader adapters: the only place pyserial, pyscard and libosdp are imported.

One module per reader family; each registers in ``readers.spec.BACKENDS`` under its scheme and
provides ``SPEC_PARAMS`` and ``open_spec``. They read the wire on their own thread, feed the
codecs (``readers.codecs``) and hand each ``CardRead`` to the sink; library errors become ours.
"""
