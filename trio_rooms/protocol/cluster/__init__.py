"""The messages servers exchange through Redis, in the wire formats of Node's adapters (sans IO).

``model`` is the one vocabulary (a frozen class per kind of message); ``classic`` and ``sharded`` are
Node's two formats of it (over ``wire``, what every format offers); ``messages`` holds Node's records
and their codecs (JSON, msgpack) with the wire enums ``RequestType`` and ``MessageType``.
"""
