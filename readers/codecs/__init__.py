"""Wire formats: bytes from a reader in, frames or protocol errors out (sans-I/O).

One module per wire format; each decoder keeps its events and counters in one shared receive
buffer (``_receivebuffer``), as h11 does. Nothing here opens a port or starts a thread: the
adapters (``readers.adapters``) feed these decoders what they read.
"""
