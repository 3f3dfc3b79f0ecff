"""Helpers shared by the serving tests: images as PNG bytes, base64 and data: URLs; a real server."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from contextlib import contextmanager

import numpy as np
import uvicorn
from PIL import Image


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def b64(array: np.ndarray) -> str:
    return base64.b64encode(png_bytes(array)).decode("ascii")


def data_url(array: np.ndarray) -> str:
    return "data:image/png;base64," + b64(array)




def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app):
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
