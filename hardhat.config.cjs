// Hardhat 2 is used only as a local EVM node for tests and development (`npx hardhat node`);
// the contract is compiled by contracts/build.mjs with solc, not by Hardhat.
/** @type {import("hardhat/config").HardhatUserConfig} */
module.exports = {
  networks: {
    hardhat: { chainId: 31337 },
  },
};
