"""Suite-wide test settings.

Every model in the suite is tiny: one intra-op thread per test process is faster than two (on a
shared 2-core machine OpenMP spinning made two threads ~20x slower), and `make test` runs one
process per core with pytest-xdist instead.
"""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread_per_process():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
