/** The compiled anchoring contract (contracts/TrialSealAnchor.sol, built by contracts/build.mjs; committed). */
import artifact from "../../../contracts/TrialSealAnchor.json" with { type: "json" };
import type { Abi, Hex } from "viem";

export const ANCHOR_ABI = artifact.abi as Abi;
export const ANCHOR_BYTECODE = artifact.bytecode as Hex;
export const ANCHOR_COMPILER = artifact.compiler;
