"""Print engines, where a released job is handed to paper: registry.py turns ``engine.kind``
into one (no default); ipp/ speaks IPP to a printer; socket.py speaks the engine socket protocol
(protocol/engine.py) to an engine in another process. Each implements ports.PrintEngine."""
