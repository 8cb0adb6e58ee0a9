import pytest
import torch

from vggnet.data.transforms import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    Lighting,
    eval_transform,
    paper_train_transform,
    random_shifts,
    rgb_eigen,
    translate_flip,
)


def test_scale_jittering_draws_s_uniformly_from_the_range():
    resize = paper_train_transform((256, 512), crop=224).transforms[0]
    img = torch.zeros(3, 20, 30, dtype=torch.uint8)
    sides = torch.tensor([min(resize(img).shape[1:]) for _ in range(300)]).float()
    assert sides.min() >= 256 and sides.max() <= 512
    assert abs(sides.mean().item() - 384) < 15  # uniform on [256, 512]: mean 384, std 74
    assert abs(sides.std().item() - 74) < 12
    assert (sides > 480).any() and (sides < 288).any()
    fixed = paper_train_transform(384, crop=224).transforms[0]
    assert min(fixed(img).shape[1:]) == 384 and fixed(img).shape[2] == 576  # isotropic


def test_crop_size_and_flip_rate():
    ramp = torch.arange(224, dtype=torch.uint8).expand(3, 224, 224).contiguous()
    transform = paper_train_transform(224, crop=224, colour_shift=0.0, mean=(0, 0, 0))
    flips = 0
    for _ in range(400):
        out = transform(ramp)
        assert out.shape == (3, 224, 224)
        flips += bool(out[0, 0, 0] > out[0, 0, -1])
    assert 160 < flips < 240
    out = paper_train_transform(256, crop=96)(torch.randint(0, 255, (3, 300, 400), dtype=torch.uint8))
    assert out.shape == (3, 96, 96) and out.dtype == torch.float32


def test_colour_shift_follows_the_pca_distribution():
    lighting = Lighting(0.1)
    shifts = lighting(torch.zeros(4000, 3, 1, 1))[:, :, 0, 0]
    vec = torch.tensor(IMAGENET_EIGVEC)
    along = shifts @ vec  # coordinates along each eigenvector: N(0, (0.1 * lambda_i)^2), independent
    expected = 0.1 * torch.tensor(IMAGENET_EIGVAL)
    assert torch.allclose(along.std(0), expected, rtol=0.08)
    assert along.mean(0).abs().max() < 4 * expected.max() / 4000**0.5
    assert abs(torch.corrcoef(along.T)[0, 1]) < 0.06
    # the same shift for every pixel of an image, a new one for each image
    img = lighting(torch.zeros(2, 3, 5, 5))
    assert (img[0] == img[0, :, :1, :1]).all() and not torch.equal(img[0], img[1])
    assert torch.equal(Lighting(0.0)(torch.ones(3, 4, 4)), torch.ones(3, 4, 4))


def test_eigen_decomposition_from_pixels():
    vec = torch.tensor(IMAGENET_EIGVEC).double()
    g = torch.Generator().manual_seed(0)
    pixels = (torch.randn(200_000, 3, generator=g).double() * torch.tensor(IMAGENET_EIGVAL).double().sqrt()) @ vec.T
    values, vectors = rgb_eigen(pixels)
    assert torch.allclose(torch.tensor(values, dtype=torch.float64), torch.tensor(IMAGENET_EIGVAL).double(), rtol=0.03)
    assert torch.allclose(torch.tensor(vectors, dtype=torch.float64).abs()[:, 0], vec.abs()[:, 0], atol=0.02)


def test_mean_subtraction_and_eval_rescale():
    img = torch.full((3, 300, 200), 128, dtype=torch.uint8)
    mean = (0.1, 0.2, 0.3)
    out = paper_train_transform(256, crop=224, colour_shift=0.0, mean=mean)(img)
    torch.testing.assert_close(out.mean((1, 2)), torch.tensor(128 / 255) - torch.tensor(mean), atol=1e-5, rtol=0)
    dense = eval_transform(384, crop=None, mean=mean)(img)
    assert dense.shape == (3, 576, 384)
    with pytest.raises(ValueError, match="smaller than the crop"):
        eval_transform(200, crop=224)
    with pytest.raises(ValueError, match="at least the crop size"):
        paper_train_transform(200, crop=224)


def test_batched_small_image_augmentation():
    x = torch.arange(16, dtype=torch.uint8).expand(64, 1, 16, 16).contiguous()
    out = translate_flip(x, 2, *random_shifts(64, 4, True, torch.Generator().manual_seed(1)))
    assert out.shape == x.shape
    flipped = (out[:, 0, 8, 8] > out[:, 0, 8, 7]).float()  # a decreasing row means mirrored
    assert 0.2 < flipped.mean() < 0.8
    shifted = ~(out == x).all(dim=(1, 2, 3)) & ~(out == x.flip(3)).all(dim=(1, 2, 3))
    assert shifted.any()
    again = translate_flip(x, 2, *random_shifts(64, 4, True, torch.Generator().manual_seed(1)))
    assert torch.equal(out, again)
    dy, dx, mirror = random_shifts(4000, 4, False, torch.Generator().manual_seed(2))
    assert not mirror.any() and set(dy.tolist()) == set(dx.tolist()) == {0, 1, 2, 3, 4}
    assert torch.equal(translate_flip(x, 0, dy, dx, mirror[:64]), x)
