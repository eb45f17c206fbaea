-- Drives Neovim's built-in LSP client against `cnnspec lsp` (tests/lsp/test_neovim.py).
-- Opens a spec with a mistake and reads back its diagnostics; opens a zoo spec and asks
-- for a hover and a definition. Writes what it got as JSON to $CNNSPEC_OUT, then quits.
local out = { errors = {} }
local function env(name) return os.getenv(name) or error("missing $" .. name) end

local function run()
  local cmd = vim.split(env("CNNSPEC_LSP_CMD"), "\t", { plain = true })
  local bad, zoo = env("CNNSPEC_BAD"), env("CNNSPEC_ZOO")
  local id = vim.lsp.start_client({
    name = "cnnspec",
    cmd = cmd,
    root_dir = vim.fn.fnamemodify(bad, ":h"),
    init_options = { debounce = 0 },
  })
  assert(id, "the client did not start")

  vim.cmd("edit " .. vim.fn.fnameescape(bad))
  local bad_buf = vim.api.nvim_get_current_buf()
  vim.lsp.buf_attach_client(bad_buf, id)
  vim.wait(30000, function() return #vim.diagnostic.get(bad_buf) > 0 end, 20)
  out.diagnostics = {}
  for _, d in ipairs(vim.diagnostic.get(bad_buf)) do
    table.insert(out.diagnostics, {
      lnum = d.lnum, col = d.col, end_col = d.end_col, code = d.code,
      message = d.message, severity = d.severity,
    })
  end

  vim.cmd("edit " .. vim.fn.fnameescape(zoo))
  local zoo_buf = vim.api.nvim_get_current_buf()
  vim.lsp.buf_attach_client(zoo_buf, id)
  local uri = vim.uri_from_bufnr(zoo_buf)
  local function ask(method, line, character)
    local params = { textDocument = { uri = uri }, position = { line = line, character = character } }
    local replies = vim.lsp.buf_request_sync(zoo_buf, method, params, 30000) or {}
    local reply = replies[id] or {}
    if reply.err then table.insert(out.errors, method .. ": " .. vim.inspect(reply.err)) end
    return reply.result
  end
  local hover = ask("textDocument/hover", tonumber(env("CNNSPEC_HOVER_LINE")), tonumber(env("CNNSPEC_HOVER_CHAR")))
  out.hover = hover and hover.contents and hover.contents.value or vim.NIL
  local found = ask("textDocument/definition", tonumber(env("CNNSPEC_DEF_LINE")), tonumber(env("CNNSPEC_DEF_CHAR")))
  out.definition = found or vim.NIL
end

local ok, err = pcall(run)
if not ok then table.insert(out.errors, tostring(err)) end
local file = io.open(env("CNNSPEC_OUT"), "w")
file:write(vim.fn.json_encode(out))
file:close()
vim.cmd("qa!")
