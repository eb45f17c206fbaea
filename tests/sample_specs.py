"""Small specs shared by the parser, pipeline and fuzz tests."""

from __future__ import annotations

# ResNet's basic block: a residual with a conditional projection shortcut
BASIC_BLOCK = """\
block basic(width, stride = 1) {
    residual {
        conv(width, 3, stride = stride, padding = 1, bias = false) -> batchnorm -> relu
        conv(width, 3, padding = 1, bias = false) -> batchnorm
    } shortcut if stride != 1 or in.channels != width {
        conv(width, 1, stride = stride, bias = false) -> batchnorm
    }
    relu
}
"""

# a stage of basic blocks, the first of which may downsample
STAGE_BLOCK = """\
block stage(width, blocks, stride = 1) {
    repeat i in 0 .. blocks {
        basic(width, stride = stride if i == 0 else 1)
    }
}
"""

# the example of the brief: every construct of the language in a few lines
TINY = (
    BASIC_BLOCK
    + """\
network Tiny(classes = 10) {
    input image: 3 x 32 x 32
    conv(16, 3, padding = 1, bias = false) -> batchnorm -> relu
    basic(16)
    basic(32, stride = 2) as layer2
    skip = conv(32, 1)          # a named tensor
    concat { branch { conv(8, 1) } branch { maxpool(3, stride = 1, padding = 1) -> conv(8, 1) } }
    global_avgpool -> flatten -> linear(classes) as fc
}
"""
)

# the smallest network that trains on the bundled 8 x 8 digits (training tests)
DIGITS_TINY = """network Tiny(classes = 10) {
    input image: 1 x 8 x 8
    conv(4, 3) -> relu
    flatten
    linear(classes)
}
"""
