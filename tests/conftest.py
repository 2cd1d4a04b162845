import random

import pytest
import torch

import resnext

# Small configs that run a real forward pass in milliseconds: they cover every stem, form,
# the seed's grouped 1x1, 1 to 6 stages and cardinalities 1..16.
SMALL_CONFIGS = [
    resnext.ResNeXtConfig(cardinality=4, bottleneck_width=2, stage_blocks=(1, 2), num_classes=7,
                          stem="cifar"),
    resnext.ResNeXtConfig(cardinality=8, bottleneck_width=1, stage_blocks=(2, 1, 1), num_classes=5,
                          stem="imagenet"),
    resnext.ResNeXtConfig(cardinality=2, bottleneck_width=3, stage_blocks=(1,), num_classes=3,
                          stem="cifar", grouped_reduce=True),
    resnext.ResNeXtConfig(cardinality=16, bottleneck_width=1, stage_blocks=(1, 1, 1, 1),
                          num_classes=10, stem="imagenet", grouped_reduce=True),
    resnext.ResNeXtConfig(cardinality=1, bottleneck_width=8, stage_blocks=(1, 1, 1, 1, 1, 1),
                          num_classes=4, stem="imagenet"),
    resnext.ResNeXtConfig(cardinality=3, bottleneck_width=5, stage_blocks=(2, 2), num_classes=2,
                          stem="cifar"),
]


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)
    random.seed(0)


def randomize_batchnorm(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every BN non-trivial statistics and affine terms, so eval-mode BN is not identity."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_dirs(tmp_path_factory):
    """The session app's runs and data directories (never the working directory's)."""
    root = tmp_path_factory.mktemp("app")
    return root / "runs", root / "data"


@pytest.fixture(scope="session")
def app_url(app_dirs):
    """The real app, launched once per test session on a free loopback port."""
    from explorer.app import create_app, launch_options
    from explorer.context import AppOptions

    runs_dir, data_dir = app_dirs
    demo = create_app(AppOptions(runs_dir=runs_dir, data_dir=data_dir))
    demo.queue(default_concurrency_limit=1)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options())
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    """A gradio_client connected to the session's app (one browser session's worth of state)."""
    from gradio_client import Client

    return Client(app_url, verbose=False)


# Real-browser fixtures (`browser`, `page`), shared by every tests/test_browser_*.py.
from browser import browser, page  # noqa: E402,F401


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", default=False,
                     help="run long tests in full (the ~60 s, 8-client load test)")


@pytest.fixture(scope="session")
def full_run(request) -> bool:
    return bool(request.config.getoption("--full"))
