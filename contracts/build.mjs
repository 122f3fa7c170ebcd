// Compile contracts/TrialSealAnchor.sol with solc (npm) into contracts/TrialSealAnchor.json (committed).
// `node contracts/build.mjs --check` exits 1 when the committed artifact differs from a fresh compile.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const dir = path.dirname(fileURLToPath(import.meta.url));
const NAME = "TrialSealAnchor";
// "paris" (no PUSH0) runs on every EVM chain we target, including consortium chains and L2s that lag behind.
const EVM_VERSION = "paris";

export function compile() {
  const input = {
    language: "Solidity",
    sources: { [`${NAME}.sol`]: { content: readFileSync(path.join(dir, `${NAME}.sol`), "utf8") } },
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: { enabled: true, runs: 10000 },
      metadata: { bytecodeHash: "none" },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join("\n"));
  const c = out.contracts[`${NAME}.sol`][NAME];
  return {
    contractName: NAME,
    compiler: `solc ${solc.version()}`,
    evmVersion: EVM_VERSION,
    abi: c.abi,
    bytecode: `0x${c.evm.bytecode.object}`,
    deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = JSON.stringify(compile(), null, 2) + "\n";
  const file = path.join(dir, `${NAME}.json`);
  if (process.argv.includes("--check")) {
    const same = readFileSync(file, "utf8") === text;
    console.log(same ? `${NAME}.json matches a fresh compile` : `${NAME}.json differs from a fresh compile: run node contracts/build.mjs`);
    process.exit(same ? 0 : 1);
  }
  writeFileSync(file, text);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
