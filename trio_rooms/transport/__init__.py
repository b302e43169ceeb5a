"""The trio edge: the only package that touches sockets and streams."""
