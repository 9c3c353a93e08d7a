"""A log router's forward socket is ready when it accepts a connection, not when its file exists:
bind(2) makes the file, and a connect before the listen(2) that follows is refused. The FireLens
task's log driver connected in that moment once (local flake run, "CannotStartContainerError:
[Errno 111] Connection refused"): both backends now wait on `unix_listening`."""

from __future__ import annotations

import socket

import pytest

from lab.backends.process import file_probe, unix_listening, unix_probe


def test_a_bound_socket_that_does_not_listen_yet_is_not_ready(tmp_path):
    path = tmp_path / "fluent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        assert file_probe(path)(), "the file exists from bind(2) on"
        assert not unix_listening(path) and not unix_probe(path)(), "not accepting before listen(2)"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client, \
                pytest.raises(ConnectionRefusedError):  # a log driver connecting now, as the flake's did
            client.connect(str(path))
        server.listen(1)
        assert unix_listening(path) and unix_probe(path)()
    finally:
        server.close()


def test_no_socket_is_not_ready(tmp_path):
    assert not unix_listening(tmp_path / "missing.sock")
    (tmp_path / "plain").write_text("x")
    assert not unix_listening(tmp_path / "plain"), "a plain file is no socket"
