import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache, so that nothing from a real cache or network is used."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub"


@pytest.fixture(autouse=True, scope="session")
def _engine_cache(tmp_path_factory):
    """vggnet's cache of measured engines, per test session: never the user's, always measured afresh."""
    import os

    previous = os.environ.get("VGGNET_CACHE")
    os.environ["VGGNET_CACHE"] = str(tmp_path_factory.mktemp("vggnet_cache"))
    yield
    if previous is None:
        os.environ.pop("VGGNET_CACHE", None)
    else:
        os.environ["VGGNET_CACHE"] = previous
