"""Shared test set-up: every test runs torch on one thread.

The models under test are tiny: a second thread buys nothing, and on a busy 2-core machine (CI, or several
jobs at once) two threads contend and run many times slower.
"""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
