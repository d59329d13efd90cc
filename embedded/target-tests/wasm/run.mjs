// Runs the test firmware built for wasm32-unknown-unknown (scripts/wasm.sh) under Node.js:
//   node run.mjs path/to/target-tests.wasm
// Imports `env.host_write(ptr, len)` (UTF-8 bytes of linear memory to stdout) and
// `env.host_exit(code)` (panic path: ends the run with `code`); calls the exported
// `target_tests_main()` and exits with the status it returns (0 all passed, 1 a check failed,
// 101 panic, 3 a trap or load error).
import { readFileSync, writeSync } from "node:fs";

const path = process.argv[2];
if (!path) {
  console.error("usage: node run.mjs FILE.wasm");
  process.exit(2);
}

class Exit {
  constructor(code) {
    this.code = code;
  }
}

let memory;
const decoder = new TextDecoder();
const imports = {
  env: {
    host_write(ptr, len) {
      const bytes = new Uint8Array(memory.buffer, ptr >>> 0, len >>> 0);
      writeSync(1, decoder.decode(bytes));
    },
    host_exit(code) {
      throw new Exit(code);
    },
  },
};

let status;
try {
  const { instance } = await WebAssembly.instantiate(readFileSync(path), imports);
  memory = instance.exports.memory;
  status = instance.exports.target_tests_main();
} catch (e) {
  if (e instanceof Exit) {
    status = e.code;
  } else {
    console.error(`run.mjs: ${e instanceof WebAssembly.RuntimeError ? "trap" : "error"}: ${e.stack ?? e}`);
    status = 3;
  }
}
process.exit(status);
