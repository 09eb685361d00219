"""torchvision state_dict names and shapes for the built-in models (tests/models/models_test.cc).

Each case stores `state_dict`: uint8 text, one line per entry in state_dict order,
"<name> [d0, d1, ...]" (the shape as ruche's Shape::str() writes it; "[]" for a scalar).
"""
import numpy as np
import torch
import torchvision


def cifar_stem(model):
    """The small-input stem ruche uses up to 64 px: conv1 3x3 stride 1 pad 1, no max pool."""
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = torch.nn.Identity()
    return model


def listing(model):
    lines = [f"{name} [{', '.join(str(d) for d in t.shape)}]"
             for name, t in model.state_dict().items()]
    return np.frombuffer("\n".join(lines).encode(), dtype=np.uint8)


def cases():
    models = {
        "resnet18_224": lambda: torchvision.models.resnet18(num_classes=1000),
        "resnet18_32": lambda: cifar_stem(torchvision.models.resnet18(num_classes=10)),
        "resnet50_224": lambda: torchvision.models.resnet50(num_classes=1000),
        "resnet50_32": lambda: cifar_stem(torchvision.models.resnet50(num_classes=10)),
        "vgg16_224": lambda: torchvision.models.vgg16(num_classes=1000),
    }
    for case, make in models.items():
        model = make()
        yield f"models_{case}", {"state_dict": listing(model)}
