"""Tests for tg_cnn2gnn.teachers: every name, every input shape, errors, sizes, FLOPs."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tg_cnn2gnn.teachers import (TEACHERS, VGG, SimpleCNN, WideResNet, build_teacher, count_parameters,
                                 flops_per_sample, resnet)

SHAPES = [(1, 28), (3, 32), (3, 84), (3, 96)]  # Fashion-MNIST, CIFAR, Mini-ImageNet, STL-10


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_names():
    paper = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg8", "vgg13", "vgg16", "vgg19",
             "wrn-16-2", "wrn-40-1", "wrn-40-2"}
    assert paper <= set(TEACHERS)
    assert {"simple-cnn", "vgg11"} <= set(TEACHERS)
    assert len(set(TEACHERS)) == len(TEACHERS)


def _check_forward_backward(model, channels, size, num_classes):
    model.train()
    x = torch.randn(2, channels, size, size, requires_grad=True)
    out = model(x)
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()
    model.zero_grad()
    F.cross_entropy(out, torch.tensor([0, num_classes - 1])).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", TEACHERS)
def test_forward_backward_all_shapes(name):
    """Every name on 28x28x1, 32x32x3, 84x84x3 and 96x96x3 (batch 2), forward and backward.

    84 and 96 px give the same architecture for every family (ResNets: ImageNet
    stem above 64 px; VGGs: 4 max-pools from 16 px on; WRN / simple-cnn: size
    independent), checked below by comparing the module structure, so one model
    built for 84 px also runs the 96 px input: this saves the slowest builds.
    """
    torch.manual_seed(0)
    num_classes = 7
    for channels, size in [(1, 28), (3, 32)]:
        _check_forward_backward(build_teacher(name, num_classes, in_channels=channels, image_size=size),
                                channels, size, num_classes)
    model84 = build_teacher(name, num_classes, in_channels=3, image_size=84)
    _check_forward_backward(model84, 3, 84, num_classes)
    _check_forward_backward(model84, 3, 96, num_classes)
    with torch.device("meta"):  # building on the meta device skips the (slow) weight initialisation
        model96 = build_teacher(name, num_classes, in_channels=3, image_size=96)
    assert repr(model96) == repr(model84)


@pytest.mark.parametrize("name", ["simple-cnn", "resnet18", "vgg8", "vgg13", "wrn-16-2"])
def test_digits_size(name):
    """8x8 grayscale (scikit-learn digits) works too."""
    model = build_teacher(name, 10, in_channels=1, image_size=8).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_resnet_stems():
    small = build_teacher("resnet18", 10, in_channels=1, image_size=28)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert small.conv1.in_channels == 1 and isinstance(small.maxpool, nn.Identity)
    big = build_teacher("resnet50", 10, image_size=96)
    assert big.conv1.kernel_size == (7, 7) and big.conv1.stride == (2, 2)
    assert isinstance(big.maxpool, nn.MaxPool2d)
    forced = build_teacher("resnet18", 10, in_channels=1, image_size=96, stem="small")
    assert forced.conv1.kernel_size == (3, 3) and forced.conv1.in_channels == 1
    gray_big = resnet(18, 10, in_channels=1, image_size=128)
    assert gray_big.conv1.in_channels == 1 and gray_big.conv1.kernel_size == (7, 7)


def test_parameter_counts_match_references():
    # Small-stem CIFAR ResNet-18 with 10 classes: 11,173,962 parameters (the
    # figure of the widely used kuangliu/pytorch-cifar ResNet18).
    assert count_parameters(build_teacher("resnet18", 10, image_size=32)) == 11_173_962
    # ImageNet stem, 1000 classes: exactly torchvision's resnet18 (11,689,512).
    assert count_parameters(build_teacher("resnet18", 1000, image_size=224)) == 11_689_512


def _wrn_params(depth, k, num_classes, cin=3):
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    total = cin * 16 * 9
    for g in range(3):
        for b in range(n):
            i, o = (widths[g] if b == 0 else widths[g + 1]), widths[g + 1]
            total += 2 * i + 9 * i * o + 2 * o + 9 * o * o + (i * o if (i != o or (b == 0 and g > 0)) else 0)
    return total + 2 * widths[3] + widths[3] * num_classes + num_classes


@pytest.mark.parametrize("name,depth,k", [("wrn-16-2", 16, 2), ("wrn-40-1", 40, 1), ("wrn-40-2", 40, 2)])
def test_wrn_structure(name, depth, k):
    model = build_teacher(name, 100)
    assert count_parameters(model) == _wrn_params(depth, k, 100)
    blocks = [m for m in model.modules() if type(m).__name__ == "_PreActBlock"]
    assert len(blocks) == 3 * ((depth - 4) // 6)
    assert model.fc.in_features == 64 * k


def test_vgg_pooling_adapts_to_image_size():
    def final_map(model, size):
        return model.features(torch.zeros(1, model.features[0].in_channels, size, size)).shape[-1]

    assert VGG(13, 10, 1, image_size=8).num_pools == 3
    assert final_map(VGG(13, 10, 1, image_size=8).eval(), 8) == 1
    assert final_map(VGG(8, 10, 3, image_size=32).eval(), 32) == 2  # CRD: 4 max-pools, then global avg
    assert final_map(VGG(8, 10, 3, image_size=96).eval(), 96) == 6
    convs = [m for m in VGG(8, 10).features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512]
    for depth, n_conv in [(11, 8), (13, 10), (16, 13), (19, 16)]:
        model = VGG(depth, 10)
        assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == n_conv
        assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_conv


def test_name_errors():
    with pytest.raises(ValueError, match=r"unknown teacher name 'resnet19'; valid names: simple-cnn, resnet18"):
        build_teacher("resnet19", 10)
    with pytest.raises(TypeError, match="name must be a str"):
        build_teacher(18, 10)
    assert isinstance(build_teacher("WRN_16_2", 3), WideResNet)  # case and _ insensitive


def test_value_errors():
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        build_teacher("vgg8", 0)
    with pytest.raises(ValueError, match="in_channels must be a positive int, got 2.5"):
        build_teacher("resnet18", 10, in_channels=2.5)
    with pytest.raises(ValueError, match="image_size must be a positive int, got -1"):
        build_teacher("wrn-16-2", 10, image_size=-1)
    with pytest.raises(ValueError, match=r"stem='big' is not supported; allowed values: 'auto', 'small', 'imagenet'"):
        build_teacher("resnet18", 10, stem="big")
    with pytest.raises(ValueError, match=r"depth=15 is not valid for a wide ResNet; it must be 6n \+ 4"):
        WideResNet(15, 2, 10)
    with pytest.raises(ValueError, match="depth=12 is not a supported VGG depth; allowed values: 8, 11, 13"):
        VGG(12, 10)
    with pytest.raises(ValueError, match="width must be a positive int, got 0"):
        SimpleCNN(10, width=0)
    with pytest.raises(TypeError):
        build_teacher("vgg8", 10, stem="small")  # stem is a ResNet option only


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)  # 5x5 -> 2 x 3x3
        self.fc = nn.Linear(18, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_flops_hand_computation():
    model = _Tiny().train()
    # conv: each of 2*3*3 outputs is a dot product of length 1*3*3 -> 2 FLOPs per multiply-add.
    conv = 2 * (2 * 3 * 3) * (1 * 3 * 3)
    linear = 2 * 18 * 4
    assert flops_per_sample(model, (1, 5, 5)) == conv + linear == 468
    assert model.training  # mode restored
    # two 2-D inputs: twice the work is not "per sample" -- the probe uses batch 1
    assert flops_per_sample(nn.Linear(10, 3), (10,)) == 60


def test_flops_known_networks():
    # ResNet-50 on 224x224: 4.1 G multiply-adds (He et al. report 3.8-4.1 GFLOPs as MACs).
    flops = flops_per_sample(build_teacher("resnet50", 1000, image_size=224), (3, 224, 224))
    assert 2 * 4.0e9 < flops < 2 * 4.2e9
    small, big = (flops_per_sample(build_teacher("wrn-16-2", 10), (3, s, s)) for s in (32, 64))
    assert abs(big / small - 4.0) < 0.01  # fully convolutional: cost grows with the pixel count


def test_count_parameters():
    model = _Tiny()
    assert count_parameters(model) == (2 * 9 + 2) + (18 * 4 + 4)
    model.conv.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 18 * 4 + 4
    shared = nn.Sequential(model.fc, model.fc)
    assert count_parameters(shared) == 18 * 4 + 4
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        count_parameters("resnet18")
    with pytest.raises(ValueError, match=r"input_shape must be a non-empty sequence of positive ints.*got \(3, 0\)"):
        flops_per_sample(model, (3, 0))


def test_simple_cnn_learns_digits():
    from tg_cnn2gnn.data import load_tensors

    torch.manual_seed(0)
    x, y = load_tensors("digits", "train")
    xt, yt = load_tensors("digits", "test")
    model = build_teacher("simple-cnn", 10, in_channels=1, image_size=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    for _ in range(4):
        model.train()
        for idx in torch.randperm(len(x)).split(64):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    assert acc > 0.95
