// Tokenize .cnn files with VS Code's own TextMate engine (vscode-textmate on the
// Oniguruma of vscode-oniguruma, both devDependencies: `npm install` here) and print
// the tokens as JSON: {"file": [[[start, end, [scope, ...]], ...] per line]}.
// tests/test_highlighting.py compares them with the grammar run in Python.
//
//     node test/tokenize.js ../../specs/lenet5.cnn
"use strict";

const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const GRAMMAR = path.join(__dirname, "..", "syntaxes", "cnnspec.tmLanguage.json");

async function main(files) {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scopeName) =>
      scopeName === "source.cnnspec"
        ? vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, "utf8"), GRAMMAR)
        : null,
  });
  const grammar = await registry.loadGrammar("source.cnnspec");
  const out = {};
  for (const file of files) {
    let stack = vsctm.INITIAL;
    out[file] = fs
      .readFileSync(file, "utf8")
      .split("\n")
      .map((line) => {
        const result = grammar.tokenizeLine(line, stack);
        stack = result.ruleStack;
        return result.tokens.map((t) => [t.startIndex, Math.min(t.endIndex, line.length), t.scopes]);
      });
  }
  process.stdout.write(JSON.stringify(out));
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err);
  process.exit(1);
});
