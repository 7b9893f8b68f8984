"""Test configuration."""

import signal
import threading

import pytest
import torch

# The networks under test are tiny: a second thread only adds synchronisation
# (and spinning, on a busy machine) to every matrix product.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _default_sigint_handler():
    """Give each test Python's own SIGINT handler.

    A process started in the background by a non-interactive shell (``cmd &``,
    ``nohup cmd &``) inherits SIGINT ignored; the tests that send a real
    SIGINT to their own process need it delivered as KeyboardInterrupt.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
