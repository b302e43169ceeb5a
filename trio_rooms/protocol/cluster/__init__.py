"""The messages servers exchange through Redis, in the wire formats of Node's adapters (sans IO)."""
