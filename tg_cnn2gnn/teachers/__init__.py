"""CNN teachers (and the CNN students of the paper's tables) by name.

>>> from tg_cnn2gnn.teachers import build_teacher, flops_per_sample
>>> model = build_teacher("resnet18", num_classes=100, image_size=32)
>>> model(torch.randn(2, 3, 32, 32)).shape
torch.Size([2, 100])
"""
from tg_cnn2gnn.teachers.profile import count_parameters, flops_per_sample
from tg_cnn2gnn.teachers.resnet import resnet
from tg_cnn2gnn.teachers.simple import SimpleCNN
from tg_cnn2gnn.teachers.vgg import VGG
from tg_cnn2gnn.teachers.wrn import WideResNet
from tg_cnn2gnn.teachers.zoo import TEACHERS, build_teacher

__all__ = ["TEACHERS", "build_teacher", "count_parameters", "flops_per_sample",
           "resnet", "VGG", "WideResNet", "SimpleCNN"]
