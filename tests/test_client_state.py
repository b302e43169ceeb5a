"""The client's explicit state and reasons, and the shape of its public entry points (no server).

Synchronous where possible; the one connection attempt goes to a port nobody listens on.
"""

from __future__ import annotations

import inspect

import pytest
import trio

import trio_rooms
from trio_rooms.client import Client, ClientDisconnectReason, open_client
from trio_rooms.client.state import FINAL_REASONS, TRANSITIONS, ClientState, ConnectionState


def test_reasons_are_socket_io_client_strings() -> None:
    assert [reason.value for reason in ClientDisconnectReason] == [
        "io server disconnect",
        "io client disconnect",
        "ping timeout",
        "transport close",
        "transport error",
        "parse error",
    ]
    reason = ClientDisconnectReason.PING_TIMEOUT
    assert reason == "ping timeout" and isinstance(reason, str)
    assert str(reason) == f"{reason}" == "ping timeout"
    assert str(trio_rooms.Disconnected(reason)) == "ping timeout"
    assert sorted(FINAL_REASONS) == ["io client disconnect", "io server disconnect"]


@pytest.mark.parametrize("start", list(ClientState))
@pytest.mark.parametrize("target", list(ClientState))
def test_the_state_moves_only_along_the_table(start: ClientState, target: ClientState) -> None:
    state = ConnectionState()
    state.state = start
    if start is ClientState.CLOSED:
        state.move_to(target, "later")  # closed is final: ignored
        assert state.state is ClientState.CLOSED and state.reason == ""
    elif target in TRANSITIONS[start]:
        state.move_to(target, "why")
        assert state.state is target and state.reason == "why"
    else:
        with pytest.raises(trio_rooms.LocalProtocolError):
            state.move_to(target)
        assert state.state is start


def test_connected_means_flushing_or_connected() -> None:
    state = ConnectionState()
    assert not state.connected and not state.closed
    for step, connected in [
        (ClientState.FLUSHING, True),
        (ClientState.CONNECTED, True),
        (ClientState.RECONNECTING, False),
        (ClientState.FLUSHING, True),
        (ClientState.CLOSED, False),
    ]:
        state.move_to(step)
        assert state.connected is connected
    assert state.closed


def test_open_client_takes_exactly_the_parameters_of_client() -> None:
    client_parameters = inspect.signature(Client).parameters
    assert inspect.signature(open_client).parameters == client_parameters
    assert list(client_parameters)[:4] == ["url", "namespace", "auth", "transports"]
    assert trio_rooms.open_client is open_client and trio_rooms.Client is Client


async def test_a_client_is_entered_once() -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", transports=("websocket",), reconnection=False)
    assert "state=connecting" in repr(client)
    with trio.fail_after(10):
        with pytest.raises(trio_rooms.Disconnected, match="could not connect"):
            async with client:
                pytest.fail("connected to nothing")
        assert "state=closed" in repr(client)
        with pytest.raises(RuntimeError, match="entered once"):
            async with client:
                pytest.fail("entered twice")
