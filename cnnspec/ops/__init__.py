"""Stage 2, ops: what a layer is, and the values its arguments take.

Entry: :data:`cnnspec.ops.registry.REGISTRY` (one :class:`~cnnspec.ops.registry.Op` per
layer and merge: argument schema, the one shape rule, params and MACs, receptive-field
window, lint facts, family, PyTorch emission). Modules: :mod:`~.domain` (the value domain
the shape rules run over: integers when checking, symbols when compiling),
:mod:`~.evaluate` (expressions of the language to values), :mod:`~.binding` (the one
argument binder) and :mod:`~.registry` (the layer table). Depends on
:mod:`cnnspec.syntax` (AST) and the core modules only.
"""
