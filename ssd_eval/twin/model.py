"""An architecture-faithful twin of the ONNX Model Zoo SSD-ResNet34 (ssd-10.onnx), built with `onnx` only.

The graph follows MLPerf's `ssd_r34.py` as exported to ONNX (opset 10, IR version 5): ResNet-34
conv1 .. layer3 (layer3 at stride 1, BatchNorm folded into the convs), five extra blocks, six
loc/conf heads (3x3, pad 1, stride 3), the 15130 default boxes of `dboxes_R34_coco`, decode
(variances 0.1 / 0.2), softmax, per-class NonMaxSuppression (200, IoU 0.5, score 0.05) and the
best min(200, selected) by score. The real model's layer sizes give its cost: 19,967,606
parameters and 216.4 GMACs at 1200 (counted from the graph by `graph_stats`), and its I/O:
`image` [1, 3, S, S] -> `bboxes` [1, nbox, 4], `labels` [1, nbox], `scores` [1, nbox]. It stands
in for the real file where the 80 MB download is impossible: its detections are meaningless
(mAP ~0), its cost and the statistics of its outputs are not.

How the weights are chosen (numpy `default_rng(seed)`, drawn in graph order, so one seed gives
byte-identical model bytes):

- Trunk: He-normal kernels; a folded BatchNorm is a gain on the kernel and a bias (shift
  ~ N(0, 0.1)). Every 3x3/7x7 kernel is zero-sum over its window (band-pass, as trained early
  filters mostly are): features follow edges and texture rather than the mean colour, which is
  what makes the detections depend on the image. conv1's gain grows as sqrt(S): a band-pass
  filter's response to a bilinearly upscaled photo shrinks about that way (measured), so the
  activations have one scale at 600 and 1200. The last conv of each residual branch has gain 0.5
  (trained BN gammas there are small), extra-block convs 0.94. Activation std at 1200 (mean over
  50 COCO val2017 images): conv1 1.1, layer1 2.0, layer2 2.5, layer3 2.8 -> 3.3, extra blocks
  1.8 -> 2.1; across images it varies by about a third (image contrast). Nothing explodes or
  vanishes through the 36 convolutions.
- Heads: class-logit kernels are scaled per level so that a logit has std CLASS_LOGIT_STD on
  photos (HEAD_PROJECTION_STD: measured at 1200 on the first 25 of those images, as BN
  statistics are); 99% of their variance is zero-sum over the 3x3 window; the anchors of a
  location share 90% of it, so they mostly agree on a class, as a trained head's do. The
  background logit is BACKGROUND_LOGIT plus BACKGROUND_ENERGY times the local mean activation
  over its typical level (HEAD_SOURCE_ENERGY): where texture makes class logits swing wider the
  background rises with them, so the number of detections depends little on image contrast, and
  a featureless image gives none. Class biases follow a Zipf law (-0.6 log rank over a seeded
  permutation): a few classes are common, most are rare, as in COCO. loc offsets have std LOC_STD
  (in variance units): boxes stay close to their default boxes.

What that gives with seed 0 (50 COCO val2017 images, card preprocessing):

- at 1200: 190 detections per image on average (min 74, median 200: most images hit the cap,
  as the real model's ~190 do); 43 classes per image (13-57), the most frequent class 26
  detections; top score median 0.95, scores > 0.5 median 14 per image, median score 0.11.
- at 600 (a quarter of the default boxes): 122 per image (27-200), 33 classes (8-51), top score
  median 0.73. Synthetic pictures at 600 (gradient, rectangles and discs, mild noise; the test's
  generator): 20-80 detections over 6-27 classes; a flat grey image: none; uniform RGB noise:
  200 with scores near 1.
- boxes: x1 <= x2, y1 <= y2, within LOC_STD of their default box. 13% of detections at 1200
  (20% at 600) reach past [-0.1, 1.1], as the clamped 1.0-wide default boxes of the 3x3 levels
  centred at 1/6 do; 46% (61%) have a coordinate outside [0, 1], mostly edge anchors a few pixels
  over. Borders attract detections: 41% of centres lie within 8% of the border, 29% of the area
  (zero padding looks like an edge to band-pass filters).
- seed 1: 189.5 detections over 43 classes per image at 1200 (first 12 images; seed 0: 190, 43),
  113 over 34 at 600 (first 20 images; seed 0: 128, 35).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from ssd_eval.errors import ModelError

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # pragma: no cover - only without the `twin` extra
    raise ModelError("the twin needs the onnx package: pip install 'ssd_eval[twin]'") from None

log = logging.getLogger(__name__)

TWIN_VERSION = 1  # bump whenever the graph or the weights change: it names the cached file
OPSET = 10
# The real file was written by ONNX 1.5 (IR version 5, opset 10). onnx 1.23 writes IR 14 by
# default, which onnxruntime-openvino 1.24 (IR <= 13) refuses.
IR_VERSION = 5

NUM_CLASSES = 81  # 80 COCO classes + background (index 0)
NUM_DEFAULTS = (4, 6, 6, 6, 4, 4)
SOURCE_CHANNELS = (256, 512, 512, 256, 256, 256)
# ResNet-34 stages kept by the detector: (channels, blocks, stride of the first block).
# layer3's first block runs at stride 1 (MLPerf base_model_r34 `_ModifyBlock`).
RESNET_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 1))
# Extra blocks: (in, mid, out, stride, pad) of "1x1 conv, ReLU, 3x3 conv, ReLU".
EXTRA_BLOCKS = (
    (256, 256, 512, 2, 1),
    (512, 256, 512, 2, 1),
    (512, 128, 256, 2, 1),
    (256, 128, 256, 2, 0),
    (256, 128, 256, 1, 0),
)
HEAD_STRIDE = 3
# Below this the last extra block's unpadded 3x3 conv meets a map smaller than 3x3 (tested).
MIN_IMAGE_SIZE = 385
SCALES_AT_300 = (21, 45, 99, 153, 207, 261, 315)
ASPECT_RATIOS = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
CENTER_VARIANCE = 0.1
SIZE_VARIANCE = 0.2
MAX_DETECTIONS = 200
IOU_THRESHOLD = 0.5
SCORE_THRESHOLD = 0.05

# Weight statistics (the module docstring says how they were chosen and what they give).
CONV1_GAIN_AT_1200 = 4.95
RESIDUAL_GAIN = 0.5
EXTRA_GAIN = 0.94
SHIFT_STD = 0.1
HEAD_WINDOW_MEAN = 0.01  # share of a head kernel's variance in its window mean (low-pass part)
ANCHOR_SHARE = 0.9
# Per source level, measured at 1200 on COCO val images with unit-gain heads: the std of a class
# logit and the mean of the local mean activation (what the background logit reads).
HEAD_PROJECTION_STD = (4.105, 2.54, 2.555, 2.5, 2.705, 2.633)
HEAD_SOURCE_ENERGY = (2.271, 0.944, 0.958, 0.901, 0.996, 0.866)
CLASS_LOGIT_STD = 2.5
BACKGROUND_LOGIT = 2.5
BACKGROUND_ENERGY = 6.0
CLASS_PRIOR_ZIPF = 0.6
LOC_STD = 1.0


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output side of a convolution or pooling window (floor mode); 0 when the window doesn't fit."""
    span = size + 2 * pad - kernel
    return span // stride + 1 if span >= 0 else 0


def _source_sides(image_size: int) -> list[int]:
    """The six source sides for any input, 0 where a map would not exist."""
    side = _conv_out(image_size, 7, 2, 3)  # conv1
    side = _conv_out(side, 3, 2, 1)  # maxpool
    side = _conv_out(side, 3, 2, 1)  # layer2's first block; layer3 keeps the size
    sides = [side]
    for _, _, _, stride, pad in EXTRA_BLOCKS:
        side = _conv_out(side, 3, stride, pad)
        sides.append(side)
    return sides


def _box_grids(image_size: int, grids: Sequence[int]) -> list[int]:
    """The grid `dboxes_R34_coco` places centres on: fk = S // int(S / grid)."""
    return [image_size // int(image_size / grid) for grid in grids]


def _layout_fits(image_size: int) -> bool:
    sides = _source_sides(image_size)
    if min(sides) < 1:
        return False
    grids = [_conv_out(side, 3, HEAD_STRIDE, 1) for side in sides]
    return _box_grids(image_size, grids) == grids


def _nearest_fitting(image_size: int) -> list[int]:
    below = next((s for s in range(image_size - 1, MIN_IMAGE_SIZE - 1, -1) if _layout_fits(s)), None)
    above = next(
        (s for s in range(max(image_size + 1, MIN_IMAGE_SIZE), image_size + 1000) if _layout_fits(s)), None
    )
    return [s for s in (below, above) if s is not None]


def feature_map_sizes(image_size: int) -> list[int]:
    """Sides of the six source feature maps the heads read: [150, 75, 38, 19, 9, 7] at 1200.

    Raises ValueError for sizes the layout can't take: below 385 the last, unpadded 3x3
    convolution meets a map smaller than 3x3 (at 300 it meets 2x2); and sizes where the
    reference's default-box rule (step = int(S / grid), centres at (j + 0.5) / (S // step)) puts
    centres on a different grid than the heads produce (e.g. 598: the first head gives a 25x25
    grid, the boxes a 26x26 one), so boxes and predictions would not line up.
    """
    if image_size < MIN_IMAGE_SIZE:
        sides = _source_sides(image_size)
        missing = sides.index(0) if 0 in sides else len(sides)
        where = (
            f"extra block {missing} of {len(EXTRA_BLOCKS)}: its unpadded 3x3 convolution would meet a "
            f"{sides[missing - 1]}x{sides[missing - 1]} map (feature maps {sides[:missing]})"
            if 0 < missing < len(sides)
            else "the backbone has no room for its strides"
        )
        raise ValueError(
            f"image size {image_size}: the SSD-ResNet34 layout needs at least {MIN_IMAGE_SIZE} pixels; "
            + where
        )
    sides = _source_sides(image_size)
    grids = [_conv_out(side, 3, HEAD_STRIDE, 1) for side in sides]
    box_grids = _box_grids(image_size, grids)
    if box_grids != grids:
        raise ValueError(
            f"image size {image_size}: the heads give {grids} grids but the default-box rule "
            f"(step int(S/grid)) places centres on {box_grids}; sizes that fit nearby: "
            f"{_nearest_fitting(image_size)} (600 and 1200 fit)"
        )
    return sides


def grid_sizes(image_size: int) -> list[int]:
    """Sides of the six head output grids: [50, 25, 13, 7, 3, 3] at 1200 (3x3 pad 1 stride 3)."""
    return [_conv_out(side, 3, HEAD_STRIDE, 1) for side in feature_map_sizes(image_size)]


def default_boxes(image_size: int) -> np.ndarray:
    """The reference's default boxes, float32 [N, 4] (cx, cy, w, h), normalized and clamped to [0, 1].

    `dboxes_R34_coco` rules: step int(S/grid), centre ((j + .5) / fk, (i + .5) / fk) with
    fk = S // step; box scales int(s * S / 300) for s in SCALES_AT_300 (int(s * 4) at 1200); per
    location the sizes s_k, sqrt(s_k * s_k+1), then s_k * sqrt(a) x s_k / sqrt(a) and its swap per
    aspect ratio a; ordered size, row, column (the order of `view(N, 4, -1)` on the heads' output).
    """
    grids = grid_sizes(image_size)
    scales = [int(s * image_size / 300) / image_size for s in SCALES_AT_300]
    boxes: list[tuple[float, float, float, float]] = []
    for level, (grid, fk) in enumerate(zip(grids, _box_grids(image_size, grids), strict=True)):
        small, large = scales[level], scales[level + 1]
        middle = math.sqrt(small * large)
        sizes = [(small, small), (middle, middle)]
        for ratio in ASPECT_RATIOS[level]:
            wide, tall = small * math.sqrt(ratio), small / math.sqrt(ratio)
            sizes += [(wide, tall), (tall, wide)]
        for (width, height), row, col in product(sizes, range(grid), range(grid)):
            boxes.append(((col + 0.5) / fk, (row + 0.5) / fk, width, height))
    return np.clip(np.asarray(boxes, dtype=np.float64), 0.0, 1.0).astype(np.float32)


@dataclass
class _Graph:
    """Nodes and initializers as they are added; tensor names are unique node names."""

    rng: np.random.Generator
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], name: str, outputs: int = 1, **attrs: Any) -> str:
        """Add a node; its (first) output tensor is called `name`, further ones `name:1`, ..."""
        names = [name] + [f"{name}:{i}" for i in range(1, outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=name, **attrs))
        return name

    def conv(
        self, x: str, name: str, weight: np.ndarray, bias: np.ndarray, *, stride: int = 1, pad: int = 0
    ) -> str:
        kernel = weight.shape[-1]
        w = self.constant(f"{name}.weight", weight.astype(np.float32))
        b = self.constant(f"{name}.bias", bias.astype(np.float32))
        return self.op(
            "Conv", [x, w, b], name, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4
        )


def _kernel(
    rng: np.random.Generator, cout: int, cin: int, k: int, gain: float, low_pass: float = 0.0
) -> np.ndarray:
    """He-normal kernel [cout, cin, k, k] times `gain`.

    A k x k kernel (k > 1) is split into its window mean and the zero-sum rest, each rescaled to
    unit variance per weight and mixed `low_pass` : 1 - `low_pass` by variance. At 0 the kernel
    is band-pass: it ignores a uniform input, so features follow edges and texture.
    """
    weight = rng.standard_normal((cout, cin, k, k))
    if k > 1:
        mean = weight.mean(axis=(2, 3), keepdims=True)
        band = (weight - mean) * math.sqrt(k * k / (k * k - 1))
        weight = band * math.sqrt(1.0 - low_pass) + mean * (k * math.sqrt(low_pass))
    return weight * (gain * math.sqrt(2.0 / (cin * k * k)))


def _shift(rng: np.random.Generator, cout: int) -> np.ndarray:
    """Bias of a conv: a folded BatchNorm's shift (or an extra block's own bias)."""
    return rng.standard_normal(cout) * SHIFT_STD


def _conv_bn(g: _Graph, x: str, name: str, cin: int, cout: int, k: int, stride: int, gain: float) -> str:
    """A torchvision conv (no bias) + BatchNorm, the BN folded into the conv's weight and bias."""
    weight = _kernel(g.rng, cout, cin, k, gain)
    return g.conv(x, name, weight, _shift(g.rng, cout), stride=stride, pad=k // 2)


def _basic_block(g: _Graph, x: str, name: str, cin: int, cout: int, stride: int) -> str:
    """torchvision BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
    h = g.op("Relu", [_conv_bn(g, x, f"{name}.conv1", cin, cout, 3, stride, 1.0)], f"{name}.relu1")
    h = _conv_bn(g, h, f"{name}.conv2", cout, cout, 3, 1, RESIDUAL_GAIN)
    shortcut = x
    if stride != 1 or cin != cout:
        shortcut = _conv_bn(g, x, f"{name}.downsample", cin, cout, 1, stride, 1.0)
    return g.op("Relu", [g.op("Add", [h, shortcut], f"{name}.add")], f"{name}.relu2")


def _trunk(g: _Graph, image: str, image_size: int) -> str:
    """ResNet-34 conv1 .. layer3, layer3's first block at stride 1: 256 x S/8 x S/8."""
    gain = CONV1_GAIN_AT_1200 * math.sqrt(image_size / 1200)
    x = g.op("Relu", [_conv_bn(g, image, "backbone.conv1", 3, 64, 7, 2, gain)], "backbone.relu")
    x = g.op("MaxPool", [x], "backbone.maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, (cout, blocks, stride) in enumerate(RESNET_STAGES, start=1):
        for block in range(blocks):
            x = _basic_block(g, x, f"backbone.layer{stage}.{block}", cin, cout, stride if block == 0 else 1)
            cin = cout
    return x


def _extra_blocks(g: _Graph, x: str) -> list[str]:
    """The five extra blocks (1x1 conv, ReLU, 3x3 conv, ReLU; biases, no BN); their outputs."""
    outputs = []
    for i, (cin, mid, cout, stride, pad) in enumerate(EXTRA_BLOCKS):
        name = f"additional_blocks.{i}"
        weight = _kernel(g.rng, mid, cin, 1, EXTRA_GAIN)
        x = g.op("Relu", [g.conv(x, f"{name}.0", weight, _shift(g.rng, mid))], f"{name}.1")
        weight = _kernel(g.rng, cout, mid, 3, EXTRA_GAIN)
        x = g.conv(x, f"{name}.2", weight, _shift(g.rng, cout), stride=stride, pad=pad)
        outputs.append(g.op("Relu", [x], f"{name}.3"))
    return outputs


def _class_prior(rng: np.random.Generator) -> np.ndarray:
    """Conf biases per class: background BACKGROUND_LOGIT, class c -CLASS_PRIOR_ZIPF * log(rank c)."""
    prior = np.empty(NUM_CLASSES)
    prior[0] = BACKGROUND_LOGIT
    prior[1:] = -CLASS_PRIOR_ZIPF * np.log(rng.permutation(NUM_CLASSES - 1) + 1.0)
    return prior


def _conf_weights(rng: np.random.Generator, level: int, cin: int, nd: int) -> np.ndarray:
    """Conf kernels [nd * 81, cin, 3, 3]; channel class * nd + anchor, as `view(N, 81, -1)` reads them."""
    shared = np.repeat(_kernel(rng, NUM_CLASSES, cin, 3, 1.0, HEAD_WINDOW_MEAN), nd, axis=0)
    own = _kernel(rng, NUM_CLASSES * nd, cin, 3, 1.0, HEAD_WINDOW_MEAN)
    weight = math.sqrt(ANCHOR_SHARE) * shared + math.sqrt(1.0 - ANCHOR_SHARE) * own
    weight *= CLASS_LOGIT_STD / HEAD_PROJECTION_STD[level]
    # Background: a uniform kernel, the local mean activation relative to its typical value.
    weight[:nd] = BACKGROUND_ENERGY / (HEAD_SOURCE_ENERGY[level] * cin * 9)
    return weight


def _heads(g: _Graph, sources: Sequence[str]) -> tuple[str, str]:
    """loc and conf convolutions (3x3, pad 1, stride 3), each `view(N, 4|81, -1)`, concatenated."""
    locs, confs = [], []
    prior = _class_prior(g.rng)
    for i, (x, cin, nd) in enumerate(zip(sources, SOURCE_CHANNELS, NUM_DEFAULTS, strict=True)):
        loc_w = _kernel(g.rng, nd * 4, cin, 3, LOC_STD / HEAD_PROJECTION_STD[i], HEAD_WINDOW_MEAN)
        loc = g.conv(x, f"loc.{i}", loc_w, np.zeros(nd * 4), stride=HEAD_STRIDE, pad=1)
        locs.append(g.op("Reshape", [loc, g.constant(f"loc.{i}.shape", _int64([1, 4, -1]))], f"loc.{i}.view"))
        conf_w = _conf_weights(g.rng, i, cin, nd)
        conf = g.conv(x, f"conf.{i}", conf_w, np.repeat(prior, nd), stride=HEAD_STRIDE, pad=1)
        shape = g.constant(f"conf.{i}.shape", _int64([1, NUM_CLASSES, -1]))
        confs.append(g.op("Reshape", [conf, shape], f"conf.{i}.view"))
    return g.op("Concat", locs, "locs", axis=2), g.op("Concat", confs, "confs", axis=2)


def _int64(values: int | Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _float32(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _decode(g: _Graph, locs: str, dboxes: np.ndarray) -> str:
    """[1, 4, N] offsets -> [1, N, 4] boxes x1, y1, x2, y2 (normalized, not clipped)."""
    loc = g.op("Transpose", [locs], "decode.loc", perm=[0, 2, 1])
    boxes = g.constant("default_boxes", dboxes[None])
    axis, xy, wh = g.constant("decode.axis", _int64([2])), _int64([0]), _int64([2])
    lo, mid, hi = g.constant("decode.0", xy), g.constant("decode.2", wh), g.constant("decode.4", _int64([4]))
    loc_xy = g.op("Slice", [loc, lo, mid, axis], "decode.loc_xy")
    loc_wh = g.op("Slice", [loc, mid, hi, axis], "decode.loc_wh")
    box_xy = g.op("Slice", [boxes, lo, mid, axis], "decode.box_xy")
    box_wh = g.op("Slice", [boxes, mid, hi, axis], "decode.box_wh")
    # centre = box centre + 0.1 * offset * box size; size = box size * exp(0.2 * offset)
    shift = g.op(
        "Mul", [loc_xy, g.constant("decode.center_variance", _float32([CENTER_VARIANCE]))], "decode.shift"
    )
    centre = g.op("Add", [g.op("Mul", [shift, box_wh], "decode.shift_scaled"), box_xy], "decode.centre")
    scale = g.op(
        "Mul", [loc_wh, g.constant("decode.size_variance", _float32([SIZE_VARIANCE]))], "decode.scale"
    )
    size = g.op("Mul", [g.op("Exp", [scale], "decode.exp"), box_wh], "decode.size")
    half = g.op("Mul", [size, g.constant("decode.half", _float32([0.5]))], "decode.half_size")
    top_left = g.op("Sub", [centre, half], "decode.top_left")
    bottom_right = g.op("Add", [centre, half], "decode.bottom_right")
    return g.op("Concat", [top_left, bottom_right], "decode.boxes", axis=2)


def _class_scores(g: _Graph, confs: str) -> str:
    """[1, 81, N] logits -> [1, 80, N] softmax probabilities of the foreground classes."""
    # Softmax at opset 10 flattens to 2-D at `axis`: the classes must be the last axis.
    logits = g.op("Transpose", [confs], "scores.logits", perm=[0, 2, 1])
    probs = g.op("Softmax", [logits], "scores.softmax", axis=2)
    probs = g.op("Transpose", [probs], "scores.by_class", perm=[0, 2, 1])
    starts, ends = g.constant("scores.first", _int64([1])), g.constant("scores.end", _int64([NUM_CLASSES]))
    return g.op("Slice", [probs, starts, ends, g.constant("scores.axis", _int64([1]))], "scores.foreground")


def _select(g: _Graph, boxes: str, scores: str, num_boxes: int) -> tuple[str, str, str]:
    """Per-class NMS, then the best min(200, selected) by score: (bboxes, labels, scores)."""
    # NMS reads boxes as [y1, x1, y2, x2]; IoU is the same for [x1, y1, x2, y2].
    selected = g.op(
        "NonMaxSuppression",
        [
            boxes,
            scores,
            g.constant("nms.max_output_boxes_per_class", _int64([MAX_DETECTIONS])),
            g.constant("nms.iou_threshold", _float32([IOU_THRESHOLD])),
            g.constant("nms.score_threshold", _float32([SCORE_THRESHOLD])),
        ],
        "nms.selected",
    )
    klass = g.op("Gather", [selected, g.constant("nms.class_column", _int64(1))], "nms.class", axis=1)
    box = g.op("Gather", [selected, g.constant("nms.box_column", _int64(2))], "nms.box", axis=1)
    # Scores of (class, box) pairs from the flattened [80 * N] scores (GatherND needs opset 11).
    flat = g.op("Reshape", [scores, g.constant("nms.flat_shape", _int64([-1]))], "nms.flat_scores")
    row = g.op("Mul", [klass, g.constant("nms.num_boxes", _int64([num_boxes]))], "nms.row")
    picked = g.op("Gather", [flat, g.op("Add", [row, box], "nms.flat_index")], "nms.scores", axis=0)
    # K = min(200, selected): Min has no int64 kernel at opset 10, ReduceMin has.
    count = g.op("Shape", [picked], "top.count")
    cap = g.constant("top.cap", _int64([MAX_DETECTIONS]))
    k = g.op("ReduceMin", [g.op("Concat", [count, cap], "top.candidates", axis=0)], "top.k", keepdims=1)
    top_scores = g.op("TopK", [picked, k], "top", outputs=2, axis=0)
    order = f"{top_scores}:1"
    labels = g.op(
        "Add",
        [g.op("Gather", [klass, order], "top.class", axis=0), g.constant("top.one", _int64([1]))],
        "top.label",
    )
    box_ids = g.op("Gather", [box, order], "top.box", axis=0)
    all_boxes = g.op("Squeeze", [boxes], "top.all_boxes", axes=[0])
    chosen = g.op("Gather", [all_boxes, box_ids], "top.bboxes", axis=0)
    return (
        g.op("Unsqueeze", [chosen], "bboxes", axes=[0]),
        g.op("Unsqueeze", [labels], "labels", axes=[0]),
        g.op("Unsqueeze", [top_scores], "scores", axes=[0]),
    )


def build_twin(image_size: int = 1200, seed: int = 0) -> onnx.ModelProto:
    """The twin for a square `image_size` input, weights drawn from `seed` (same seed, same bytes)."""
    sources_sides = feature_map_sizes(image_size)
    log.debug("twin %d: sources %s, grids %s", image_size, sources_sides, grid_sizes(image_size))
    dboxes = default_boxes(image_size)
    g = _Graph(np.random.default_rng(seed))
    trunk = _trunk(g, "image", image_size)
    sources = [trunk, *_extra_blocks(g, trunk)]
    locs, confs = _heads(g, sources)
    boxes = _decode(g, locs, dboxes)
    _select(g, boxes, _class_scores(g, confs), len(dboxes))
    graph = helper.make_graph(
        g.nodes,
        f"ssd_resnet34_twin_{image_size}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, image_size, image_size])],
        [
            helper.make_tensor_value_info("bboxes", TensorProto.FLOAT, [1, "nbox", 4]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [1, "nbox"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, "nbox"]),
        ],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="ssd_eval.twin",
        producer_version=str(TWIN_VERSION),
        doc_string=f"Architecture twin of ONNX Model Zoo ssd-10 (SSD-ResNet34), random weights, seed {seed}",
    )
    model.ir_version = IR_VERSION
    return model


def save_twin(model: onnx.ModelProto, path: Path) -> None:
    """Write `model` to `path` atomically: a temporary file in the same folder, then os.replace.

    A reader never sees a half-written model, and two processes building the same twin at once
    both end with a complete file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("xb") as handle:  # plain open: the file gets the usual umask permissions
            handle.write(model.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def twin_path(image_size: int, seed: int, cache_dir: Path) -> Path:
    """Where `ensure_twin` keeps the twin for this size and seed."""
    return cache_dir / f"ssd-twin-{image_size}-s{seed}-v{TWIN_VERSION}.onnx"


def ensure_twin(image_size: int, seed: int, cache_dir: Path) -> Path:
    """The cached twin for this size and seed, built on first use."""
    path = twin_path(image_size, seed, cache_dir)
    if path.is_file():
        return path
    try:
        model = build_twin(image_size, seed)
    except ValueError as exc:
        raise ModelError(f"cannot build a twin for image size {image_size}: {exc}") from None
    log.info("building the SSD-ResNet34 twin for %dx%d (seed %d) into %s", image_size, image_size, seed, path)
    try:
        save_twin(model, path)
    except OSError as exc:
        raise ModelError(f"cannot write the twin to {path}: {exc}") from None
    return path
