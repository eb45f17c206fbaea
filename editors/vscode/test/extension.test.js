// Loads extension.js with stand-ins for `vscode` and `vscode-languageclient/node` and
// prints, as JSON, how it starts the server under a few settings.
// tests/test_highlighting.py runs it (needs node only, no npm install).
"use strict";

const Module = require("module");
const path = require("path");

const started = [];
let settings = {};

const vscode = {
  workspace: {
    getConfiguration: (section) => ({
      get: (key, fallback) => {
        const full = `${section}.${key}`;
        return full in settings ? settings[full] : fallback;
      },
    }),
    createFileSystemWatcher: (glob) => ({ glob }),
    onDidChangeConfiguration: () => ({ dispose() {} }),
  },
  window: { showErrorMessage: async () => undefined },
  commands: { registerCommand: () => ({ dispose() {} }), executeCommand: async () => undefined },
};

class LanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    this.record = { id, name, serverOptions, clientOptions };
  }
  async start() {
    started.push(this.record);
  }
  async stop() {}
}
const languageclient = { LanguageClient, TransportKind: { stdio: 0, ipc: 1, pipe: 2, socket: 3 } };

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === "vscode" || request === "vscode-languageclient/node") {
    return request;
  }
  return resolve.call(this, request, ...rest);
};
require.cache.vscode = { id: "vscode", filename: "vscode", loaded: true, exports: vscode };
require.cache["vscode-languageclient/node"] = {
  id: "vscode-languageclient/node",
  filename: "vscode-languageclient/node",
  loaded: true,
  exports: languageclient,
};

const extension = require(path.join(__dirname, "..", "extension.js"));

async function run(given) {
  settings = given;
  started.length = 0;
  const context = { subscriptions: [] };
  await extension.activate(context);
  await extension.deactivate();
  return started.map((r) => ({
    id: r.id,
    command: r.serverOptions.run.command,
    args: r.serverOptions.run.args,
    transport: r.serverOptions.run.transport,
    languages: r.clientOptions.documentSelector.map((s) => s.language),
  }));
}

(async () => {
  const out = {
    defaults: await run({}),
    configured: await run({
      "cnnspec.server.command": "/opt/venv/bin/cnnspec",
      "cnnspec.server.args": ["lsp", "--verbose"],
    }),
    disabled: await run({ "cnnspec.server.command": "" }),
  };
  process.stdout.write(JSON.stringify(out));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
