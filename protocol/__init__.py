"""mfdkit's contracts, one module each, pure (no I/O):

* :mod:`protocol.errors` -- the one error tree and its codes; the only module the readers need.
* :mod:`protocol.messages`, :mod:`protocol.topics` -- the MQTT 5 contract v1 between a device
  and the cloud.
* :mod:`protocol.engine` -- the wire protocol between a device and a print-engine server.
* :mod:`protocol.address` -- a broker's address; :mod:`protocol.redact` -- secrets out of text.

This package imports none of them: importing a badge codec (which needs only the errors) must
not load the MQTT message module. Import the module you need, e.g.
``from protocol import messages as m``. The import-linter contracts in pyproject.toml keep the
modules independent of each other.
"""
