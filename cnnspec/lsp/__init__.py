"""`cnnspec lsp`: a language server for `.cnn` files (needs the ``lsp`` extra: pygls).

Bottom up: :mod:`~cnnspec.lsp.index` reads one parsed file's names and their uses,
:mod:`~cnnspec.lsp.analysis` keeps the open documents checked (pure but for the file
reader it is given), :mod:`~cnnspec.lsp.features` answers each request from them, and
:mod:`~cnnspec.lsp.server` wires those to the protocol. Only the server imports pygls.
"""
