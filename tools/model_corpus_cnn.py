"""Vision families of the model corpus, written in plain torch (no torchvision).

Each builder returns (module, example inputs, input names, output names) for
one architecture at its published configuration, at a modest input size so
that one run takes 1-60 ms on two CPU cores.  `tools/model_corpus.py` seeds,
calibrates and exports them.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

FAMILIES: dict = {}


def family(fn):
    """Register a builder under its function name."""
    FAMILIES[fn.__name__] = fn
    return fn


def image(size, channels: int = 3):
    h, w = (size, size) if isinstance(size, int) else size
    return torch.randn(1, channels, h, w)


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
            act=nn.ReLU, dilation: int = 1) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, dilation * (k // 2), dilation, groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def divisible(v: float, d: int = 8) -> int:
    return max(d, int(v + d / 2) // d * d)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int, act=nn.ReLU, gate=nn.Hardsigmoid):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, squeezed, 1), nn.Conv2d(squeezed, channels, 1)
        self.act, self.gate = act(), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class MBConv(nn.Module):
    """Inverted residual of MobileNetV3 / EfficientNet: expand, depthwise, SE, project."""

    def __init__(self, cin, expanded, cout, k, stride, se: int, act, gate=nn.Hardsigmoid,
                 se_act=nn.ReLU):
        super().__init__()
        layers = [conv_bn(cin, expanded, 1, act=act)] if expanded != cin else []
        layers.append(conv_bn(expanded, expanded, k, stride, groups=expanded, act=act))
        if se:
            layers.append(SqueezeExcite(expanded, se, se_act, gate))
        layers.append(conv_bn(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class Classifier(nn.Sequential):
    """Stem, blocks, head conv, global pool, linear layers."""

    def forward(self, x):
        for m in self:
            if isinstance(m, nn.Linear) and x.dim() > 2:
                x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
            x = m(x)
        return x


def mobilenet_v3(cfg, last: int, hidden: int):
    blocks, cin = [conv_bn(3, 16, 3, 2, act=nn.Hardswish)], 16
    for k, exp, cout, se, act, stride in cfg:
        blocks.append(MBConv(cin, exp, cout, k, stride, divisible(exp / 4) if se else 0,
                             nn.Hardswish if act == "HS" else nn.ReLU))
        cin = cout
    blocks += [conv_bn(cin, last, 1, act=nn.Hardswish), nn.Linear(last, hidden), nn.Hardswish(),
               nn.Linear(hidden, 1000)]
    return Classifier(*blocks)


@family
def mobilenet_v3_large():
    cfg = [(3, 16, 16, 0, "RE", 1), (3, 64, 24, 0, "RE", 2), (3, 72, 24, 0, "RE", 1),
           (5, 72, 40, 1, "RE", 2), (5, 120, 40, 1, "RE", 1), (5, 120, 40, 1, "RE", 1),
           (3, 240, 80, 0, "HS", 2), (3, 200, 80, 0, "HS", 1), (3, 184, 80, 0, "HS", 1),
           (3, 184, 80, 0, "HS", 1), (3, 480, 112, 1, "HS", 1), (3, 672, 112, 1, "HS", 1),
           (5, 672, 160, 1, "HS", 2), (5, 960, 160, 1, "HS", 1), (5, 960, 160, 1, "HS", 1)]
    return mobilenet_v3(cfg, 960, 1280), (image(224),), ["input"], ["logits"]


@family
def mobilenet_v3_small():
    cfg = [(3, 16, 16, 1, "RE", 2), (3, 72, 24, 0, "RE", 2), (3, 88, 24, 0, "RE", 1),
           (5, 96, 40, 1, "HS", 2), (5, 240, 40, 1, "HS", 1), (5, 240, 40, 1, "HS", 1),
           (5, 120, 48, 1, "HS", 1), (5, 144, 48, 1, "HS", 1), (5, 288, 96, 1, "HS", 2),
           (5, 576, 96, 1, "HS", 1), (5, 576, 96, 1, "HS", 1)]
    return mobilenet_v3(cfg, 576, 1024), (image(224),), ["input"], ["logits"]


@family
def efficientnet_b0():
    # (expand, channels, repeats, stride, kernel): the B0 table of the paper
    cfg = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
           (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]
    blocks, cin = [conv_bn(3, 32, 3, 2, act=nn.SiLU)], 32
    for expand, cout, repeats, stride, k in cfg:
        for i in range(repeats):
            blocks.append(MBConv(cin, cin * expand, cout, k, stride if i == 0 else 1,
                                 max(1, cin // 4), nn.SiLU, nn.Sigmoid, nn.SiLU))
            cin = cout
    blocks += [conv_bn(cin, 1280, 1, act=nn.SiLU), nn.Dropout(0.2), nn.Linear(1280, 1000)]
    return Classifier(*blocks), (image(224),), ["input"], ["logits"]


class Bottleneck(nn.Module):
    def __init__(self, cin, width, cout, stride, groups=1, se=0):
        super().__init__()
        layers = [conv_bn(cin, width, 1), conv_bn(width, width, 3, stride, groups)]
        if se:
            layers.append(SqueezeExcite(width, se, nn.ReLU, nn.Sigmoid))
        layers.append(conv_bn(width, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.short = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else None

    def forward(self, x):
        return F.relu(self.block(x) + (x if self.short is None else self.short(x)))


@family
def resnet50():
    blocks = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for i, (repeats, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)]):
        for j in range(repeats):
            blocks.append(Bottleneck(cin, width, width * 4, 2 if j == 0 and i > 0 else 1))
            cin = width * 4
    blocks.append(nn.Linear(cin, 1000))
    return Classifier(*blocks), (image(160),), ["input"], ["logits"]


@family
def regnety_400mf():
    blocks, cin = [conv_bn(3, 32, 3, 2)], 32
    for depth, width in zip((1, 3, 6, 6), (48, 104, 208, 440)):
        for j in range(depth):
            blocks.append(Bottleneck(cin, width, width, 2 if j == 0 else 1, width // 8,
                                     se=cin // 4))
            cin = width
    blocks.append(nn.Linear(cin, 1000))
    return Classifier(*blocks), (image(224),), ["input"], ["logits"]


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.block = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(),
                                   nn.Conv2d(cin, 4 * growth, 1, bias=False),
                                   nn.BatchNorm2d(4 * growth), nn.ReLU(),
                                   nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.block(x)], 1)


@family
def densenet121():
    blocks, cin, growth = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64, 32
    for i, layers in enumerate((6, 12, 24, 16)):
        for _ in range(layers):
            blocks.append(DenseLayer(cin, growth))
            cin += growth
        if i < 3:
            blocks += [nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cin // 2, 1, bias=False),
                       nn.AvgPool2d(2)]
            cin //= 2
    blocks += [nn.BatchNorm2d(cin), nn.ReLU(), nn.Linear(cin, 1000)]
    return Classifier(*blocks), (image(128),), ["input"], ["logits"]


class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.e1, self.e3 = nn.Conv2d(squeeze, expand, 1), nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        s = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(s)), F.relu(self.e3(s))], 1)


@family
def squeezenet1_1():
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
    net = nn.Sequential(nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool(), Fire(64, 16, 64),
                        Fire(128, 16, 64), pool(), Fire(128, 32, 128), Fire(256, 32, 128), pool(),
                        Fire(256, 48, 192), Fire(384, 48, 192), Fire(384, 64, 256),
                        Fire(512, 64, 256), nn.Dropout(0.5), nn.Conv2d(512, 1000, 1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return net, (image(224),), ["input"], ["logits"]


@family
def vgg11_bn():
    layers, cin = [], 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers.append(conv_bn(cin, v))
            cin = v
    layers += [nn.Flatten(), nn.Linear(512 * 4 * 4, 1024), nn.ReLU(), nn.Dropout(),
               nn.Linear(1024, 1000)]
    return nn.Sequential(*layers), (image(128),), ["input"], ["logits"]


class ChannelsLastNorm(nn.LayerNorm):
    """LayerNorm over the channels of NCHW, by permuting as ConvNeXt does."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.rand(dim) * 0.5 + 0.25)

    def forward(self, x):
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        y = self.gamma * self.fc2(F.gelu(self.fc1(y)))
        return x + y.permute(0, 3, 1, 2)


@family
def convnext_nano():
    dims, depths = (48, 96, 192, 384), (2, 2, 6, 2)
    layers = [nn.Conv2d(3, dims[0], 4, 4), ChannelsLastNorm(dims[0], eps=1e-6)]
    for i, (dim, depth) in enumerate(zip(dims, depths)):
        if i:
            layers += [ChannelsLastNorm(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, 2)]
        layers += [ConvNeXtBlock(dim) for _ in range(depth)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(dims[-1]),
               nn.Linear(dims[-1], 1000)]
    return nn.Sequential(*layers), (image(160),), ["input"], ["logits"]


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride > 1:
            self.left = nn.Sequential(conv_bn(cin, cin, 3, stride, cin, act=None),
                                      conv_bn(cin, half, 1))
        self.right = nn.Sequential(conv_bn(cin if stride > 1 else half, half, 1),
                                   conv_bn(half, half, 3, stride, half, act=None),
                                   conv_bn(half, half, 1))

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.right(b)], 1)
        else:
            out = torch.cat([self.left(x), self.right(x)], 1)
        n, c, h, w = out.shape
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


@family
def shufflenet_v2():
    layers, cin = [conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)], 24
    for repeats, cout in zip((4, 8, 4), (116, 232, 464)):
        layers += [ShuffleUnit(cin if i == 0 else cout, cout, 2 if i == 0 else 1)
                   for i in range(repeats)]
        cin = cout
    layers += [conv_bn(cin, 1024, 1), nn.Linear(1024, 1000)]
    return Classifier(*layers), (image(224),), ["input"], ["logits"]


class UNet(nn.Module):
    def __init__(self, widths=(16, 32, 64, 128, 256), classes: int = 4):
        super().__init__()
        double = lambda a, b: nn.Sequential(conv_bn(a, b), conv_bn(b, b))  # noqa: E731
        self.down = nn.ModuleList([double(a, b) for a, b in zip((3,) + widths[:-1], widths)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(b, a, 2, 2)
                                 for a, b in zip(widths[:-1], widths[1:])])
        self.merge = nn.ModuleList([double(2 * a, a) for a in widths[:-1]])
        self.out = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        for up, merge, skip in reversed(list(zip(self.up, self.merge, skips[:-1]))):
            x = merge(torch.cat([skip, up(x)], 1))
        return self.out(x)


@family
def unet():
    return UNet(), (image(128),), ["image"], ["masks"]


class DeepLabV3(nn.Module):
    """Output stride 8 backbone with dilated residual blocks, ASPP, bilinear resize."""

    def __init__(self, classes: int = 21, rates=(2, 4, 6)):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 32, 3, 2), conv_bn(32, 64, 3, 2),
                                  Bottleneck(64, 32, 128, 2), Bottleneck(128, 32, 128, 1))
        self.dilated = nn.Sequential(*[nn.Sequential(conv_bn(128, 128, 3, dilation=d),
                                                     conv_bn(128, 128, 1)) for d in (2, 2, 4, 4)])
        self.aspp = nn.ModuleList([conv_bn(128, 64, 1)]
                                  + [conv_bn(128, 64, 3, dilation=r) for r in rates])
        self.pool = conv_bn(128, 64, 1)
        self.project = conv_bn(64 * (len(rates) + 2), 64, 1)
        self.head = nn.Sequential(conv_bn(64, 64), nn.Conv2d(64, classes, 1))

    def forward(self, x):
        f = self.dilated(self.stem(x))
        pooled = F.interpolate(self.pool(F.adaptive_avg_pool2d(f, 1)), size=f.shape[-2:],
                               mode="bilinear", align_corners=False)
        y = self.project(torch.cat([b(f) for b in self.aspp] + [pooled], 1))
        return F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear", align_corners=False)


@family
def deeplabv3():
    return DeepLabV3(), (image(160),), ["image"], ["masks"]


class FCN8s(nn.Module):
    """VGG-style encoder; stride-32, 16 and 8 scores fused with ConvTranspose."""

    def __init__(self, classes: int = 21):
        super().__init__()
        def stage(a, b, n):
            convs = [conv_bn(a if i == 0 else b, b) for i in range(n)]
            return nn.Sequential(*convs, nn.MaxPool2d(2))
        self.s8 = nn.Sequential(stage(3, 32, 2), stage(32, 64, 2), stage(64, 128, 3))
        self.s16, self.s32 = stage(128, 256, 3), stage(256, 256, 3)
        self.fc = nn.Sequential(conv_bn(256, 512, 3), conv_bn(512, 512, 1))
        self.score32, self.score16, self.score8 = (nn.Conv2d(c, classes, 1)
                                                   for c in (512, 256, 128))
        self.up2a = nn.ConvTranspose2d(classes, classes, 4, 2, 1, bias=False)
        self.up2b = nn.ConvTranspose2d(classes, classes, 4, 2, 1, bias=False)
        self.up8 = nn.ConvTranspose2d(classes, classes, 16, 8, 4, bias=False)

    def forward(self, x):
        f8 = self.s8(x)
        f16 = self.s16(f8)
        y = self.up2a(self.score32(self.fc(self.s32(f16)))) + self.score16(f16)
        return self.up8(self.up2b(y) + self.score8(f8))


@family
def fcn8s():
    return FCN8s(), (image(160),), ["image"], ["masks"]


class FlowNet(nn.Module):
    """Optical flow: all-pairs correlation by MatMul and soft-argmax at 1/8,
    then at 1/4 warp by GridSample, local correlation and a residual decoder."""

    def __init__(self):
        super().__init__()
        self.enc4 = nn.Sequential(conv_bn(3, 32, 7, 2), conv_bn(32, 64, 3, 2), conv_bn(64, 64))
        self.enc8 = nn.Sequential(conv_bn(64, 96, 3, 2), conv_bn(96, 128, 3, act=None))
        self.decoder = nn.Sequential(conv_bn(64 + 9 + 2, 96), conv_bn(96, 64), conv_bn(64, 32),
                                     nn.Conv2d(32, 2, 3, padding=1))

    @staticmethod
    def grid(h: int, w: int):
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                                torch.arange(w, dtype=torch.float32), indexing="ij")
        return torch.stack([xs, ys], 0).unsqueeze(0)          # 1 x 2 x h x w

    def forward(self, img1, img2):
        a4, b4 = self.enc4(img1), self.enc4(img2)
        a8, b8 = self.enc8(a4), self.enc8(b4)
        n, c, h, w = a8.shape
        corr = a8.flatten(2).transpose(1, 2) @ b8.flatten(2) / math.sqrt(c)   # n x hw x hw
        coords = self.grid(h, w).flatten(2).transpose(1, 2)                    # 1 x hw x 2
        match = corr.softmax(-1) @ coords
        flow8 = (match - coords).transpose(1, 2).reshape(n, 2, h, w)
        flow4 = 2 * F.interpolate(flow8, scale_factor=2, mode="bilinear", align_corners=False)
        h4, w4 = a4.shape[-2:]
        pos = self.grid(h4, w4) + flow4
        norm = torch.stack([pos[:, 0] / (w4 - 1), pos[:, 1] / (h4 - 1)], -1) * 2 - 1
        warped = F.grid_sample(b4, norm, mode="bilinear", padding_mode="zeros", align_corners=True)
        padded = F.pad(warped, (1, 1, 1, 1))
        local = torch.cat([(a4 * padded[:, :, dy:dy + h4, dx:dx + w4]).mean(1, keepdim=True)
                           for dy in range(3) for dx in range(3)], 1)
        flow4 = flow4 + self.decoder(torch.cat([a4, local, flow4], 1))
        return 4 * F.interpolate(flow4, scale_factor=4, mode="bilinear", align_corners=False)


@family
def flownet():
    return FlowNet(), (image((128, 160)), image((128, 160))), ["image1", "image2"], ["flow"]


class C2f(nn.Module):
    """YOLOv8's split-and-concatenate bottleneck block."""

    def __init__(self, cin: int, cout: int, n: int, shortcut: bool = True):
        super().__init__()
        half = cout // 2
        self.cv1 = conv_bn(cin, 2 * half, 1, act=nn.SiLU)
        self.cv2 = conv_bn((2 + n) * half, cout, 1, act=nn.SiLU)
        self.m = nn.ModuleList([nn.Sequential(conv_bn(half, half, act=nn.SiLU),
                                              conv_bn(half, half, act=nn.SiLU)) for _ in range(n)])
        self.shortcut = shortcut

    def forward(self, x):
        ys = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            ys.append(ys[-1] + m(ys[-1]) if self.shortcut else m(ys[-1]))
        return self.cv2(torch.cat(ys, 1))


class SPPF(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.cv1, self.cv2 = conv_bn(c, c // 2, 1, act=nn.SiLU), conv_bn(2 * c, c, 1, act=nn.SiLU)

    def forward(self, x):
        ys = [self.cv1(x)]
        for _ in range(3):
            ys.append(F.max_pool2d(ys[-1], 5, 1, 2))
        return self.cv2(torch.cat(ys, 1))


class YoloV8(nn.Module):
    """YOLOv8n-style: C2f backbone, SPPF, PAN neck, three anchor-free heads decoded to boxes."""

    def __init__(self, classes: int = 80, w=(16, 32, 64, 128, 256)):
        super().__init__()
        act = nn.SiLU
        self.b3 = nn.Sequential(conv_bn(3, w[0], 3, 2, act=act), conv_bn(w[0], w[1], 3, 2, act=act),
                                C2f(w[1], w[1], 1), conv_bn(w[1], w[2], 3, 2, act=act),
                                C2f(w[2], w[2], 2))
        self.b4 = nn.Sequential(conv_bn(w[2], w[3], 3, 2, act=act), C2f(w[3], w[3], 2))
        self.b5 = nn.Sequential(conv_bn(w[3], w[4], 3, 2, act=act), C2f(w[4], w[4], 1), SPPF(w[4]))
        self.n4, self.n3 = C2f(w[4] + w[3], w[3], 1, False), C2f(w[3] + w[2], w[2], 1, False)
        self.d3, self.p4 = conv_bn(w[2], w[2], 3, 2, act=act), C2f(w[2] + w[3], w[3], 1, False)
        self.d4, self.p5 = conv_bn(w[3], w[3], 3, 2, act=act), C2f(w[3] + w[4], w[4], 1, False)
        self.heads = nn.ModuleList([nn.Sequential(conv_bn(c, 64, act=act), conv_bn(64, 64, act=act),
                                                  nn.Conv2d(64, 4 + classes, 1))
                                    for c in (w[2], w[3], w[4])])

    def forward(self, x):
        p3 = self.b3(x)
        p4 = self.b4(p3)
        p5 = self.b5(p4)
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        n4 = self.n4(torch.cat([up(p5), p4], 1))
        n3 = self.n3(torch.cat([up(n4), p3], 1))
        o4 = self.p4(torch.cat([self.d3(n3), n4], 1))
        o5 = self.p5(torch.cat([self.d4(o4), p5], 1))
        outs = []
        for head, feat, stride in zip(self.heads, (n3, o4, o5), (8, 16, 32)):
            p = head(feat)
            n, _, h, w = p.shape
            box, cls = p.flatten(2).split([4, p.shape[1] - 4], 1)
            ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
            anchor = torch.stack([xs, ys], 0).flatten(1).unsqueeze(0)
            lt, rb = F.softplus(box).chunk(2, 1)
            xy = (anchor + (rb - lt) / 2) * stride
            wh = (lt + rb) * stride
            outs.append(torch.cat([xy, wh, cls.sigmoid()], 1))
        return torch.cat(outs, 2)


@family
def yolov8n():
    return YoloV8(), (image(256),), ["images"], ["detections"]
