"""torch's global generator is one per process: `resnext.model.global_rng` gives a block it
alone (fit, the estimate's timed steps and seeded attributions all hold it), so a block that
seeds it draws what its seed gives whatever another thread does meanwhile."""

import threading
import time

import torch

from resnext.model import global_rng


def draws(seed: int, n: int = 1000) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(seed))


def test_a_seeded_block_draws_its_own_sequence_while_another_thread_seeds():
    seeded, drawn = threading.Event(), {}

    def slow_block() -> None:
        with global_rng():
            torch.manual_seed(1)
            seeded.set()
            time.sleep(0.3)  # the other thread tries to seed in the meantime
            drawn["slow"] = torch.rand(1000)

    worker = threading.Thread(target=slow_block)
    worker.start()
    seeded.wait(10)
    with global_rng():
        torch.manual_seed(2)
        time.sleep(0.6)  # the other thread would draw now, were its block not its own
        drawn["later"] = torch.rand(1000)
    worker.join(10)
    assert torch.equal(drawn["slow"], draws(1)) and torch.equal(drawn["later"], draws(2))


def test_the_state_outside_the_block_is_put_back():
    torch.manual_seed(7)
    with global_rng():
        torch.manual_seed(8)
        torch.rand(5)
    assert torch.equal(torch.rand(1000), draws(7))
