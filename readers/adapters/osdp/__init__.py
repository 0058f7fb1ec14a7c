"""The OSDP adapter: the reader (port, thread, spec), its link state machine, its channel."""
