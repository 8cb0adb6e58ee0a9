import pytest
import torch
import torch.nn.functional as F
import torchvision
from helpers import TINY_TRAIN, randomise_bn, tiny

import vggnet
from vggnet.inference.folding import fuse_batch_norm
from vggnet.inference.geometry import grid_boxes, posteriors
from vggnet.inference.loading import load_model


def test_dense_equals_the_fc_forward_at_224():
    model = tiny("vgg13")
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        expected = (F.softmax(model(x), 1) + F.softmax(model(x.flip(3)), 1)) / 2
    torch.testing.assert_close(posteriors(model, x, "dense", 224), expected, rtol=1e-4, atol=1e-6)


def test_dense_averages_the_flipped_score_map_at_larger_scales():
    model = tiny("vgg11")
    x = torch.randn(1, 3, 256, 320)
    with torch.no_grad():
        a, b = model.score_map(x).mean((2, 3)), model.score_map(x.flip(3)).mean((2, 3))
    got = posteriors(model, x, "dense", 224)
    torch.testing.assert_close(got, (F.softmax(a, 1) + F.softmax(b, 1)) / 2)
    assert not torch.allclose(got, F.softmax(a, 1))  # the flip matters


def test_multicrop_grid_positions_and_count():
    boxes = grid_boxes(256, 320, 224)
    assert len(boxes) == 25
    assert sorted({t for t, _ in boxes}) == [0, 8, 16, 24, 32]
    assert sorted({left for _, left in boxes}) == [0, 24, 48, 72, 96]
    model = tiny("vgg11")
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    x = torch.randn(2, 3, 256, 320)
    p = posteriors(model, x, "multicrop", 224, chunk=7)
    assert sum(s[0] for s in seen) == 2 * 50 and all(s[-2:] == (224, 224) for s in seen)
    # equals the mean of the posteriors of all 50 crops, taken one by one
    crops = [x[:, :, t : t + 224, u : u + 224] for t, u in boxes]
    crops += [c.flip(3) for c in crops]
    with torch.no_grad():
        expected = torch.stack([F.softmax(model(c), 1) for c in crops]).mean(0)
    torch.testing.assert_close(p, expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="smaller than the 224 crop"):
        grid_boxes(200, 300, 224)


def test_bn_folding_keeps_outputs():
    model = randomise_bn(tiny("vgg16_bn"))
    fused = fuse_batch_norm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)
    assert fused.layer_names == model.layer_names


def test_training_outputs_load_for_inference(tmp_path):
    from vggnet.training import TrainConfig, train

    cfg = TrainConfig(**TINY_TRAIN, dataset="synthetic", epochs=1, batch_size=64, out=str(tmp_path / "run"))
    train(cfg)
    from_checkpoint = load_model(tmp_path / "run" / "last.pt")
    from_weights = load_model(tmp_path / "run" / "model.safetensors")
    for m in (from_checkpoint, from_weights):
        assert m.crop == 32 and m.classes == ["class0", "class1", "class2", "class3"] and len(m.mean) == 3
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(from_checkpoint.model(x), from_weights.model(x))


def test_plain_weights_load_with_arch_and_class_count_from_fc8(tmp_path):
    theirs = torchvision.models.vgg11(num_classes=10)
    torch.save(theirs.state_dict(), tmp_path / "plain.pth")
    loaded_model = load_model(tmp_path / "plain.pth", arch="vgg11")
    assert loaded_model.model.num_classes == 10 and loaded_model.classes[3] == "class 3"
    assert loaded_model.mean == [0.485, 0.456, 0.406] and loaded_model.crop == 224
    with pytest.raises(ValueError, match="give --arch"):
        load_model(tmp_path / "plain.pth")


def test_imagenet_names_for_1000_class_models(tmp_path):
    from vggnet.inference.loading import imagenet_classes

    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[207] == "golden retriever"
    model = tiny("vgg11", num_classes=1000)
    path = vggnet.save_weights(model, tmp_path / "imagenet_like.safetensors")
    assert load_model(path).classes == names


def test_compiling_for_inference_leaves_the_global_compiler_config_alone():
    import torch._inductor.config as inductor

    before = inductor.freezing
    compiled = vggnet.prepare(tiny("vgg11_bn"), compile=True)
    assert inductor.freezing == before and callable(compiled)
