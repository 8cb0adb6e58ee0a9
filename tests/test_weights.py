import pytest
import torch
from helpers import tiny

import vggnet
import vggnet.base.download
from vggnet.formats.pytorch import read_metadata


def test_safetensors_round_trip_with_metadata(tmp_path):
    model = tiny("vgg13_bn")
    path = vggnet.save_weights(model, tmp_path / "w.safetensors")
    other = tiny("vgg13_bn")
    vggnet.load_weights(other, path)
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(other(x), model(x))
    meta = read_metadata(path)
    assert meta["arch"] == "vgg13_bn" and meta["num_classes"] == 10 and meta["fc_width"] == 32
    assert not list(tmp_path.glob(".*tmp"))


def test_file_url_and_checkpoint_layouts(tmp_path):
    model = tiny()
    path = tmp_path / "ddp.pt"
    # a DistributedDataParallel checkpoint wrapped in a dict
    torch.save({"model": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    other = vggnet.load_weights(tiny(), path.as_uri())
    torch.testing.assert_close(other.classifier[6].weight, model.classifier[6].weight)


def test_official_short_name_goes_through_the_hub_cache(hub_dir, monkeypatch):
    # The real path: torchvision's URL for vgg11, fetched into torch's hub cache. Here the cache is pre-filled
    # (a narrow model stands in for the 507 MB file), and the download itself is shown to be called for a miss.
    url = vggnet.network.weights.official_weights("vgg11").url
    assert url.endswith("vgg11-8a719046.pth")
    model = tiny()
    cached = hub_dir / "checkpoints" / "vgg11-8a719046.pth"
    cached.parent.mkdir(parents=True)
    torch.save(model.state_dict(), cached)
    loaded = vggnet.load_weights(tiny(), "torchvision")
    torch.testing.assert_close(loaded.features[0].weight, model.features[0].weight)

    fetched = []
    served = tiny("vgg13")

    def fake_download(src, dst, advice):
        fetched.append(src)
        torch.save(served.state_dict(), dst)

    monkeypatch.setattr(vggnet.base.download, "fetch", fake_download)
    loaded = vggnet.load_weights(tiny("vgg13"), "IMAGENET1K_V1")
    assert fetched == [vggnet.network.weights.official_weights("vgg13").url]
    torch.testing.assert_close(loaded.features[0].weight, served.features[0].weight)
    assert (hub_dir / "checkpoints" / "vgg13-19584684.pth").is_file()


def test_no_official_weights_for_lrn():
    with pytest.raises(ValueError, match="no weights for architecture 'vgg11_lrn'"):
        vggnet.load_weights(tiny("vgg11_lrn"), "torchvision")


def test_mismatch_names_missing_unexpected_and_misshaped_keys(tmp_path):
    path = vggnet.save_weights(tiny("vgg11_bn", num_classes=7), tmp_path / "a.safetensors")
    with pytest.raises(ValueError) as err:
        vggnet.load_weights(tiny("vgg11"), path)
    text = str(err.value)
    assert "unexpected" in text and "features.1.running_mean" in text
    assert "mis-shaped" in text and "classifier.6.weight: expected (10, 32), got (7, 32)" in text
    with pytest.raises(ValueError, match="missing"):
        vggnet.load_weights(tiny("vgg11_bn"), vggnet.save_weights(tiny("vgg11"), tmp_path / "b.safetensors"))


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(ValueError, match="cannot read weights"):
        vggnet.load_weights(tiny(), path)


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(ValueError, match="no such weights file"):
        vggnet.load_weights(tiny(), tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="ending in .safetensors"):
        vggnet.save_weights(tiny(), tmp_path / "w.pth")
