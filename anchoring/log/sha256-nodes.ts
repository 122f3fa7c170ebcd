/**
 * RFC 6962 interior-node hashing, SHA-256(0x01 || left || right), for many nodes per call without allocating
 * (ADR 0046). Per-call SHA-256 APIs (node:crypto's `hash`, @noble) cost ~0.7 us of call overhead and a fresh
 * output buffer per node, several times the hashing itself; this loop hashes a whole tree level from one buffer
 * into another. A node's message is 65 bytes, so two SHA-256 blocks: the first is 0x01 and the first 63 bytes of
 * the children; the second is the last child byte, the 0x80 pad and the length (520 bits), so its expanded message
 * schedule depends on that one byte only and is precomputed for all 256 values (64 KB, built on first use).
 * Pure JavaScript (browser-safe, no node: module), cross-checked against node:crypto and the RFC 6962 vectors.
 */

// biome-ignore format: the 64 SHA-256 round constants, 8 per line
const K = Int32Array.of(
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
);
const IV = Int32Array.of(
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
);

const W = new Int32Array(64);
/** K[t] + W[t] of the second block, for each value of its first byte (the last byte of the right child). */
let tail: Int32Array | null = null;

function expand(w: Int32Array): void {
  for (let t = 16; t < 64; t++) {
    const x = w[t - 15];
    const y = w[t - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
  }
}

function tailSchedules(): Int32Array {
  const out = new Int32Array(256 * 64);
  const w = new Int32Array(64);
  for (let b = 0; b < 256; b++) {
    w.fill(0);
    w[0] = (b << 24) | 0x800000;
    w[15] = 520;
    expand(w);
    for (let t = 0; t < 64; t++) out[b * 64 + t] = (K[t] + w[t]) | 0;
  }
  return out;
}

// The state of the node being hashed (module-level: no allocation per call).
const S = new Int32Array(8);

/** One SHA-256 compression of S with round inputs kw[off + t] (K[t] + W[t] already added). */
function compress(kw: Int32Array, off: number): void {
  let a = S[0];
  let b = S[1];
  let c = S[2];
  let d = S[3];
  let e = S[4];
  let f = S[5];
  let g = S[6];
  let h = S[7];
  for (let t = 0; t < 64; t++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + kw[off + t]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  S[0] = (S[0] + a) | 0;
  S[1] = (S[1] + b) | 0;
  S[2] = (S[2] + c) | 0;
  S[3] = (S[3] + d) | 0;
  S[4] = (S[4] + e) | 0;
  S[5] = (S[5] + f) | 0;
  S[6] = (S[6] + g) | 0;
  S[7] = (S[7] + h) | 0;
}

/**
 * Hash `count` interior nodes: node k is SHA-256(0x01 || src[srcOff + 64k .. srcOff + 64k + 64]) (its two children,
 * adjacent), written to dst[dstOff + 32k ..].
 */
export function hashNodesInto(src: Uint8Array, srcOff: number, count: number, dst: Uint8Array, dstOff: number): void {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError("count must be a non-negative integer");
  if (srcOff < 0 || srcOff + 64 * count > src.length) throw new RangeError("children outside the source buffer");
  if (dstOff < 0 || dstOff + 32 * count > dst.length) throw new RangeError("nodes outside the destination buffer");
  if (!tail) tail = tailSchedules();
  const kw2 = tail;
  const w = W;
  for (let k = 0; k < count; k++) {
    const p = srcOff + 64 * k;
    // First block: 0x01, then bytes 0..62 of the children: word j covers message bytes 4j..4j+3 = children bytes
    // 4j-1..4j+2.
    w[0] = (1 << 24) | (src[p] << 16) | (src[p + 1] << 8) | src[p + 2];
    for (let j = 1; j < 16; j++) {
      const q = p + 4 * j - 1;
      w[j] = (src[q] << 24) | (src[q + 1] << 16) | (src[q + 2] << 8) | src[q + 3];
    }
    expand(w);
    for (let t = 0; t < 64; t++) w[t] = (w[t] + K[t]) | 0;
    S.set(IV);
    compress(w, 0);
    compress(kw2, src[p + 63] * 64);
    const o = dstOff + 32 * k;
    for (let j = 0; j < 8; j++) {
      const v = S[j];
      dst[o + 4 * j] = v >>> 24;
      dst[o + 4 * j + 1] = v >>> 16;
      dst[o + 4 * j + 2] = v >>> 8;
      dst[o + 4 * j + 3] = v;
    }
  }
}
