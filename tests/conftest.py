import os

import pytest
import torch

# Ray on loopback only, and no usage report, for every Ray process any test starts: set before Ray is imported,
# which reads them once (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: bind and connect on 127.0.0.1, not the machine's
# other address).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


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


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The served model of the service's tests: small, with a test geometry that is not trivial (images rescaled to
    Q = 40, the centre 32 classified) and the classes :data:`helpers.SERVED_CLASSES`."""
    import json

    from helpers import SERVED_CLASSES, randomise_bn

    import vggnet

    model = randomise_bn(vggnet.build("vgg11_bn", width=1 / 8, pool_size=1, fc_width=32, num_classes=3)).eval()
    meta = {"classes": json.dumps(SERVED_CLASSES), "mean": "[0.4, 0.45, 0.5]", "std": "[0.25, 0.25, 0.25]",
            "crop": "32", "scale": "40"}  # fmt: skip
    return vggnet.save_weights(model, tmp_path_factory.mktemp("model") / "m.safetensors", metadata=meta)
