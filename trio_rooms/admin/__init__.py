"""The server side of the Socket.IO Admin UI (``@socket.io/admin-ui`` 0.5): ``instrument(server)``.

The Admin UI is a web page that connects to the server as a Socket.IO client on the ``/admin``
namespace; ``instrument`` makes that namespace speak its protocol: login, the server's stats every
2 s, the sockets and their rooms, live events, and the commands of the page (emit, join, leave,
disconnect), cluster-wide through the adapter. ``ui_files`` serves the page's own files from the
npm package, for a server that hosts the page itself.
"""

from .instrument import AdminInstrumentation, instrument
from .page import ui_files

__all__ = ["AdminInstrumentation", "instrument", "ui_files"]
