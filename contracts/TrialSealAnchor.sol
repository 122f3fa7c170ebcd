// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title TrialSeal checkpoint anchor
/// @notice Records signed checkpoints of one TrialSeal log. Each anchor is one event carrying the log id,
/// the checkpoint hash (SHA-256 of the exact signed note text) and the tree size. Only the deploying owner
/// may anchor, and the tree size must grow strictly, so a fork of the log cannot be anchored after the fact.
contract TrialSealAnchor {
    /// @notice The account that deployed the contract; the only one allowed to anchor.
    address public immutable owner;
    /// @notice SHA-256 of the log origin line this contract anchors.
    bytes32 public immutable logId;
    /// @notice Tree size of the last anchored checkpoint (0 before the first).
    uint64 public lastTreeSize;

    event Anchored(bytes32 indexed logId, bytes32 indexed checkpointHash, uint64 treeSize);

    error NotOwner(address sender);
    error TreeSizeNotGrowing(uint64 last, uint64 given);

    constructor(bytes32 logId_) {
        owner = msg.sender;
        logId = logId_;
    }

    function anchor(bytes32 checkpointHash, uint64 treeSize) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        uint64 last = lastTreeSize;
        if (treeSize <= last) revert TreeSizeNotGrowing(last, treeSize);
        lastTreeSize = treeSize;
        emit Anchored(logId, checkpointHash, treeSize);
    }
}
