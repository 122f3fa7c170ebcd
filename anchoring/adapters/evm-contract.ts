/** The compiled anchoring contract (contracts/TrialSealAnchor.sol, built by contracts/build.mjs; committed). */
import type { Abi, Hex } from "viem";
import { artifact } from "./evm-artifact.ts";

export const ANCHOR_ABI = artifact.abi as unknown as Abi;
export const ANCHOR_BYTECODE = artifact.bytecode as Hex;
export const ANCHOR_COMPILER = artifact.compiler;
