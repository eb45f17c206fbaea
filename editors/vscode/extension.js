// The cnnspec extension: .cnn highlighting comes from syntaxes/ (no code); this starts
// the language server, `cnnspec lsp` over stdio, with vscode-languageclient.
// Plain JavaScript, no build step. Settings: cnnspec.server.command (the `cnnspec`
// executable; empty: no server), cnnspec.server.args (default ["lsp"]).
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

/** @type {LanguageClient | undefined} */
let client;

/** The server's command line from the settings: {command, args}, or undefined for none. */
function serverCommand() {
  const config = vscode.workspace.getConfiguration("cnnspec");
  const command = String(config.get("server.command", "cnnspec") || "").trim();
  const args = config.get("server.args", ["lsp"]);
  if (!command) {
    return undefined;
  }
  return { command, args: Array.isArray(args) ? args.map(String) : ["lsp"] };
}

async function startServer() {
  const server = serverCommand();
  if (!server) {
    return;
  }
  const executable = { command: server.command, args: server.args, transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "cnnspec" },
      { scheme: "untitled", language: "cnnspec" },
    ],
    // a change to a file that others `use` changes their diagnostics
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.cnn") },
    outputChannelName: "cnnspec",
  };
  client = new LanguageClient(
    "cnnspec",
    "cnnspec language server",
    { run: executable, debug: executable },
    clientOptions,
  );
  try {
    await client.start();
  } catch (err) {
    client = undefined;
    const choice = await vscode.window.showErrorMessage(
      `cnnspec: could not start the language server \`${server.command} ${server.args.join(" ")}\`` +
        ` (${err && err.message ? err.message : err}). Install cnnspec or set cnnspec.server.command.`,
      "Open Settings",
    );
    if (choice === "Open Settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", "cnnspec.server");
    }
  }
}

async function stopServer() {
  const running = client;
  client = undefined;
  if (running) {
    await running.stop();
  }
}

async function restartServer() {
  await stopServer();
  await startServer();
}

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("cnnspec.restartServer", restartServer),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("cnnspec.server")) {
        return restartServer();
      }
      return undefined;
    }),
  );
  await startServer();
}

function deactivate() {
  return stopServer();
}

module.exports = { activate, deactivate, serverCommand };
