"""The tests' own safety net: nothing but loopback, no system DNS."""

import socket

import pytest


def test_the_test_guard_refuses_other_networks() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.org", 80)
    with socket.socket() as sock, pytest.raises(AssertionError, match="only loopback"):
        sock.connect_ex(("192.0.2.1", 9))  # TEST-NET-1: refused before it is sent
