"""The policy server's client and wire protocol, shared with ``wam/serving``.

``client.py`` and ``protocol.py`` are symbolic links to ``wam/serving/client.py`` and
``wam/serving/protocol.py`` (one home for the wire format); building this package copies
their contents, so an installed ``wam-gym-client`` needs neither ``wam`` nor JAX.
"""
